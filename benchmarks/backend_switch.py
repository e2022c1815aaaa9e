"""Backend switching: train a few steps on one backend, save, reload under the other two.

Trains a tiny codec with ``DMCodecTrainer`` for a few steps on ``--train-backend`` (default
JAX), saves the codec preset, then in one subprocess per backend reloads it, encodes and decodes
the bundled speech sample and prints, in one table, the code agreement and the max audio
difference against the training backend, and encode/decode speed.

    python benchmarks/backend_switch.py [--train-backend jax] [--steps 3]
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
BACKENDS = ("tensorflow", "jax", "torch")
CONFIG = dict(n_filters=8, dimension=32, semantic_dimension=16, n_q=4, codebook_size=64,
              lstm_layers=1, kmeans_iters=5)
# Small discriminators so a few steps take seconds on a CPU (the paper's are much wider).
DISCRIMINATORS = {
    "mpd": {"periods": [2, 3], "channels": [4, 8]},
    "msd": {"num_scales": 2, "channels": [8] * 7},
    "mstft": {"filters": 4, "n_ffts": [256, 128], "hop_lengths": [64, 32]},
}


def train(workdir, steps):
    import keras

    from keras_dmcodec import DMCodec
    from keras_dmcodec.audio import bundled_sample, load_audio
    from keras_dmcodec.models.trainer import DMCodecTrainer

    keras.utils.set_random_seed(0)
    audio, _ = load_audio(bundled_sample()[0], sample_rate=16000)
    crops = np.stack([audio[i * 9600: i * 9600 + 9600] for i in range(6)])
    codec = DMCodec(**CONFIG, seed=0)
    trainer = DMCodecTrainer(codec, discriminators=DISCRIMINATORS)
    trainer.compile()
    start = time.perf_counter()
    trainer.fit(crops, batch_size=2, epochs=1, steps_per_epoch=steps, verbose=0)
    codec.save_to_preset(workdir / "preset")
    return dict(train_s=time.perf_counter() - start)


def evaluate(workdir):
    import keras

    from keras_dmcodec.audio import bundled_sample, load_audio
    from keras_dmcodec.models.loader import resolve_model

    model = resolve_model(workdir / "preset").model
    audio, _ = load_audio(bundled_sample()[0], sample_rate=16000)
    batch = audio[None]
    model.encode(batch)  # compile
    start = time.perf_counter()
    codes = model.encode(batch)
    encode_s = time.perf_counter() - start
    model.decode(codes)
    start = time.perf_counter()
    decoded = model.decode(codes, num_samples=len(audio))
    decode_s = time.perf_counter() - start
    name = keras.backend.backend()
    np.savez(workdir / f"{name}.npz", codes=codes, decoded=decoded)
    return dict(encode_s=encode_s, decode_s=decode_s, seconds=len(audio) / 16000)


def _run(backend, *args):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, __file__, *map(str, args)], env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{backend}: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-backend", choices=BACKENDS, default="jax")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--worker", choices=["train", "evaluate"])
    parser.add_argument("--workdir")
    args = parser.parse_args(argv)
    if args.worker:
        workdir = Path(args.workdir)
        result = train(workdir, args.steps) if args.worker == "train" else evaluate(workdir)
        print(json.dumps(result))
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="backend_switch_"))
    trained = _run(args.train_backend, "--worker", "train", "--workdir", workdir,
                   "--steps", args.steps)
    print(f"trained {args.steps} steps on {args.train_backend} in {trained['train_s']:.1f} s; "
          f"preset {workdir / 'preset'}")
    rows = {b: _run(b, "--worker", "evaluate", "--workdir", workdir) for b in BACKENDS}
    ref = np.load(workdir / f"{args.train_backend}.npz")
    print(f"{'backend':<12} {'codes = ' + args.train_backend:>16} {'max |audio diff|':>17} "
          f"{'enc xRT':>8} {'dec xRT':>8}")
    for backend, row in rows.items():
        out = np.load(workdir / f"{backend}.npz")
        agree = np.mean(out["codes"] == ref["codes"])
        diff = np.abs(out["decoded"] - ref["decoded"]).max()
        print(f"{backend:<12} {100 * agree:15.2f}% {diff:17.2e} "
              f"{row['seconds'] / row['encode_s']:8.1f} {row['seconds'] / row['decode_s']:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
