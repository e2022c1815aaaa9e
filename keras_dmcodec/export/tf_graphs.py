"""The TensorFlow graphs an export contains: whole-clip ``encode`` / ``decode`` and, for a
causal model, the stateful streaming steps ``encode_step`` / ``decode_step``.

Only the export process imports this module (its backend is TensorFlow), so it may use
``tensorflow`` directly.

**Streaming signatures.** One call is one step of ``frames`` frames (``frames * hop``
samples, 20 ms per frame at 16 kHz) for one stream. The state is the model's own
(``DMCodec.initial_encoder_state`` / ``initial_decoder_state``), flattened in
``keras.tree.flatten`` order into float32 tensors named ``state_00``, ``state_01``, ...;
each step returns the next state as ``new_state_00``, ... (distinct names, which ONNX needs).
A runtime starts from zeros of the shapes that ``export.json`` lists under ``stream``, feeds
each step the state the previous step returned, and resets a stream by zeroing it again.
"""

import keras
import tensorflow as tf

from keras_dmcodec.export import state_name
from keras_dmcodec.layers.quantization import squared_distances


def rvq_codes(model, latents, n_q):
    """The quantizer's codes ``[batch, n_q, frames]`` of ``latents`` ``[batch, frames, dim]``,
    with ``tf.argmin`` for the nearest code.

    Keras's TensorFlow ``argmin`` adds a bitwise -0.0 check (``BitwiseAnd``) that TFLite
    has no builtin for; the distances are the quantiser's own (``squared_distances``, same
    expansion), so codes differ only where two distances are exactly equal.
    """
    residual = tf.reshape(tf.cast(latents, tf.float32), (-1, model.dimension))
    codes = []
    for vq in model.quantizer.quantizers[:n_q]:
        codebook = tf.convert_to_tensor(vq.codebook.value)
        index = tf.argmin(squared_distances(residual, codebook), axis=-1, output_type=tf.int32)
        residual = residual - tf.gather(codebook, index)
        codes.append(tf.reshape(index, tf.shape(latents)[:-1]))
    return tf.stack(codes, axis=1)


def codec_signatures(model, n_q):
    """``tf.function`` s of whole-clip encode / decode with a dynamic time axis."""
    audio_spec = tf.TensorSpec([1, None], tf.float32, name="audio")
    codes_spec = tf.TensorSpec([1, n_q, None], tf.int32, name="codes")
    encode = tf.function(
        lambda audio: {"codes": rvq_codes(model, model.encode_latents(audio), n_q)},
        input_signature=[audio_spec])
    decode = tf.function(lambda codes: {"audio": model.decode_tensor(codes)},
                         input_signature=[codes_spec])
    return encode, decode


def _flat_state_specs(state):
    return [tf.TensorSpec(tuple(tensor.shape), tf.float32, name=state_name(i))
            for i, tensor in enumerate(keras.tree.flatten(state))]


def _with_state(outputs, new_state):
    outputs.update({state_name(i, new=True): tensor
                    for i, tensor in enumerate(keras.tree.flatten(new_state))})
    return outputs


def stream_signatures(model, n_q, frames):
    """``(encode_step, decode_step, description)`` for a causal ``model``: ``tf.function`` s
    of one streaming step of ``frames`` frames for one stream, and the ``stream`` section of
    ``export.json`` (step size and state shapes)."""
    if not getattr(model, "causal", False):
        raise ValueError("streaming steps need a causal model")
    frames = int(frames)
    if frames < 1:
        raise ValueError(f"stream frames must be at least 1, got {frames}")
    encoder_state = model.initial_encoder_state(1)
    decoder_state = model.initial_decoder_state(1)
    encoder_specs, decoder_specs = _flat_state_specs(encoder_state), \
        _flat_state_specs(decoder_state)
    samples = frames * model.hop_length

    def encode_step(audio, *state):
        state = keras.tree.pack_sequence_as(encoder_state, list(state))
        latents, new_state = model.encoder.stream_step(model.as_channels_last(audio), state)
        return _with_state({"codes": rvq_codes(model, latents, n_q)}, new_state)

    def decode_step(codes, *state):
        state = keras.tree.pack_sequence_as(decoder_state, list(state))
        latents = tf.cast(model.quantizer.decode(codes), model.compute_dtype)
        audio, new_state = model.decoder.stream_step(latents, state)
        return _with_state({"audio": audio[..., 0]}, new_state)

    encode = tf.function(encode_step, input_signature=[
        tf.TensorSpec([1, samples], tf.float32, name="audio"), *encoder_specs])
    decode = tf.function(decode_step, input_signature=[
        tf.TensorSpec([1, n_q, frames], tf.int32, name="codes"), *decoder_specs])
    description = dict(
        frames=frames, samples=samples,
        milliseconds=1000.0 * samples / model.sample_rate,
        encoder_state=[list(spec.shape) for spec in encoder_specs],
        decoder_state=[list(spec.shape) for spec in decoder_specs],
        encode_step=dict(input=f"audio float32 [1, {samples}] + state_NN",
                         output=f"codes int32 [1, n_q, {frames}] + new_state_NN"),
        decode_step=dict(input=f"codes int32 [1, n_q, {frames}] + state_NN",
                         output=f"audio float32 [1, {samples}] + new_state_NN"),
    )
    return encode, decode, description
