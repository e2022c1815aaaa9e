import dataclasses

import keras
import numpy as np
import pytest
import soundfile as sf

from training.data import make_dataset


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
    with pytest.raises(ValueError, match="no such file"):
        make_dataset(tmp_path / "nope")
    with pytest.raises(ValueError, match="no audio file"):
        make_dataset(tmp_path)


# The pipeline is TensorFlow whatever the Keras backend; these run once.
tf_only = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                             reason="backend-independent; runs once")


@pytest.fixture(scope="module")
def speech_cache(tmp_path_factory):
    """A tiny-teacher cache of three test utterances (the third left out of the cache)."""
    from keras_dmcodec.teachers.cache_test import build_tiny_cache, speech_items

    root = tmp_path_factory.mktemp("teacher_cache")
    items = speech_items()[:3]
    items[1] = dataclasses.replace(items[1], text=None)  # no transcript: LM masked
    build_tiny_cache(root / "cache", items[:2])
    corpus = root / "corpus.tsv"
    corpus.write_text("".join(f"{it.path}\t{it.text or ''}\n" for it in items))
    return root / "cache", corpus


@tf_only
def test_teacher_batches_are_cropped_in_sync(speech_cache):
    from keras_dmcodec.audio import load_audio
    from keras_dmcodec.teachers.cache import TeacherCache

    cache_dir, corpus = speech_cache
    dataset, source = make_dataset(corpus, segment_seconds=1.0, batch_size=3, seed=2,
                                   teacher_cache=cache_dir, distill="lm+sm")
    with pytest.warns(UserWarning, match="no (LM|SM) teacher features"):
        batch = next(iter(dataset))
    assert sorted(batch) == ["audio", "lm_features", "lm_mask", "sm_features", "sm_mask"]
    assert batch["audio"].shape == (3, 16000) and batch["sm_features"].shape == (3, 50, 8)
    assert batch["lm_features"].shape == (3, 50, 12) and batch["lm_mask"].shape == (3, 50)
    cache = TeacherCache(cache_dir)
    for i in range(3):
        element = source.element(i)
        path = source.paths[source._order(0)[i]]
        audio = load_audio(path, sample_rate=16000)[0]
        # find where the crop starts: a multiple of the hop
        starts = [s for s in range(0, len(audio) - 16000 + 1, 320)
                  if np.array_equal(audio[s:s + 16000], element["audio"])]
        assert len(starts) == 1
        k = starts[0] // 320
        cached = cache.load(path)
        if cached is None:  # the utterance left out of the cache: all masked
            assert not element["sm_mask"].any() and not element["lm_mask"].any()
            continue
        np.testing.assert_array_equal(element["sm_features"], cached["sm_features"][k:k + 50])
        assert element["sm_mask"].all()
        if "lm_features" in cached:
            np.testing.assert_array_equal(element["lm_features"],
                                          cached["lm_features"][k:k + 50])
            np.testing.assert_array_equal(element["lm_mask"], cached["lm_mask"][k:k + 50])
        else:
            assert not element["lm_mask"].any()
    assert {len(v) for v in source.missing.values()} == {1, 2}  # SM: 1 file, LM: 2 files


@tf_only
def test_teacher_frames_past_the_end_are_masked(speech_cache):
    cache_dir, corpus = speech_cache
    dataset, source = make_dataset(corpus, segment_seconds=4.0, batch_size=1, seed=0,
                                   shuffle=False, teacher_cache=cache_dir, distill="sm")
    element = source.element(0)
    assert sorted(element) == ["audio", "sm_features", "sm_mask"]
    real = -(-int(np.flatnonzero(element["audio"]).max() + 1) // 320)
    assert element["sm_mask"][:real - 1].all() and not element["sm_mask"][real:].any()
    assert not element["sm_features"][real:].any()


@tf_only
def test_teacher_options_are_checked(speech_cache, corpus):
    cache_dir, _ = speech_cache
    with pytest.raises(ValueError, match="needs data.teacher_cache"):
        make_dataset(corpus, distill="lm")
    with pytest.raises(ValueError, match="distill must be one of"):
        make_dataset(corpus, teacher_cache=cache_dir, distill="both")
    dataset, _ = make_dataset(corpus, segment_seconds=0.5, batch_size=2, teacher_cache=cache_dir)
    with pytest.warns(UserWarning):
        assert sorted(next(iter(dataset))) == ["audio"]
