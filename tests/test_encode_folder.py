"""``dmcodec encode FOLDER``: hidden/temporary files skipped, unreadable files skipped, listed and
counted with exit status 1, and no empty output folder left by a run that wrote nothing.

Command-line logic around one codec, so it runs once, in the TensorFlow pass.
"""

import keras
import numpy as np
import pytest
import soundfile as sf

from conftest import TINY_CODEC
from keras_dmcodec.cli import main
from keras_dmcodec.models.dmcodec import DMCodec

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="backend-independent; runs once")


def _truncated_wav(path):
    """A WAV whose header declares 32000 samples but which holds 500 (a cut-off copy)."""
    sf.write(path, np.zeros(32000, np.float32), 16000, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:44 + 1000])
    return path


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    root = tmp_path_factory.mktemp("preset")
    model = DMCodec(**TINY_CODEC, seed=1)
    model.build((None, None))
    model.save_to_preset(root / "tiny")
    return str(root / "tiny")


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    sf.write(root / "a.wav", rng.normal(size=4000).astype(np.float32) * 0.1, 16000)
    sf.write(root / "sub" / "b.flac", rng.normal(size=3000).astype(np.float32) * 0.1, 16000)
    _truncated_wav(root / "cut.wav")
    (root / "sub" / "garbage.flac").write_bytes(b"fLaC" + bytes(range(200)))
    # What a `kill -9` during decode/export leaves, and other temporary files: never listed.
    (root / ".tmp_a.x1y2.wav").write_bytes(b"RIFF" + bytes(40))
    (root / "sub" / "download.wav.part").write_bytes(b"partial")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "c.wav").write_bytes(b"not audio")
    return root


def test_folder_run_skips_lists_and_counts_unreadable_files(folder, preset, tmp_path, capsys):
    out = tmp_path / "tokens"
    assert main(["encode", str(folder), "-o", str(out), "--model", preset]) == 1
    printed = capsys.readouterr()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.is_file()) == ["a.npz", "sub/b.npz"]
    assert "encoded 2 of 4 file(s)" in printed.out
    errors = printed.err.strip().splitlines()
    bad = [line for line in errors if line.startswith("  bad: ")]
    assert len(bad) == 2
    assert any("cut.wav: truncated: header declares 32000 samples, file holds 500" in line
               for line in bad)
    assert any("garbage.flac: cannot read audio" in line for line in bad)
    assert errors[-1] == ("dmcodec: error: 2 of 4 file(s) could not be read and were skipped "
                          "(listed above)")
    assert ".tmp_" not in printed.out + printed.err and ".hidden" not in printed.err


def test_runs_that_write_nothing_leave_no_output_folder(folder, preset, tmp_path, capsys):
    # an error found before encoding: the output folder is never created
    out = tmp_path / "o1"
    assert main(["encode", str(folder), "-o", str(out), "--model",
                 str(tmp_path / "no_such_preset")]) == 1
    assert not out.exists()
    assert main(["encode", str(folder), "-o", str(out), "--model", preset, "--n-q", "99"]) == 1
    assert not out.exists()
    # one unreadable file: its own one-line error, and no empty folder either
    out = tmp_path / "o2"
    capsys.readouterr()
    assert main(["encode", str(folder / "cut.wav"), "-o", str(out), "--model", preset]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dmcodec: error: {folder / 'cut.wav'}: truncated: header declares 32000 "
                   "samples, file holds 500"]
    assert not out.exists()
    # a folder of unreadable files only
    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    _truncated_wav(only_bad / "x.wav")
    (only_bad / "y.flac").write_bytes(b"garbage")
    assert main(["encode", str(only_bad), "-o", str(out), "--model", preset]) == 1
    assert "2 of 2 file(s) could not be read" in capsys.readouterr().err
    assert not out.exists()
    # an existing output folder stays, even when nothing was written to it
    out.mkdir()
    assert main(["encode", str(only_bad), "-o", str(out), "--model", preset]) == 1
    assert out.is_dir()
