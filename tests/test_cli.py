"""The real ``dmcodec`` command in subprocesses: encode / decode / roundtrip and every bad input.

Backend-independent (each subprocess picks its own backend), so it runs once, in the
TensorFlow pass. Bad inputs are grouped into one subprocess that calls the console
entry point ``keras_dmcodec.cli.main`` once per case (imports cost ~10 s per process);
two cases also go through the ``dmcodec`` executable to check the exit status end to end.
"""

import os

import keras
import numpy as np
import pytest

from keras_dmcodec.utils.testing import assert_one_line_errors, run_dmcodec

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="backend-independent; runs once")

CONFIG = dict(n_filters=4, dimension=16, semantic_dimension=8, n_q=4, codebook_size=32,
              lstm_layers=1, kmeans_iters=3)
ENV = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")


def _run(*args, cwd):
    return run_dmcodec(*args, cwd=cwd)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    import soundfile as sf

    from keras_dmcodec import DMCodec
    from keras_dmcodec.audio import bundled_sample, load_audio

    root = tmp_path_factory.mktemp("cli")
    speech, _ = load_audio(bundled_sample()[0], sample_rate=16000)
    model = DMCodec(**CONFIG, seed=1)
    model(speech[None, :32000], training=True)  # k-means codebooks on real speech
    model.save_to_preset(root / "preset")
    other = DMCodec(**dict(CONFIG, codebook_size=64), seed=2)
    other.build((None, None))
    other.save_to_preset(root / "other")
    (root / "in" / "sub").mkdir(parents=True)
    sf.write(root / "in" / "a.wav", speech[:32000], 16000, subtype="PCM_16")
    # Stereo FLAC at another rate: resampled and downmixed on the way in.
    import librosa

    b = librosa.resample(speech[32000:56000], orig_sr=16000, target_sr=22050)
    sf.write(root / "in" / "sub" / "b.flac", np.stack([b, 0.5 * b], axis=1), 22050)
    return root, model


def test_encode_decode_roundtrip(workspace):
    from keras_dmcodec import inference
    from keras_dmcodec.tokens import load_tokens, model_fingerprint

    root, model = workspace
    enc = _run("encode", "in", "-o", "tokens", "--model", "preset", "--n-q", "3", cwd=root)
    assert enc.returncode == 0, enc.stderr[-2000:]
    assert "[2/2]" in enc.stdout and "750 bit/s" in enc.stdout
    a, b = load_tokens(root / "tokens" / "a.npz"), load_tokens(root / "tokens" / "sub" / "b.npz")
    assert a.codes.dtype == np.int16 and a.codes.shape == (3, 100) and a.num_samples == 32000
    assert b.n_q == 3 and abs(b.num_samples - 24000) <= 1
    np.testing.assert_array_equal(a.codes, model.encode(
        np.asarray(__import__("soundfile").read(root / "in" / "a.wav", dtype="float32")[0])[None],
        n_q=3)[0])
    expected_b, _ = inference.encode_file(model, root / "in" / "sub" / "b.flac", n_q=3)
    np.testing.assert_array_equal(b.codes, expected_b)

    # Token files name the model, not its path; a preset outside saved_models/ is passed again.
    assert a.model == "preset" and a.fingerprint == str(model_fingerprint(model))
    # Decoding under another backend, chosen after the subcommand, with small chunks.
    dec = _run("decode", "--backend", "jax", "tokens", "-o", "wavs", "--chunk-seconds", "0.5",
               "--model", "preset", cwd=root)
    assert dec.returncode == 0, dec.stderr[-2000:]
    import soundfile as sf

    wave, rate = sf.read(root / "wavs" / "a.wav", dtype="float32")
    assert rate == 16000 and len(wave) == 32000
    expected = model.decode(a.codes[None].astype("int32"), num_samples=32000)[0]
    np.testing.assert_allclose(wave, np.clip(expected, -1, 1), atol=2e-4)  # 16-bit PCM
    assert len(sf.read(root / "wavs" / "sub" / "b.wav")[0]) == b.num_samples

    rt = _run("roundtrip", "in/a.wav", "-o", "rt", "--model", "preset", cwd=root)
    assert rt.returncode == 0, rt.stderr[-2000:]
    assert "1000 bit/s" in rt.stdout and "STOI" in rt.stdout
    row = rt.stdout.strip().splitlines()[-1].split()
    assert row[0] == "in/a.wav" and float(row[1]) == pytest.approx(2.0)
    assert float(row[2]) > 0 and float(row[3]) > 0 and 0 <= float(row[5]) <= 1
    assert (root / "rt" / "a.wav").is_file()
    assert not [p for p in root.rglob(".tmp_*")]  # atomic writes leave no temp files

    # the listening report of one file, with a transcript and the Whisper judge
    page = root / "report" / "rt.html"
    rt = _run("roundtrip", "in/a.wav", "--model", "preset", "--html", page, "--text",
              "The quick brown fox", cwd=root)
    assert rt.returncode == 0, rt.stderr[-2000:]
    assert f"wrote listening report {page}" in rt.stdout
    html = page.read_text()
    assert "<b>Transcript:</b> The quick brown fox" in html and "ASR heard:" in html
    assert html.count("<audio ") == 2 and "whisper-tiny.en" in html
    for folder in ("original", "reconstruction"):
        assert (root / "report" / "report_audio" / folder / "a.flac").is_file()


def test_demo_prints_metrics_and_writes_its_report(workspace):
    root, _ = workspace
    demo = _run("demo", "--model", "preset", "-o", "demo", cwd=root)
    assert demo.returncode == 0, demo.stderr[-2000:]
    for label in ("codes        : shape (1, 4, 339)", "bitrate      : 1000 bit/s", "STOI",
                  "wrote        : demo/decoded.wav and demo/codes.npz",
                  "report       : demo/report.html"):
        assert label in demo.stdout, demo.stdout
    page = (root / "demo" / "report.html").read_text()
    # the bundled sample's transcript (sample_16k.txt beside it) is the reference
    assert "<b>Transcript:</b> The quick brown fox jumps over the lazy dog." in page
    assert (root / "demo" / "report_audio" / "reconstruction" / "sample_16k.flac").is_file()
    again = _run("demo", "--model", "preset", "-o", "demo", cwd=root)
    assert again.returncode == 1 and "already exists (use --force" in again.stderr


def test_bad_inputs_give_one_line_errors(workspace):
    import soundfile as sf

    root, _ = workspace
    bad = root / "bad"
    (bad / "empty_dir").mkdir(parents=True)
    (bad / "empty_dir" / "notes.txt").write_text("no audio here")
    wav_bytes = (root / "in" / "a.wav").read_bytes()
    (bad / "truncated.wav").write_bytes(wav_bytes[:30])
    (bad / "garbage.flac").write_bytes(os.urandom(2000))
    sf.write(bad / "zero.wav", np.zeros(0, np.float32), 16000)
    sf.write(bad / "nan.wav", np.full(1600, np.nan, np.float32), 16000, subtype="FLOAT")
    (bad / "notes.txt").write_text("text")
    (bad / "file").write_text("a file, not a folder")
    if not (root / "tokens" / "a.npz").exists():
        assert _run("encode", "in/a.wav", "-o", "tokens", "--model", "preset",
                    cwd=root).returncode == 0
    fields = dict(np.load(root / "tokens" / "a.npz"))
    np.savez(bad / "range.npz", **dict(fields, codes=np.full_like(fields["codes"], 999)))
    np.savez(bad / "shape.npz", **dict(fields, codes=fields["codes"][None]))
    (bad / "cut.npz").write_bytes((root / "tokens" / "a.npz").read_bytes()[:100])
    (bad / "cut_preset").mkdir()
    for name in ("config.json", "metadata.json"):
        (bad / "cut_preset" / name).write_bytes((root / "preset" / name).read_bytes())
    weights = (root / "preset" / "model.weights.h5").read_bytes()
    (bad / "cut_preset" / "model.weights.h5").write_bytes(weights[: len(weights) // 2])
    model = ["--model", str(root / "preset")]
    cases = {
        "no such file": ["encode", str(bad / "missing.wav"), "-o", str(bad / "o1"), *model],
        "contains no audio files": ["encode", str(bad / "empty_dir"), "-o", str(bad / "o2"),
                                    *model],
        "cannot read audio": ["encode", str(bad / "truncated.wav"), "-o", str(bad / "o3"), *model],
        "cannot read audio ": ["encode", str(bad / "garbage.flac"), "-o", str(bad / "o4"),
                               *model],
        "audio is empty": ["encode", str(bad / "zero.wav"), "-o", str(bad / "o5"), *model],
        "NaN": ["encode", str(bad / "nan.wav"), "-o", str(bad / "o6"), *model],
        "unsupported format": ["encode", str(bad / "notes.txt"), "-o", str(bad / "o7"), *model],
        "out of range [0, 32)": ["decode", str(bad / "range.npz"), "-o", str(bad / "o8")],
        "shape [n_q, frames]": ["decode", str(bad / "shape.npz"), "-o", str(bad / "o9")],
        "corrupt or truncated": ["decode", str(bad / "cut.npz"), "-o", str(bad / "o10")],
        f"{bad / 'cut_preset' / 'model.weights.h5'}: truncated weights file": [
            "encode", str(root / "in" / "a.wav"), "-o", str(bad / "o14"), "--model",
            str(bad / "cut_preset")],
        "the tokens need model 'preset'": ["decode", str(root / "tokens" / "a.npz"), "-o",
                                           str(bad / "o15")],
        "different model configuration": ["decode", str(root / "tokens" / "a.npz"), "-o",
                                          str(bad / "o11"), "--model", str(root / "other")],
        "cannot create output directory": ["encode", str(root / "in" / "a.wav"), "-o",
                                           str(bad / "file" / "sub"), *model],
        "already exists": ["encode", str(root / "in" / "a.wav"), "-o", str(root / "tokens"),
                           *model],
        "no trained weights ship": ["encode", str(root / "in" / "a.wav"), "-o",
                                    str(bad / "o12"), "--model", "dmcodec_base"],
        "n_q must be an integer in [1, 4]": ["encode", str(root / "in" / "a.wav"), "-o",
                                            str(bad / "o13"), *model, "--n-q", "9"],
        "the report must be an .html file": ["roundtrip", str(root / "in" / "a.wav"), *model,
                                             "--html", str(bad / "o16" / "page.txt")],
        "--text gives one transcript, but there are 2 input files": [
            "roundtrip", str(root / "in"), *model, "--html", str(bad / "o17" / "r.html"),
            "--text", "hello"],
        "--text is for the --html report": ["roundtrip", str(root / "in" / "a.wav"), *model,
                                            "--text", "hello"],
    }
    assert_one_line_errors(cases, cwd=root)
    assert not [p for p in bad.rglob("*.npz") if p.parent.name.startswith("o")]
    assert not [p for p in bad.rglob("*.wav") if p.parent.name.startswith("o")]
    assert not [p for p in bad.rglob("*.html")] and not (bad / "o17").exists()

    # The console script itself: exit status and a single stderr line.
    missing = _run("decode", "nothing.npz", "-o", "x", cwd=root)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "dmcodec: error: nothing.npz: no such file or directory"
