"""float32 vs mixed_bfloat16: speed and quality of the shipped model on each Keras backend.

For each backend (its own process): the model (default the shipped ``dmcodec_small``) built
with ``dtype="float32"`` and with ``dtype="mixed_bfloat16"`` (every layer but the quantiser
in bfloat16; variables and the quantiser's distances stay float32) encodes and decodes the
same held-out speech (default 10 s). Columns: encode / decode seconds (warm-up, then the best of
``--repeats``), the fraction of codes equal to that backend's float32 codes (all codebooks, and
the first alone), STOI and mel distance of the reconstruction. The last row is the PyTorch
reference (``speechtokenizer``, float32, random weights of the same architecture: speed only),
in the same run.

    python benchmarks/bench_precision.py [--model dmcodec_small] [--seconds 10] [--repeats 3]
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_export_quality import best_of, long_clip  # noqa: E402
from bench_inference import SMALL  # noqa: E402
from bench_speechtokenizer import _log, run_backend_worker, speech_like  # noqa: E402

POLICIES = ("float32", "mixed_bfloat16")


def run_worker(workdir, model_spec, seconds, repeats):
    import keras
    from pystoi import stoi

    from keras_dmcodec.evaluation.metrics import mel_distance
    from keras_dmcodec.models.loader import resolve_model

    backend = keras.backend.backend()
    rows, float_codes = {}, None
    for policy in POLICIES:
        model = resolve_model(model_spec, dtype=policy).model
        audio = long_clip(ROOT / "tests" / "data" / "heldout", seconds, model.sample_rate)
        encode_s, codes = best_of(lambda m=model, a=audio: m.encode(a[None]), repeats)
        decode_s, decoded = best_of(lambda m=model, c=codes: m.decode(c), repeats)
        decoded = decoded[0, : len(audio)]
        float_codes = codes if float_codes is None else float_codes
        rows[policy] = dict(
            encode_s=encode_s, decode_s=decode_s,
            agree=float(np.mean(codes == float_codes)),
            agree_first=float(np.mean(codes[:, 0] == float_codes[:, 0])),
            stoi=float(stoi(audio, decoded, model.sample_rate)),
            mel=float(mel_distance(audio, decoded, model.sample_rate)))
        _log(f"{backend} {policy}: encode {encode_s:.3f} s, decode {decode_s:.3f} s")
    (Path(workdir) / f"result_{backend}.json").write_text(json.dumps(rows))


def run_reference(seconds, repeats):
    import torch

    from keras_dmcodec.convert.reference import build_random_reference

    torch.set_num_threads(os.cpu_count())
    ref = build_random_reference(dict(SMALL), seed=0, probe_audio=speech_like(3, seed=123)[None])
    x = torch.from_numpy(speech_like(seconds, seed=1))[None, None]
    with torch.inference_mode():
        encode_s, codes = best_of(lambda: ref.encode(x), repeats)
        decode_s, _ = best_of(lambda: ref.decode(codes), repeats)
    return dict(encode_s=encode_s, decode_s=decode_s)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dmcodec_small")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", nargs="*", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--workdir")
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args.workdir, args.model, args.seconds, args.repeats)
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="bench_precision_"))
    results = {}
    for backend in args.backends:
        results[backend] = run_backend_worker(
            __file__, backend, workdir, ["--model", args.model, "--seconds", str(args.seconds),
                                         "--repeats", str(args.repeats)])
    reference = run_reference(args.seconds, args.repeats)
    print(f"\n{args.model}, {args.seconds:g} s of held-out speech, batch 1, "
          f"{os.cpu_count()} threads; codes compared with the same backend's float32 codes")
    print("| backend | dtype policy | encode s | decode s | codes = float32 | 1st codebook "
          "| STOI | mel distance |")
    print("|---|---|---|---|---|---|---|---|")
    for backend, rows in results.items():
        for policy, row in (rows or {}).items():
            print(f"| {backend} | {policy} | {row['encode_s']:.3f} | {row['decode_s']:.3f} | "
                  f"{100 * row['agree']:.1f} % | {100 * row['agree_first']:.1f} % | "
                  f"{row['stoi']:.3f} | {row['mel']:.3f} |")
    print(f"| speechtokenizer (PyTorch reference) | float32 | {reference['encode_s']:.3f} | "
          f"{reference['decode_s']:.3f} | - | - | - | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
