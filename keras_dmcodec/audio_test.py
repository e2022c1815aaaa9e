import numpy as np
import pytest
import soundfile as sf

from keras_dmcodec.audio import (
    AudioError,
    bundled_sample,
    load_audio,
    wav_truncation,
    write_audio,
)
from keras_dmcodec.inference import iter_file_blocks


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


def test_truncated_wav_is_an_error(tmp_path):
    """libsndfile reads a cut-off WAV as a short clip: the header's length must be checked."""
    whole = tmp_path / "whole.wav"
    sf.write(whole, np.zeros(32000, np.float32), 16000, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[:44 + 1000])
    assert sf.info(str(cut)).frames == 500  # what went through silently before
    message = f"{cut}: truncated: header declares 32000 samples, file holds 500"
    with pytest.raises(AudioError) as err:
        load_audio(cut)
    assert str(err.value) == message
    with pytest.raises(AudioError, match="truncated: header declares 32000 samples"):
        list(iter_file_blocks(cut, 16000))  # the streaming reader `dmcodec encode` uses
    assert wav_truncation(whole) is None
    assert load_audio(whole)[0].shape == (32000,)
    # stereo float (fmt, fact and PEAK chunks before the data): frames of 8 bytes, so one
    # byte short is one frame short
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.zeros((1000, 2), np.float32), 16000, subtype="FLOAT")
    assert wav_truncation(stereo) is None
    stereo.write_bytes(stereo.read_bytes()[:-1])
    assert wav_truncation(stereo) == (1000, 999)
    # a data length left open by a streaming writer (0) is not a truncation
    open_ended = tmp_path / "open.wav"
    raw = bytearray(whole.read_bytes())
    raw[40:44] = (0).to_bytes(4, "little")
    open_ended.write_bytes(bytes(raw))
    assert wav_truncation(open_ended) is None
    # not a WAV, or too short to hold a header: libsndfile gives the error
    assert wav_truncation(tmp_path / "missing.wav") is None
    (tmp_path / "tiny.wav").write_bytes(whole.read_bytes()[:30])
    assert wav_truncation(tmp_path / "tiny.wav") is None
    with pytest.raises(AudioError, match="cannot read audio"):
        load_audio(tmp_path / "tiny.wav")
