import numpy as np
import pytest
import soundfile as sf

from training.data import list_corpus, make_dataset


@pytest.fixture
def corpus(tmp_path):
    """A LibriSpeech-layout corpus (speaker/chapter/utt.flac + .trans.txt) with one bad file."""
    chapter = tmp_path / "19" / "198"
    chapter.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i, seconds in enumerate([0.5, 1.2, 2.0]):
        utt = f"19-198-{i:04d}"
        sr = 16000 if i else 22050  # one file needs resampling
        sf.write(chapter / f"{utt}.flac", rng.normal(size=int(seconds * sr)) * 0.1, sr)
        lines.append(f"{utt} WORDS OF UTTERANCE {i}")
    (chapter / "19-198.trans.txt").write_text("\n".join(lines) + "\n")
    (chapter / "19-198-0099.flac").write_bytes(b"not audio at all")
    return tmp_path


def _batches(dataset, n):
    return [b["audio"].numpy() for b in dataset.take(n)]


def test_list_corpus_keeps_transcripts(corpus):
    items = list_corpus(corpus)
    assert len(items) == 4
    texts = {item["path"].rsplit("/", 1)[1]: item["text"] for item in items}
    assert texts["19-198-0001.flac"] == "WORDS OF UTTERANCE 1"
    assert texts["19-198-0099.flac"] is None


def test_batches_shape_and_skip_bad_file(corpus):
    dataset, source = make_dataset(corpus, segment_seconds=1.0, batch_size=2, seed=3)
    with pytest.warns(UserWarning, match="skipping unreadable audio"):
        batches = _batches(dataset, 6)
    assert all(b.shape == (2, 16000) and b.dtype == np.float32 for b in batches)
    assert len(source.bad_files) == 1
    # the 0.5 s file is zero-padded to the segment length
    assert any(np.all(b[i, 8000:] == 0) for b in batches for i in range(2))


def test_stream_is_deterministic_and_resumable(corpus):
    first, _ = make_dataset(corpus, segment_seconds=0.25, batch_size=2, seed=5)
    again, _ = make_dataset(corpus, segment_seconds=0.25, batch_size=2, seed=5)
    resumed, _ = make_dataset(corpus, segment_seconds=0.25, batch_size=2, seed=5, start_step=3)
    other, _ = make_dataset(corpus, segment_seconds=0.25, batch_size=2, seed=6)
    with pytest.warns(UserWarning):
        a, b, c, d = (_batches(ds, 6) for ds in (first, again, resumed, other))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(a[3:], c[:3], strict=True):
        np.testing.assert_array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip(a, d, strict=True))


def test_missing_or_empty_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        list_corpus(tmp_path / "nope")
    with pytest.raises(ValueError, match="no audio files"):
        list_corpus(tmp_path)
