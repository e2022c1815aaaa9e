import numpy as np
import pytest
import soundfile as sf

from keras_dmcodec.audio import AudioError, bundled_sample, load_audio, write_audio


def test_bundled_sample_is_16k_speech():
    path, text = bundled_sample()
    audio, sr = load_audio(path)
    assert sr == 16000 and audio.dtype == np.float32
    assert 6.0 < len(audio) / sr < 7.5
    assert "quick brown fox" in text.lower()


def test_stereo_is_downmixed_and_resampled(tmp_path):
    t = np.arange(44100) / 44100
    left, right = np.sin(2 * np.pi * 440 * t), np.zeros_like(t)
    sf.write(tmp_path / "a.flac", np.stack([left, right], 1), 44100)
    audio, sr = load_audio(tmp_path / "a.flac", sample_rate=16000)
    assert sr == 16000 and audio.shape == (16000,)
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.02)


def test_bad_files_give_one_line_errors(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "bad.wav").write_bytes(b"RIFF....not really a wav")
    with pytest.raises(AudioError, match="cannot read audio") as err:
        load_audio(tmp_path / "bad.wav")
    assert "\n" not in str(err.value)
    sf.write(tmp_path / "empty.wav", np.zeros((0,)), 16000)
    with pytest.raises(AudioError, match="empty"):
        load_audio(tmp_path / "empty.wav")
    sf.write(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.1]), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "nan.wav")
    with pytest.raises(AudioError, match="directory"):
        load_audio(tmp_path)


def test_write_is_atomic_and_refuses_overwrite(tmp_path):
    out = tmp_path / "o.wav"
    write_audio(out, np.zeros(100, "float32"), 16000)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        write_audio(out, np.ones(50, "float32"), 16000)
    assert out.read_bytes() == before
    write_audio(out, np.ones(50, "float32") * 0.5, 16000, overwrite=True)
    assert len(sf.read(out)[0]) == 50
    assert [p.name for p in tmp_path.iterdir()] == ["o.wav"]  # no temp files left
