"""Training-step speed: our DMCodecTrainer (each Keras backend) vs the reference PyTorch step.

The reference step is SpeechTokenizer's trainer loop (DM-Codec's code base): generator
forward, discriminator update on the detached reconstruction, then generator update with
L_fm + L_adv + 4-scale mel + 10 * commitment + 500 * L1 + 120 * distillation, two Adam
optimizers (lr 1e-4, betas 0.9/0.99). It runs the reference's own model, discriminators and
loss functions; ``torchaudio`` (not installable beside the CPU torch) is replaced by a shim
whose Spectrogram / MelScale compute the same transforms with ``torch.stft`` and librosa's
Slaney/HTK filters. Same config, batch and segment on both sides, one run, one table.

    python benchmarks/bench_train_step.py --preset small --batch 8 --seconds 1 --steps 3 \
        [--no-discriminators | --discriminators mstft [mpd msd]] [--dtype mixed_bfloat16]

``--discriminators`` times a subset of the three (both sides), e.g. ``mstft`` alone as
EnCodec trains, to weigh each one's cost. ``--adversarial-every K`` runs the discriminators'
update and the GAN terms on every K-th step only (our ``DMCodecTrainer(adversarial_every=K)``;
the reference loop does the same), and reports the mean step over a whole number of K-step
cycles (``--steps`` must be a multiple of K).
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DISCRIMINATORS = {"mpd": {}, "msd": {}, "mstft": {"filters": 32}}


def _preset_config(name):
    from keras_dmcodec.presets import PRESETS

    return dict(PRESETS[f"dmcodec_{name}"]["config"])


def _install_torchaudio_shim():
    import librosa
    import torch

    class Spectrogram(torch.nn.Module):
        def __init__(self, n_fft, hop_length, win_length, window_fn, normalized, center,
                     pad_mode, power):
            super().__init__()
            self.n_fft, self.hop, self.win = n_fft, hop_length, win_length
            self.register_buffer("window", window_fn(win_length))
            self.normalized, self.center = normalized, center

        def forward(self, x):
            shape = x.shape
            spec = torch.stft(x.reshape(-1, shape[-1]), self.n_fft, self.hop, self.win,
                              self.window, center=self.center, return_complex=True)
            if self.normalized:
                spec = spec / self.window.pow(2).sum().sqrt()
            return spec.reshape(shape[:-1] + spec.shape[-2:])

    class MelScale(torch.nn.Module):
        def __init__(self, n_mels, sample_rate, n_stft, f_min=0.0, f_max=None, norm=None,
                     mel_scale="htk"):
            super().__init__()
            fb = librosa.filters.mel(sr=sample_rate, n_fft=(n_stft - 1) * 2, n_mels=n_mels,
                                     fmin=f_min, fmax=f_max or sample_rate / 2, htk=True,
                                     norm="slaney")
            self.fb = torch.tensor(fb.T)

    shim = types.ModuleType("torchaudio")
    shim.transforms = types.SimpleNamespace(Spectrogram=Spectrogram, MelScale=MelScale)
    sys.modules["torchaudio"] = shim
    if "matplotlib" not in sys.modules:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            mpl = types.ModuleType("matplotlib")
            mpl.pylab = types.ModuleType("matplotlib.pylab")
            sys.modules["matplotlib"] = mpl
            sys.modules["matplotlib.pylab"] = mpl.pylab


def _load_reference_file(relative, name):
    spec = importlib.util.find_spec("speechtokenizer")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def _summary(times, every):
    # One adversarial step per `every`: the mean over whole cycles is the cost per step.
    return statistics.median(times) if every == 1 else statistics.mean(times)


def run_reference(config, batch, seconds, steps, threads, discriminators=("mpd", "msd", "mstft"),
                  every=1):
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    _install_torchaudio_shim()
    from keras_dmcodec.convert.reference import import_reference_model

    model_mod = import_reference_model()
    disc_mod = importlib.import_module("speechtokenizer.discriminators")
    loss = _load_reference_file("trainer/loss.py", "speechtokenizer_reference_loss")
    cfg = {"n_filters": config["n_filters"], "strides": config["ratios"],
           "dimension": config["dimension"], "semantic_dimension": config["semantic_dimension"],
           "bidirectional": config["bidirectional"], "dilation_base": 2,
           "residual_kernel_size": 3, "n_residual_layers": 1,
           "lstm_layers": config["lstm_layers"], "activation": "ELU",
           "codebook_size": config["codebook_size"], "n_q": config["n_q"],
           "sample_rate": config["sample_rate"]}
    generator = model_mod.SpeechTokenizer(cfg).train()
    makers = {"mpd": disc_mod.MultiPeriodDiscriminator, "msd": disc_mod.MultiScaleDiscriminator,
              "mstft": lambda: disc_mod.MultiScaleSTFTDiscriminator(32)}
    discs = [makers[name]() for name in discriminators]
    optim_g = torch.optim.Adam(generator.parameters(), 1e-4, betas=(0.9, 0.99))
    optim_d = torch.optim.Adam([p for d in discs for p in d.parameters()], 1e-4,
                               betas=(0.9, 0.99)) if discs else None
    mel_kwargs = [dict(n_fft=1024 // m, num_mels=80, sample_rate=16000, hop_size=240 // m,
                       win_size=1024 // m, fmin=0, fmax=None) for m in (1, 2, 4, 8)]
    rng = np.random.default_rng(0)
    samples = int(seconds * 16000)
    x = torch.tensor(rng.normal(size=(batch, 1, samples)) * 0.1, dtype=torch.float32)
    frames = -(-samples // 320)
    target = torch.tensor(rng.normal(size=(batch, frames, config["semantic_dimension"])),
                          dtype=torch.float32)

    def step(adversarial):
        x_hat, loss_q, feature = generator(x)
        if discs and adversarial:
            optim_d.zero_grad()
            outs = [d(x, x_hat.detach()) for d in discs]
            loss_d = sum(loss.discriminator_loss(o[0], o[1]) for o in outs)
            loss_d.backward()
            optim_d.step()
        optim_g.zero_grad()
        outs = [d(x, x_hat) for d in discs] if adversarial else []
        mel = sum(w * loss.mel_loss(x, x_hat, **k)
                  for w, k in zip((45, 1, 1, 1), mel_kwargs, strict=True))
        total = (sum(loss.feature_loss(o[2], o[3]) for o in outs)
                 + sum(loss.adversarial_loss(o[1]) for o in outs) + mel + 10 * loss_q
                 + 500 * loss.recon_loss(x, x_hat)
                 + 120 * loss.d_axis_distill_loss(feature, target))
        total.backward()
        optim_g.step()
        return float(total)

    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        step(i % every == 0)
        if i:  # the first step runs k-means initialisation
            times.append(time.perf_counter() - start)
    return {"step_s": _summary(times, every), "first_s": None}


def run_ours(config, batch, seconds, steps, update_order="sequential",
             discriminators=tuple(DISCRIMINATORS), dtype="float32", every=1):
    import keras
    import numpy as np

    from keras_dmcodec.models.dmcodec import DMCodec
    from keras_dmcodec.models.trainer import DMCodecTrainer

    trainer = DMCodecTrainer(DMCodec(**config, seed=0, dtype=dtype),
                             discriminators={k: DISCRIMINATORS[k] for k in discriminators},
                             distill="sm", update_order=update_order,
                             adversarial_every=every)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-4, beta_1=0.9, beta_2=0.99))
    rng = np.random.default_rng(0)
    samples = int(seconds * 16000)
    frames = -(-samples // 320)
    data = {"audio": (rng.normal(size=(batch, samples)) * 0.1).astype("float32"),
            "sm_features": rng.normal(size=(batch, frames, config["semantic_dimension"]))
            .astype("float32")}
    start = time.perf_counter()
    trainer.train_on_batch(data)  # trace / compile + k-means initialisation
    first = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        trainer.train_on_batch(data)
        times.append(time.perf_counter() - start)
    return {"step_s": _summary(times, every), "first_s": first}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=["small", "base"], default="small")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--update-order", choices=["sequential", "simultaneous"],
                        default="sequential", help="our step: D then G (reference) or joint")
    parser.add_argument("--no-discriminators", action="store_true",
                        help="codec step only (reconstruction, mel, commitment, distillation)")
    parser.add_argument("--discriminators", nargs="+", choices=sorted(DISCRIMINATORS),
                        default=sorted(DISCRIMINATORS), help="which discriminators (default: all)")
    parser.add_argument("--dtype", choices=["float32", "mixed_bfloat16"], default="float32",
                        help="our dtype policy (the reference runs float32)")
    parser.add_argument("--adversarial-every", type=int, default=1, metavar="K",
                        help="discriminators' update and GAN terms on every K-th step only")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    every = args.adversarial_every
    if every < 1 or args.steps % every:
        parser.error(f"--steps ({args.steps}) must be a multiple of --adversarial-every ({every})")
    config = _preset_config(args.preset)
    chosen = [] if args.no_discriminators else sorted(set(args.discriminators))

    if args.worker:
        if args.worker == "reference":
            result = run_reference(config, args.batch, args.seconds, args.steps, args.threads,
                                   chosen, every)
        else:
            result = run_ours(config, args.batch, args.seconds, args.steps, args.update_order,
                              chosen, args.dtype, every)
        print("RESULT " + json.dumps(result))
        return

    rows = []
    for name in ["reference"] + args.backends:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        if name != "reference":
            env["KERAS_BACKEND"] = name
        cmd = [sys.executable, __file__, "--worker", name, "--preset", args.preset,
               "--batch", str(args.batch), "--seconds", str(args.seconds),
               "--steps", str(args.steps), "--threads", str(args.threads),
               "--update-order", args.update_order, "--dtype", args.dtype,
               "--adversarial-every", str(every),
               *(["--discriminators", *chosen] if chosen else ["--no-discriminators"])]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if out.returncode or not line:
            print(f"{name} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append((name, json.loads(line[-1][7:])))

    ref = dict(rows).get("reference")
    print(f"\nTraining step, dmcodec_{args.preset}, batch {args.batch} x {args.seconds:g} s, "
          f"{'+'.join(chosen).upper() if chosen else 'no discriminators'}, "
          f"{'' if every == 1 else f'adversarial every {every} steps, '}"
          f"{args.threads} CPU threads, {'median' if every == 1 else 'mean'} of {args.steps} "
          f"steps, our update order: "
          f"{args.update_order}, our dtype policy: {args.dtype}\n")
    print("| implementation | step s | steps/s | speed vs reference | first step s (compile) |")
    print("|---|---|---|---|---|")
    for name, r in rows:
        label = "speechtokenizer (torch)" if name == "reference" else f"keras-dmcodec ({name})"
        ratio = f"{ref['step_s'] / r['step_s']:.2f}x" if ref else "n/a"
        first = "-" if r["first_s"] is None else f"{r['first_s']:.1f}"
        print(f"| {label} | {r['step_s']:.3f} | {1 / r['step_s']:.2f} | {ratio} | {first} |")


if __name__ == "__main__":
    main()
