"""Per-stage time breakdown of encode and decode: DMCodec (each Keras backend) vs SpeechTokenizer.

For each size, builds the reference SpeechTokenizer model in PyTorch with random weights
(``build_random_reference``), saves it as a checkpoint, and converts that checkpoint into
our DMCodec on each Keras backend, each in its own process (``KERAS_BACKEND`` is fixed per
process). Both implementations are then cut into the same stages:

1. encoder convs: every encoder layer before the LSTM;
2. encoder LSTM: the ``SLSTM`` layer, its skip connection included;
3. encoder tail: the ELU and the last conv (a row of its own);
4. RVQ encode: latents to codes, all ``n_q`` (8) codebooks;
5. RVQ decode: codes to quantized latents;
6. decoder first conv, then the decoder LSTM (``SLSTM`` with its skip);
7. decoder convs: every decoder layer after the LSTM.

Each stage is fed the previous stage's real output (computed once) and is compiled the
best way its backend allows: a tiny ``keras.Model`` whose ``call`` runs the stage's layers,
timed through ``predict_on_batch`` (a ``tf.function`` with ``jit_compile=False`` on
TensorFlow, ``jax.jit`` of the stateless predict step on JAX, eager under ``no_grad`` on
torch); the reference runs under ``torch.inference_mode()``. Our stages pass each row's
valid length (``lengths``) to the layers exactly as ``DMCodec.encode``/``decode`` do
(``--no-lengths`` times the plain path instead). Every timing is a warm-up call (which
includes compilation) then the median of ``--repeats`` calls. The whole ``encode`` and
``decode`` are timed too (``model.encode(audio)`` / ``model.decode(codes)``,
``ref.encode(x)`` / ``ref.decode(codes)``), so each table shows the stage sum next to the
whole. Decode stages of every implementation decode the reference's codes.

Sizes: ``base`` is the reference DM-Codec / SpeechTokenizer configuration (103.7 M
parameters); ``small`` is the shipped ``dmcodec_small`` architecture (read from its preset
config), with random weights, which timings do not depend on. Prints one Markdown table
per size (seconds per stage), with the CPU model and thread count. ``--threads`` sets
torch's thread count for the reference and the torch backend (default: every CPU); on a
machine that other processes load, 1 avoids torch's thread oversubscription stalls.

    python benchmarks/profile_stages.py --sizes base small --seconds 10 --repeats 3 \\
        --backends tensorflow jax torch
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_speechtokenizer import _timed, run_backend_worker, speech_like  # noqa: E402

# (key, row label); the sums and wholes are filled in from the stages.
ENCODE_STAGES = [
    ("enc_convs", "encoder convs (layers before the LSTM)"),
    ("enc_lstm", "encoder LSTM (SLSTM + skip)"),
    ("enc_tail", "encoder tail (ELU + last conv)"),
    ("rvq_encode", "RVQ encode (latents -> codes)"),
]
DECODE_STAGES = [
    ("rvq_decode", "RVQ decode (codes -> latents)"),
    ("dec_conv", "decoder first conv"),
    ("dec_lstm", "decoder LSTM (SLSTM + skip)"),
    ("dec_convs", "decoder convs (layers after the LSTM)"),
]
ALL_BACKENDS = ["tensorflow", "jax", "torch"]


def _log(message):
    print(message, file=sys.stderr, flush=True)


def reference_config(size):
    """The reference (``speechtokenizer``) config dict of a size: ``base`` or ``small``."""
    from keras_dmcodec.convert.reference import REFERENCE_BASE_CONFIG

    if size == "base":
        return dict(REFERENCE_BASE_CONFIG)
    from keras_dmcodec.presets import locate_preset

    ours = locate_preset("dmcodec_small").config
    # The reference hard-codes these; a preset that changed them has no reference twin.
    fixed = dict(causal=False, compress=2, activation="ELU")
    for key, value in fixed.items():
        if ours.get(key, value) != value:
            raise SystemExit(f"dmcodec_small has {key}={ours[key]!r}; the reference model "
                             f"only has {value!r}")
    cfg = dict(REFERENCE_BASE_CONFIG)
    cfg.update(
        n_filters=ours["n_filters"], strides=list(ours["ratios"]), dimension=ours["dimension"],
        semantic_dimension=ours["semantic_dimension"], bidirectional=ours["bidirectional"],
        dilation_base=ours["dilation_base"], residual_kernel_size=ours["residual_kernel_size"],
        n_residual_layers=ours["n_residual_layers"], lstm_layers=ours["lstm_layers"],
        codebook_size=ours["codebook_size"], n_q=ours["n_q"], sample_rate=ours["sample_rate"],
    )
    return cfg


def _slstm_index(layers, is_slstm):
    found = [i for i, layer in enumerate(layers) if is_slstm(layer)]
    if len(found) != 1:
        raise RuntimeError(f"expected one SLSTM layer, found {len(found)}")
    return found[0]


def _with_sums(times):
    times["encode_sum"] = sum(times[key] for key, _ in ENCODE_STAGES)
    times["decode_sum"] = sum(times[key] for key, _ in DECODE_STAGES)
    return times


# ------------------------------------------------------------------ reference side
def profile_reference(ref, audio, repeats):
    """Times the reference's stages and wholes on ``audio`` ``[batch, samples]``.

    Returns ``(times dict, codes [batch, n_q, frames] int32)``.
    """
    import torch

    x = torch.from_numpy(audio)[:, None]  # [batch, 1, samples]
    n_q = ref.n_q
    enc, dec = ref.encoder.model, ref.decoder.model

    def is_slstm(module):
        return type(module).__name__ == "SLSTM"

    i = _slstm_index(list(enc), is_slstm)
    j = _slstm_index(list(dec), is_slstm)
    times = {}

    def stage(key, fn, value):
        times[key], out = _timed(lambda: fn(value), repeats)
        return out

    with torch.inference_mode():
        h = stage("enc_convs", enc[:i], x)
        h = stage("enc_lstm", enc[i], h)
        latents = stage("enc_tail", enc[i + 1:], h)
        codes = stage("rvq_encode", lambda z: ref.quantizer.encode(z, n_q=n_q), latents)
        times["encode"], whole = _timed(lambda: ref.encode(x, n_q=n_q), repeats)
        if not torch.equal(whole, codes):
            _log("speechtokenizer: whole encode's codes differ from the stages' codes")
        h = stage("rvq_decode", ref.quantizer.decode, codes)
        h = stage("dec_conv", dec[:j], h)
        h = stage("dec_lstm", dec[j], h)
        stage("dec_convs", dec[j + 1:], h)
        times["decode"], _ = _timed(lambda: ref.decode(codes), repeats)
    return _with_sums(times), codes.numpy().transpose(1, 0, 2).astype("int32")


def prepare_size(workdir, size, seconds, batch, repeats):
    """Builds, saves and times the reference of ``size``; writes the inputs for the workers."""
    import torch

    from keras_dmcodec.convert.reference import build_random_reference

    cfg = reference_config(size)
    folder = workdir / size
    folder.mkdir()
    ref = build_random_reference(cfg, seed=0, probe_audio=speech_like(3, seed=123)[None])
    torch.save(ref.state_dict(), folder / "reference.pt")
    (folder / "config.json").write_text(json.dumps(cfg))
    params = sum(p.numel() for p in ref.parameters())
    audio = np.stack([speech_like(seconds, seed=1000 + b) for b in range(batch)])
    times, codes = profile_reference(ref, audio, repeats)
    np.savez(folder / "inputs.npz", audio=audio, codes=codes)
    _log(f"speechtokenizer {size}: encode {times['encode']:.3f} s "
         f"(stages {times['encode_sum']:.3f}), decode {times['decode']:.3f} s "
         f"(stages {times['decode_sum']:.3f})")
    return dict(cfg=cfg, params=params, frames=codes.shape[-1], times=times)


# ------------------------------------------------------------------ our side
def profile_ours(model, audio, ref_codes, repeats, use_lengths):
    """Times our stages and wholes (runs in a worker, with the backend fixed).

    Returns ``(times dict, our codes [batch, n_q, frames])``.
    """
    import keras

    from keras_dmcodec.layers.conv import NormConv1D, NormConv1DTranspose
    from keras_dmcodec.layers.seanet import SLSTM

    backend = keras.backend.backend()

    class Stage(keras.Model):
        """Runs ``fn(*inputs)`` through Keras's compiled predict path; tracks the codec's
        variables (as ``DMCodec``'s own inference model does), so JAX passes them as state
        rather than folding them into the graph as constants."""

        def __init__(self, codec, fn, **kwargs):
            super().__init__(**kwargs)
            self.codec = codec
            self.fn = fn

        def call(self, inputs):
            return self.fn(*inputs)

    def is_conv(layer):
        return isinstance(layer, NormConv1D | NormConv1DTranspose)

    def run_layers(layers, x, lengths=None):
        # As ``_SEANetBase.call``: lengths go to every layer but the activations and
        # follow the convolutions' strides.
        for layer in layers:
            if lengths is None or isinstance(layer, keras.layers.ELU):
                x = layer(x)
                continue
            x = layer(x, lengths=lengths)
            if is_conv(layer):
                lengths = layer.output_lengths(lengths)
        return x

    def advance(layers, lengths):
        for layer in layers:
            if is_conv(layer):
                lengths = layer.output_lengths(lengths)
        return lengths

    times = {}

    def stage(key, fn, *arrays):
        compiled = Stage(model, fn, name=f"stage_{key}")
        if backend == "tensorflow":
            compiled.jit_compile = False  # a plain tf.function, as DMCodec.encode runs
        times[key], out = _timed(lambda: compiled.predict_on_batch(arrays), repeats)
        return np.asarray(out)

    def layers_stage(key, layers, x, lengths, squeeze=False):
        def fn(value, n=None):
            y = run_layers(layers, value, n)
            return y[..., 0] if squeeze else y

        return stage(key, fn, x, lengths) if use_lengths else stage(key, fn, x)

    n_q = model.n_q
    enc, dec = model.encoder.model_layers, model.decoder.model_layers
    i = _slstm_index(enc, lambda layer: isinstance(layer, SLSTM))
    j = _slstm_index(dec, lambda layer: isinstance(layer, SLSTM))
    batch = audio.shape[0]
    samples = np.full(batch, audio.shape[1], "int32")
    frames = np.full(batch, ref_codes.shape[-1], "int32")

    h = layers_stage("enc_convs", enc[:i], audio[..., None], samples)
    lengths = advance(enc[:i], samples)
    h = layers_stage("enc_lstm", enc[i:i + 1], h, lengths)
    latents = layers_stage("enc_tail", enc[i + 1:], h, lengths)
    codes = stage("rvq_encode", lambda z: model.quantizer.encode(z, n_q=n_q), latents)
    times["encode"], whole = _timed(lambda: model.encode(audio), repeats)
    if not np.array_equal(whole, codes):
        _log(f"{backend}: whole encode's codes differ from the stages' codes on "
             f"{100 * np.mean(whole != codes):.2f} % of them")

    h = stage("rvq_decode", model.quantizer.decode, ref_codes)
    h = layers_stage("dec_conv", dec[:j], h, frames)
    lengths = advance(dec[:j], frames)
    h = layers_stage("dec_lstm", dec[j:j + 1], h, lengths)
    layers_stage("dec_convs", dec[j + 1:], h, lengths, squeeze=True)
    times["decode"], _ = _timed(lambda: model.decode(ref_codes), repeats)
    return _with_sums(times), codes


def run_worker(workdir, sizes, repeats, use_lengths, threads):
    """Runs in a subprocess with KERAS_BACKEND set: converts and profiles; writes JSON."""
    import keras

    from keras_dmcodec.convert import convert_checkpoint
    from keras_dmcodec.ops.graphs import bucket_frames, pads_to_buckets

    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
    results = {}
    for size in sizes:
        folder = workdir / size
        start = time.perf_counter()
        model = convert_checkpoint(folder / "reference.pt", folder / "config.json")
        convert_s = time.perf_counter() - start
        inputs = np.load(folder / "inputs.npz")
        times, codes = profile_ours(model, inputs["audio"], inputs["codes"], repeats,
                                    use_lengths)
        frames = inputs["codes"].shape[-1]
        results[size] = dict(
            times=times,
            convert_s=convert_s,
            code_agreement=float(np.mean(codes == inputs["codes"])),
            padded_frames=bucket_frames(frames) if pads_to_buckets() else frames,
        )
        _log(f"{backend} {size}: encode {times['encode']:.3f} s "
             f"(stages {times['encode_sum']:.3f}), decode {times['decode']:.3f} s "
             f"(stages {times['decode_sum']:.3f})")
        del model
    (workdir / f"result_{backend}.json").write_text(json.dumps(results))


def _run_backend(backend, workdir, sizes, repeats, use_lengths, threads):
    args = ["--repeats", str(repeats), "--threads", str(threads), "--sizes", *sizes]
    if not use_lengths:
        args.append("--no-lengths")
    return run_backend_worker(__file__, backend, workdir, args)


# ------------------------------------------------------------------ report
def cpu_model():
    """The CPU's ``lscpu`` "Model name" (or the platform's processor string)."""
    try:
        out = subprocess.run(["lscpu"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, check=False).stdout
        for line in out.splitlines():
            if line.strip().startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def format_table(reference, ours):
    """The Markdown table of one size: a row per stage, a column per implementation."""
    names = ["speechtokenizer", *ours]
    columns = [reference["times"], *(r["times"] if r else None for r in ours.values())]
    rows = ["| stage | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names)]

    def row(label, key, bold=False):
        cells = []
        for times in columns:
            cell = "failed" if times is None else f"{times[key]:.3f}"
            cells.append(f"**{cell}**" if bold and times is not None else cell)
        rows.append(f"| {f'**{label}**' if bold else label} | " + " | ".join(cells) + " |")

    for key, label in ENCODE_STAGES:
        row(label, key)
    row("encode: stage sum", "encode_sum", bold=True)
    row("encode: whole (`encode`)", "encode", bold=True)
    for key, label in DECODE_STAGES:
        row(label, key)
    row("decode: stage sum", "decode_sum", bold=True)
    row("decode: whole (`decode`)", "decode", bold=True)
    return "\n".join(rows)


def report(sizes, prepared, ours, args, load_before):
    print(f"\nCPU: {cpu_model()}, {os.cpu_count()} threads; torch.set_num_threads({args.threads})"
          f" for the reference and the torch backend. Seconds per call, batch {args.batch}, "
          f"{args.seconds:g} s of speech-like audio, median of {args.repeats} runs after a "
          f"warm-up. 1-minute load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after (other processes skew timings).")
    for size in sizes:
        info = prepared[size]
        cfg = info["cfg"]
        weights = ("random weights" if size == "base" else
                   "random weights in the architecture of the shipped dmcodec_small")
        print(f"\n### {size}: {info['params'] / 1e6:.1f} M parameters, n_filters "
              f"{cfg['n_filters']}, dimension {cfg['dimension']}, {cfg['lstm_layers']} LSTM "
              f"layers, n_q {cfg['n_q']}, {info['frames']} frames ({weights})\n")
        print(format_table(info, {b: (r or {}).get(size) for b, r in ours.items()}))
        notes = []
        for backend, result in ours.items():
            r = (result or {}).get(size)
            if r is None:
                continue
            notes.append(f"{backend}: codes equal to the reference's "
                         f"{100 * r['code_agreement']:.2f} %, conversion {r['convert_s']:.1f} s"
                         + (f", whole encode/decode pad to {r['padded_frames']} frames"
                            if r["padded_frames"] != info["frames"] else ""))
        if notes:
            print("\n" + "; ".join(notes) + ".")
    lengths = ("pass per-row `lengths` to the layers, as `DMCodec.encode`/`decode` do"
               if args.lengths else "run without `lengths` (`--no-lengths`); "
               "`DMCodec.encode`/`decode` pass them")
    print(f"\nOur stages {lengths}. Each stage call converts numpy in and out, which the "
          "whole call does once. Decode rows of every column decode the reference's codes.")


def main(argv=None):
    """Parses arguments and runs the reference then every backend (or one worker)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["base", "small"],
                        choices=["base", "small"])
    parser.add_argument("--seconds", type=float, default=10, help="input length (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up")
    parser.add_argument("--batch", type=int, default=1, help="clips per call (default 1)")
    parser.add_argument("--backends", nargs="+", default=ALL_BACKENDS, choices=ALL_BACKENDS)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch threads of the reference and the torch backend (default: "
                        "all CPUs; 1 is steadier on a machine other processes share)")
    parser.add_argument("--no-lengths", dest="lengths", action="store_false",
                        help="time our stages without per-row lengths (encode/decode use them)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = list(dict.fromkeys(args.sizes))
    if args.worker:
        run_worker(Path(args.workdir), sizes, args.repeats, args.lengths, args.threads)
        return 0
    import torch

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="profile_stages_") as tmp:
        workdir = Path(tmp)
        prepared = {size: prepare_size(workdir, size, args.seconds, args.batch, args.repeats)
                    for size in sizes}
        ours = {b: _run_backend(b, workdir, sizes, args.repeats, args.lengths, args.threads)
                for b in args.backends}
    report(sizes, prepared, ours, args, load_before)
    return 0 if all(ours.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
