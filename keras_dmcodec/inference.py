"""Inference beyond one in-memory batch: long audio in chunks, and batches of different lengths.

Long audio
    ``encode_stream`` / ``encode_file`` / ``encode_long`` cut the audio into
    chunks of ``chunk_frames`` code frames and encode each with
    ``context_frames`` extra frames of audio on both sides, keeping only the
    chunk's own frames. Memory is bounded by one window
    (``chunk_frames + 2 * context_frames`` frames) whatever the file's length;
    ``encode_file`` also reads (and resamples) the file block by block.

    How close this is to encoding the whole file at once: every convolution of
    the encoder sees at most ``conv_context_frames(model)`` frames to each side
    (5 for the reference architecture), so with ``context_frames`` at least
    that, the convolutions of every kept frame see exactly the samples they
    see in a whole-file pass. The encoder's **bidirectional LSTM** sees the
    whole window, though, and its state at a window edge differs from the
    whole-file state. Measured (random-weight test model, docs/cli.md): the
    latent difference shrinks by about 0.6x per frame away from the edge and
    reaches float rounding (~1e-8) after about 35 frames, so with the default
    1 s (50 frames) of context the kept frames' latents equal the whole-file
    latents up to rounding, and codes can differ only at exact near-ties of
    two codebook entries (which also flip between eager and compiled runs of
    the same model). ``inference_test.py`` checks both: with context, codes
    equal the whole-file codes at every frame whose nearest and second-nearest
    codebook entries are not tied; with ``context_frames=0`` (hard cuts: reflect
    padding at the cut plus a cold LSTM state), differences stay within
    ``HARD_CUT_SEAM_FRAMES`` frames of a seam. Trained LSTMs can remember
    longer: ``benchmarks/bench_inference.py`` prints the agreement for a model.

    ``decode_stream`` / ``decode_long`` do the same for decoding (the decoder's
    LSTM is unidirectional, so only the left context warms it up; the right
    context covers its convolutions).

Batches
    ``encode_batch`` / ``decode_batch`` take clips of different lengths, sort them by
    length and run up to ``max_batch`` at a time as one zero-padded batch with their
    lengths (``DMCodec.encode(..., lengths=)``): every convolution pads at each clip's own
    end and the encoder LSTM's backward direction starts there, so each clip gets the
    codes (audio) it gets alone, to float rounding (codes can differ only at exact
    near-ties of two codebook entries). No graph is compiled per length.

Streaming (causal models)
    ``StreamingEncoder`` / ``StreamingDecoder`` take audio (codes) as it arrives, any
    whole number of hops (frames) at a time, and give the codes (audio) of exactly
    those frames, for one or several independent streams at once. The state lives in
    the layers (``DMCodec.encode_step`` / ``decode_step``: each convolution's left
    context, each transposed convolution's overlap, each LSTM's ``(h, c)``), so the
    output equals the offline causal pass over everything streamed so far, however it
    was cut. Algorithmic latency: one frame (``hop_length`` samples, 20 ms), no
    lookahead. ``stream_through`` runs a whole file through an encoder and decoder
    chunk by chunk (at real-time pace or as fast as possible) and times every step
    (``dmcodec stream``, ``benchmarks/bench_streaming.py``).

Everything takes a built ``DMCodec`` and numpy arrays, so other tools (corpus
tokenization workers, the CLI, benchmarks) share one implementation.
"""

import functools
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_dmcodec.audio import AudioError, open_with_soundfile

DEFAULT_CHUNK_SECONDS = 30.0
DEFAULT_CONTEXT_SECONDS = 1.0
# With hard cuts (context_frames=0), frames this far from a seam or closer may get
# other codes than in a whole-file encoding (measured 14 on the test model; tested).
HARD_CUT_SEAM_FRAMES = 20


def conv_context_frames(model):
    """Frames of audio each side of a frame that the encoder's convolutions can see (rounded up).

    Receptive field of the convolution stack alone (the LSTM is unbounded):
    stem conv, residual blocks and strided convs in samples, then the final
    conv over frames.
    """
    field, jump = 1, 1
    field += 6  # stem conv, kernel 7
    for ratio in reversed(model.ratios):
        for j in range(model.n_residual_layers):
            field += (model.residual_kernel_size - 1) * model.dilation_base**j * jump
        field += (2 * ratio - 1) * jump
        jump *= ratio
    field += 6 * jump  # last conv, kernel 7, over frames
    return int(math.ceil(field / 2 / model.hop_length))


def _frames(seconds, model):
    return max(1, int(round(seconds * model.frame_rate)))


def _check_chunking(model, chunk_frames, context_frames):
    chunk_frames = _frames(DEFAULT_CHUNK_SECONDS, model) if chunk_frames is None else chunk_frames
    context_frames = (_frames(DEFAULT_CONTEXT_SECONDS, model) if context_frames is None
                      else context_frames)
    if int(chunk_frames) < 1 or int(context_frames) < 0:
        raise ValueError(f"chunk_frames must be >= 1 and context_frames >= 0, got "
                         f"{chunk_frames} and {context_frames}")
    return int(chunk_frames), int(context_frames)


def iter_file_blocks(path, sample_rate, block_seconds=10.0):
    """Yields mono float32 blocks of an audio file at ``sample_rate``, reading block by block.

    Channels are averaged; other rates are resampled with a streaming soxr
    resampler (same quality setting as ``audio.resample``). Raises
    ``AudioError`` for missing, unreadable, empty or non-finite audio.
    """
    import soundfile as sf

    path = Path(path)
    handle = open_with_soundfile(path, sf.SoundFile)
    with handle:
        rate = handle.samplerate
        stream = None
        if rate != sample_rate:
            import soxr

            stream = soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality="HQ")
        block = max(1, int(block_seconds * rate))
        total = 0
        while True:
            try:
                data = handle.read(block, dtype="float32", always_2d=True)
            except Exception as err:
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise AudioError(f"{path}: cannot read audio ({reason})") from None
            last = len(data) < block
            mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
            if not np.all(np.isfinite(mono)):
                raise AudioError(f"{path}: audio contains NaN or infinite values")
            total += len(mono)
            if stream is not None:
                mono = stream.resample_chunk(mono, last=last)
            if len(mono):
                yield np.ascontiguousarray(mono, dtype=np.float32)
            if last:
                break
        if total == 0:
            raise AudioError(f"{path}: audio is empty")


def encode_stream(model, blocks, n_q=None, chunk_frames=None, context_frames=None,
                  progress=None):
    """Encodes audio arriving in blocks, chunk by chunk; yields codes ``[n_q, frames]`` per chunk.

    Args:
        model: a built ``DMCodec``.
        blocks: iterable of mono float32 arrays at ``model.sample_rate``.
        n_q: codebooks (default all).
        chunk_frames: frames kept per chunk (default 30 s).
        context_frames: extra frames encoded on each side of a chunk (default 1 s).
        progress: optional callable ``progress(frames_done)``.

    Concatenating the yielded arrays along frames gives ``frames_for(T)``
    frames for ``T`` input samples, as ``model.encode`` does.
    """
    chunk_frames, context_frames = _check_chunking(model, chunk_frames, context_frames)
    hop = model.hop_length
    blocks = iter(blocks)
    buffer = np.zeros(0, np.float32)
    buffer_start = 0  # sample index of buffer[0]
    exhausted = False
    start = 0  # first frame of the current chunk
    # A last chunk shorter than this is merged into the one before: a window of a few
    # samples is too short for the encoder's reflect padding.
    min_tail = conv_context_frames(model) + 1
    while True:
        want = (start + chunk_frames + max(context_frames, min_tail)) * hop
        while not exhausted and buffer_start + len(buffer) <= want:
            try:
                buffer = np.concatenate([buffer, next(blocks)])
            except StopIteration:
                exhausted = True
        total = buffer_start + len(buffer)  # the file length once exhausted
        if exhausted and total == 0:
            raise AudioError("audio is empty")
        if exhausted and total <= (start + chunk_frames + min_tail) * hop:
            stop = -(-total // hop)  # last chunk (with a short remainder merged in)
        else:
            stop = start + chunk_frames
        lo = max(0, start - context_frames) * hop
        hi = min(total, (stop + context_frames) * hop)
        window = buffer[lo - buffer_start: hi - buffer_start]
        codes = model.encode(window[None], n_q=n_q)[0]
        offset = start - lo // hop
        yield codes[:, offset: offset + stop - start]
        if progress is not None:
            progress(stop)
        if exhausted and stop * hop >= total:
            return
        start = stop
        keep_from = max(0, start - context_frames) * hop
        buffer = buffer[keep_from - buffer_start:]
        buffer_start = keep_from


def encode_long(model, audio, n_q=None, chunk_frames=None, context_frames=None, progress=None):
    """Chunked encoding of an in-memory waveform ``[samples]``; returns codes ``[n_q, frames]``."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio must be a mono waveform [samples], got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise AudioError("audio contains NaN or infinite values")
    parts = encode_stream(model, [audio], n_q, chunk_frames, context_frames, progress)
    return np.concatenate(list(parts), axis=1)


def encode_file(model, path, n_q=None, chunk_frames=None, context_frames=None, progress=None):
    """Encodes an audio file with bounded memory; returns ``(codes [n_q, frames], num_samples)``.

    ``num_samples`` is the length at the model's rate (after resampling).
    """
    counted = [0]

    def counting_blocks():
        for block in iter_file_blocks(path, model.sample_rate):
            counted[0] += len(block)
            yield block

    try:
        parts = list(encode_stream(model, counting_blocks(), n_q, chunk_frames, context_frames,
                                   progress))
    except AudioError as err:
        if str(err) == "audio is empty":
            raise AudioError(f"{path}: audio is empty") from None
        raise
    return np.concatenate(parts, axis=1), counted[0]


def decode_stream(model, codes, num_samples=None, chunk_frames=None, context_frames=None,
                  progress=None):
    """Decodes codes ``[n_q, frames]`` chunk by chunk; yields float32 audio blocks.

    The blocks concatenate to ``num_samples`` samples (default ``frames * hop``).
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must have shape [n_q, frames], got {codes.shape}")
    chunk_frames, context_frames = _check_chunking(model, chunk_frames, context_frames)
    hop = model.hop_length
    frames = codes.shape[1]
    num_samples = frames * hop if num_samples is None else int(num_samples)
    if not (frames - 1) * hop < num_samples <= frames * hop:
        raise ValueError(f"num_samples {num_samples} does not fit {frames} frames of {hop}")
    min_tail = conv_context_frames(model) + 1  # as in encode_stream
    start = 0
    while start < frames:
        stop = frames if frames - start <= chunk_frames + min_tail else start + chunk_frames
        lo, hi = max(0, start - context_frames), min(frames, stop + context_frames)
        audio = model.decode(codes[None, :, lo:hi])[0]
        block = audio[(start - lo) * hop: (stop - lo) * hop]
        yield block[: max(0, num_samples - start * hop)]
        if progress is not None:
            progress(stop)
        start = stop


def decode_long(model, codes, num_samples=None, chunk_frames=None, context_frames=None,
                progress=None):
    """Chunked decoding of codes ``[n_q, frames]``; returns float32 audio ``[samples]``."""
    return np.concatenate(list(decode_stream(model, codes, num_samples, chunk_frames,
                                             context_frames, progress)))


def _batches(lengths, max_batch):
    """Indices in runs of at most ``max_batch``, longest clips first (little padding)."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    for i in range(0, len(order), max_batch):
        yield order[i: i + max_batch]


def _stack_padded(arrays, fill=0):
    longest = max(array.shape[-1] for array in arrays)
    out = np.full((len(arrays),) + arrays[0].shape[:-1] + (longest,), fill, arrays[0].dtype)
    for row, array in enumerate(arrays):
        out[row, ..., : array.shape[-1]] = array
    return out


def encode_batch(model, clips, n_q=None, max_batch=16):
    """Encodes clips of any lengths; returns a list of codes ``[n_q, frames_i]`` in input order.

    Each clip's codes equal ``model.encode(clip[None])[0]`` (to float near-ties): clips run
    ``max_batch`` at a time, padded, with their lengths (see the module docstring).
    """
    clips = [np.asarray(clip, dtype=np.float32) for clip in clips]
    for i, clip in enumerate(clips):
        if clip.ndim != 1:
            raise ValueError(f"clip {i}: expected a mono waveform [samples], got {clip.shape}")
        if clip.size == 0:
            raise ValueError(f"clip {i} is empty")
    results = [None] * len(clips)
    for indices in _batches([len(clip) for clip in clips], max_batch):
        group = [clips[i] for i in indices]
        lengths = np.array([len(clip) for clip in group], "int32")
        codes = model.encode(_stack_padded(group), n_q=n_q, lengths=lengths)
        for row, i in enumerate(indices):
            results[i] = codes[row, :, : model.frames_for(lengths[row])]
    return results


def decode_batch(model, codes_list, num_samples=None, max_batch=16):
    """Decodes a list of codes ``[n_q, frames_i]``; returns a list of float32 waveforms.

    ``num_samples``: optional list of original lengths to crop to. Codes run ``max_batch``
    at a time, padded, with their lengths; each result equals decoding it alone (to float
    rounding).
    """
    codes_list = [np.asarray(codes) for codes in codes_list]
    for i, codes in enumerate(codes_list):
        if codes.ndim != 2 or codes.shape[1] == 0:
            raise ValueError(f"codes {i}: expected [n_q, frames] with frames > 0, got "
                             f"{codes.shape}")
        if codes.shape[0] != codes_list[0].shape[0]:
            raise ValueError(f"codes {i} has {codes.shape[0]} codebooks, codes 0 has "
                             f"{codes_list[0].shape[0]}: decode one n_q at a time")
    results = [None] * len(codes_list)
    for indices in _batches([codes.shape[1] for codes in codes_list], max_batch):
        group = [codes_list[i] for i in indices]
        frames = np.array([codes.shape[1] for codes in group], "int32")
        audio = model.decode(_stack_padded(group), lengths=frames)
        for row, i in enumerate(indices):
            length = frames[row] * model.hop_length if num_samples is None \
                else int(num_samples[i])
            results[i] = audio[row, :length]
    return results


def _compiled(step):
    # deferred: ops.graphs imports Keras, which this module leaves until the backend is chosen
    from keras_dmcodec.ops.graphs import compiled_step

    return compiled_step(step)


class _Stream:
    """Shared state handling of ``StreamingEncoder`` and ``StreamingDecoder``."""

    def __init__(self, model, batch_size=1):
        if not getattr(model, "causal", False):
            raise ValueError("streaming needs a causal model (DMCodec(causal=True)); this one "
                             "reads the future (bidirectional LSTM, centred convolutions)")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self.batch_size = int(batch_size)
        self.reset()

    @property
    def sample_rate(self):
        return self.model.sample_rate

    @property
    def hop_length(self):
        return self.model.hop_length

    @property
    def step_samples(self):
        """The smallest chunk a step takes (one hop): chunks are multiples of it (the same
        attribute as the exported streams', ``export.streaming``)."""
        return self.model.hop_length

    def _batched(self, array, rank, what):
        array = np.asarray(array)
        if array.ndim == rank - 1 and self.batch_size == 1:
            array = array[None]
        if array.ndim != rank or array.shape[0] != self.batch_size:
            raise ValueError(f"{what} must be [{self.batch_size}, ...] for {self.batch_size} "
                             f"stream(s), got shape {tuple(array.shape)}")
        return array


class StreamingEncoder(_Stream):
    """Encodes audio as it arrives: ``step(chunk) -> codes`` of the chunk's frames.

    Args:
        model: a built causal ``DMCodec``.
        n_q: codebooks to emit (default: all).
        batch_size: independent streams encoded together (each row of a chunk is one).

    Example:
    >>> from keras_dmcodec import DMCodec
    >>> model = DMCodec(n_filters=2, dimension=8, semantic_dimension=0, n_q=2,
    ...                 codebook_size=8, lstm_layers=1, causal=True, bidirectional=False)
    >>> model.build((None, None))
    >>> stream = StreamingEncoder(model)
    >>> stream.step(np.zeros(640, "float32")).shape   # 2 hops in, 2 frames out
    (1, 2, 2)
    >>> stream.frames
    2
    """

    def __init__(self, model, n_q=None, batch_size=1):
        self.n_q = model.quantizer.check_n_q(n_q)
        super().__init__(model, batch_size)
        self._step = _compiled(functools.partial(model.encode_step, n_q=self.n_q))

    def reset(self):
        """Starts every stream afresh (as if nothing had been streamed)."""
        self.state = self.model.initial_encoder_state(self.batch_size)
        self.frames = 0

    def step(self, audio):
        """Codes ``[batch, n_q, k]`` (int32) of the next ``k * hop_length`` samples.

        ``audio``: float ``[batch, samples]`` (``[samples]`` for one stream), ``samples``
        a positive multiple of the model's hop (320 at 16 kHz: 20 ms).
        """
        from keras import ops  # deferred: Keras is imported once the backend is chosen

        audio = self._batched(audio, 2, "audio")
        hop = self.model.hop_length
        if audio.shape[1] == 0 or audio.shape[1] % hop:
            raise ValueError(f"a chunk must be a positive multiple of the hop ({hop} samples "
                             f"= {1000 * hop / self.model.sample_rate:g} ms), got "
                             f"{audio.shape[1]} samples")
        if not np.issubdtype(audio.dtype, np.floating) or not np.isfinite(audio).all():
            raise ValueError("audio must be finite floats (NaN, inf or integers given)")
        self.state, codes = self._step(self.state, audio.astype(np.float32))
        codes = ops.convert_to_numpy(codes).astype(np.int32)
        self.frames += codes.shape[-1]
        return codes


class StreamingDecoder(_Stream):
    """Decodes codes as they arrive: ``step(codes) -> audio`` of those frames.

    Args:
        model: a built causal ``DMCodec``.
        batch_size: independent streams decoded together.

    Example:
    >>> from keras_dmcodec import DMCodec
    >>> model = DMCodec(n_filters=2, dimension=8, semantic_dimension=0, n_q=2,
    ...                 codebook_size=8, lstm_layers=1, causal=True, bidirectional=False)
    >>> model.build((None, None))
    >>> StreamingDecoder(model).step(np.zeros((2, 3), "int32")).shape  # 3 frames of 2 codebooks
    (1, 960)
    """

    def __init__(self, model, batch_size=1):
        super().__init__(model, batch_size)
        self._step = _compiled(model.decode_step)

    def reset(self):
        """Starts every stream afresh."""
        self.state = self.model.initial_decoder_state(self.batch_size)
        self.frames = 0

    def step(self, codes):
        """Audio ``[batch, k * hop_length]`` (float32) of the next ``k`` frames of codes
        ``[batch, n_q, k]`` (``[n_q, k]`` for one stream)."""
        from keras import ops  # deferred: Keras is imported once the backend is chosen

        codes = self._batched(codes, 3, "codes")
        size = self.model.codebook_size
        if codes.shape[-1] == 0:
            raise ValueError("codes must hold at least one frame")
        if not np.issubdtype(codes.dtype, np.integer) or codes.min() < 0 or codes.max() >= size:
            raise ValueError(f"codes must be integers in [0, {size})")
        self.model.quantizer.check_n_q(codes.shape[1])
        self.state, audio = self._step(self.state, codes.astype(np.int32))
        self.frames += codes.shape[-1]
        return ops.convert_to_numpy(audio).astype(np.float32)



@dataclass
class StreamRun:
    """What ``stream_through`` measured: the outputs and, per chunk, the compute times.

    Attributes:
        audio: float32 ``[samples]``, the decoded stream cut to the input's length.
        codes: int32 ``[n_q, frames]``, every code the encoder emitted.
        chunk_seconds: audio per chunk (the algorithmic latency is one chunk).
        encode_seconds, decode_seconds: compute time of each chunk's encoder and decoder
            step (float arrays, one entry per chunk).
        latency_seconds: per chunk, from the moment its last sample arrived to the moment
            its decoded audio was ready; in a real-time run this includes waiting for
            earlier chunks that ran late, otherwise it equals the compute time.
        realtime: whether the chunks arrived at real-time pace.
        warmup_seconds: the untimed first step on silence (compilation: ``jax.jit``,
            ``tf.function`` tracing), after which both streams were reset.
    """

    audio: np.ndarray
    codes: np.ndarray
    chunk_seconds: float
    encode_seconds: np.ndarray
    decode_seconds: np.ndarray
    latency_seconds: np.ndarray
    realtime: bool
    warmup_seconds: float = 0.0

    def summary(self):
        """A dict of milliseconds (median, p99 and max per chunk of the encoder, the decoder,
        both, and the latency), the real-time factor (audio seconds per compute second) and
        the chunks that finished after the next chunk arrived (``late_chunks``)."""
        total = self.encode_seconds + self.decode_seconds
        out = {"chunks": len(total), "chunk_ms": 1000.0 * self.chunk_seconds}
        for name, values in (("encode", self.encode_seconds), ("decode", self.decode_seconds),
                             ("total", total), ("latency", self.latency_seconds)):
            out[f"{name}_median_ms"] = 1000.0 * float(np.median(values))
            out[f"{name}_p99_ms"] = 1000.0 * float(np.percentile(values, 99))
            out[f"{name}_max_ms"] = 1000.0 * float(np.max(values))
        out["real_time_factor"] = len(total) * self.chunk_seconds / float(np.sum(total))
        out["late_chunks"] = int(np.sum(self.latency_seconds > self.chunk_seconds))
        return out


def stream_through(encoder, decoder, audio, chunk_samples, realtime=False, warmup=True,
                   clock=time.perf_counter, sleep=time.sleep):
    """Runs ``audio`` through a streaming encoder and decoder chunk by chunk, as from a live
    source, and times every step.

    Args:
        encoder, decoder: objects with ``step``, ``reset`` and (the encoder) ``sample_rate``
            (``StreamingEncoder`` / ``StreamingDecoder``, or the exported
            ``keras_dmcodec.export.streaming`` ones), fresh or reset.
        audio: float ``[samples]``, one stream. The last chunk is zero-padded to whole hops
            (a stream emits whole frames); the output is cut back to ``samples``.
        chunk_samples: samples per chunk, a positive multiple of the hop.
        realtime: feed each chunk only when it would have arrived from a microphone
            (``chunk_samples / sample_rate`` seconds after the previous one); otherwise as
            fast as possible.
        warmup: first run one chunk of silence through both and reset them, so that the
            timings are of the compiled steps (the warm-up time is reported apart).
        clock, sleep: time source and wait (tests pass fakes).

    Returns:
        A ``StreamRun``.
    """
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"audio must be a non-empty 1-D array, got shape {audio.shape}")
    sample_rate = encoder.sample_rate
    chunk_samples = int(chunk_samples)
    total = -(-audio.size // chunk_samples) * chunk_samples
    padded = np.zeros(total, np.float32)
    padded[: audio.size] = audio
    chunk_seconds = chunk_samples / sample_rate
    warmup_seconds = 0.0
    if warmup:
        t0 = clock()
        decoder.step(encoder.step(np.zeros((1, chunk_samples), np.float32)))
        warmup_seconds = clock() - t0
        encoder.reset()
        decoder.reset()
    encode_s, decode_s, latency, codes, decoded = [], [], [], [], []
    start = clock()
    for index in range(total // chunk_samples):
        chunk = padded[index * chunk_samples:(index + 1) * chunk_samples]
        arrived = start + (index + 1) * chunk_seconds if realtime else clock()
        if realtime:
            wait = arrived - clock()
            if wait > 0:
                sleep(wait)
        t0 = clock()
        frame_codes = encoder.step(chunk[None])
        t1 = clock()
        decoded.append(decoder.step(frame_codes)[0])
        t2 = clock()
        codes.append(frame_codes[0])
        encode_s.append(t1 - t0)
        decode_s.append(t2 - t1)
        latency.append(t2 - (arrived if realtime else t0))
    return StreamRun(audio=np.concatenate(decoded)[: audio.size],
                     codes=np.concatenate(codes, axis=-1), chunk_seconds=chunk_seconds,
                     encode_seconds=np.asarray(encode_s), decode_seconds=np.asarray(decode_s),
                     latency_seconds=np.asarray(latency), realtime=bool(realtime),
                     warmup_seconds=warmup_seconds)
