"""Audio data pipeline for codec training: folders or LibriSpeech-layout corpora to tf.data batches.

Element ``i`` of the (endless) stream is a pure function of ``(seed, i)``: which
utterance (a fresh permutation per pass over the corpus) and where its random
crop starts. A resumed run therefore starts at element ``step * batch_size``
and sees exactly the batches the uninterrupted run would have seen.
TensorFlow appears here only, as the DESIGN allows; the dataset feeds
``model.fit`` on every backend.
"""

import logging
import warnings
from pathlib import Path

import numpy as np

from keras_dmcodec.audio import AudioError, load_audio

LOG = logging.getLogger(__name__)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")


def read_transcripts(root):
    """``{utterance_id: text}`` from every LibriSpeech ``*.trans.txt`` under ``root``."""
    texts = {}
    for trans in sorted(Path(root).rglob("*.trans.txt")):
        for line in trans.read_text(encoding="utf-8").splitlines():
            if line.strip():
                utt, _, text = line.strip().partition(" ")
                texts[utt] = text.strip()
    return texts


def list_corpus(sources):
    """Lists audio files (and transcripts where a LibriSpeech ``.trans.txt`` has them).

    Args:
        sources: a directory, an audio file, or a list of them.

    Returns:
        list of ``{"path": str, "text": str or None}``, sorted by path.

    Raises:
        FileNotFoundError / ValueError: a missing source, or no audio at all.
    """
    if isinstance(sources, (str, Path)):
        sources = [sources]
    items = []
    for source in sources:
        source = Path(source)
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such file or directory")
        if source.is_dir():
            texts = read_transcripts(source)
            files = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            texts, files = {}, [source]
        items += [{"path": str(p), "text": texts.get(p.stem)} for p in files]
    if not items:
        raise ValueError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) found in {sources}")
    return sorted(items, key=lambda item: item["path"])


class SegmentSource:
    """Loads element ``index`` of the stream: a random fixed-length crop of one utterance.

    Unreadable files are skipped (the next utterance of the permutation is used)
    and counted; a warning names each one once.
    """

    def __init__(self, paths, sample_rate, segment_samples, seed, shuffle=True):
        self.paths = list(paths)
        self.sample_rate = int(sample_rate)
        self.segment_samples = int(segment_samples)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.bad_files = set()

    def _order(self, epoch):
        n = len(self.paths)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def _load(self, path):
        try:
            return load_audio(path, sample_rate=self.sample_rate)[0]
        except AudioError as err:
            if path not in self.bad_files:
                self.bad_files.add(path)
                warnings.warn(f"skipping unreadable audio ({len(self.bad_files)} so far): {err}",
                              stacklevel=2)
            return None

    def __call__(self, index):
        index = int(index)
        n = len(self.paths)
        for attempt in range(n):
            epoch, position = divmod(index + attempt, n)
            path = self.paths[self._order(epoch)[position]]
            audio = self._load(path)
            if audio is not None:
                break
        else:
            raise RuntimeError("every audio file of the corpus is unreadable")
        rng = np.random.default_rng([self.seed, index, 1])
        seg = self.segment_samples
        if len(audio) >= seg:
            start = int(rng.integers(0, len(audio) - seg + 1))
            return audio[start : start + seg]
        return np.pad(audio, (0, seg - len(audio)))


def make_dataset(sources, sample_rate=16000, segment_seconds=3.0, batch_size=6, seed=1234,
                 start_step=0, shuffle=True, num_parallel_calls=None):
    """Endless tf.data stream of ``{"audio": float32 [batch, segment]}`` batches.

    Args:
        sources: directories / files (see ``list_corpus``).
        sample_rate: int. Model rate; files are resampled.
        segment_seconds: float. Crop length (reference 3 s); shorter files are zero-padded.
        batch_size: int. Batch size.
        seed: int. Fixes file order and crops.
        start_step: int. First batch (for ``--resume``).
        shuffle: bool. New utterance order per pass (False: sorted order).
        num_parallel_calls: loader parallelism (default: tf.data AUTOTUNE).

    Returns:
        ``(dataset, source)``; ``source.bad_files`` collects unreadable files.
    """
    import tensorflow as tf

    items = list_corpus(sources)
    segment = int(round(segment_seconds * sample_rate))
    source = SegmentSource([it["path"] for it in items], sample_rate, segment, seed, shuffle)

    def load(index):
        audio = tf.numpy_function(lambda i: source(i).astype(np.float32), [index], tf.float32)
        audio.set_shape((segment,))
        return audio

    calls = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    dataset = (
        tf.data.Dataset.range(int(start_step) * batch_size, np.iinfo(np.int64).max)
        .map(load, num_parallel_calls=calls, deterministic=True)
        .batch(batch_size, drop_remainder=True)
        .map(lambda audio: {"audio": audio})
        .prefetch(tf.data.AUTOTUNE)
    )
    return dataset, source
