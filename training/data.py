"""Audio data pipeline for codec training: folders or LibriSpeech-layout corpora to tf.data batches.

Element ``i`` of the (endless) stream is a pure function of ``(seed, i)``: which
utterance (a fresh permutation per pass over the corpus) and where its random
crop starts. A resumed run therefore starts at element ``step * batch_size``
and sees exactly the batches the uninterrupted run would have seen.
TensorFlow appears here only, as the DESIGN allows; the dataset feeds
``model.fit`` on every backend.

Crops start at multiples of the codec hop (320 samples), and the segment is a
whole number of hops, so codec frame ``j`` of a crop is frame ``start / 320 + j``
of the utterance. With a teacher cache (``keras_dmcodec.teachers.cache``) the
batches are the dicts of the trainer's contract: ``audio`` [B, S],
``sm_features`` [B, F, D_sm] + ``sm_mask`` [B, F], ``lm_features`` [B, F, D_lm]
+ ``lm_mask`` [B, F], the teacher frames cropped in sync with the audio (the
reference, ``codec/trainer/dataset.py``, crops
``feature[:, start // 320 : end // 320]`` with an unaligned ``start``). Frames
with no teacher target (past the utterance's end, past the teacher's last
frame, utterances missing from the cache or without a transcript) have mask 0.
Teacher features stay 2-D per utterance: the reference's (1, T, D) arrays
collated to (B, 1, T, D) left only frame 0 distilled (DESIGN.md, "Two defects").
"""

import logging
import warnings

import numpy as np

from keras_dmcodec.audio import AudioError, load_audio
from keras_dmcodec.corpus import list_corpus
from keras_dmcodec.teachers.cache import open_teacher_cache

LOG = logging.getLogger(__name__)
HOP = 320
DISTILL_MODES = {"none": (), "lm": ("lm",), "sm": ("sm",), "lm+sm": ("sm", "lm")}


class SegmentSource:
    """Loads element ``index`` of the stream: a random fixed-length crop of one utterance.

    Unreadable files are skipped (the next utterance of the permutation is used)
    and counted; a warning names each one once. The crop starts at a multiple of
    ``hop``; with a ``teacher_cache`` the teacher frames are cropped with it.

    Args:
        paths: list of audio paths.
        sample_rate: int. Model rate.
        segment_samples: int. Crop length; a multiple of ``hop``.
        seed: int. Fixes the order and crops.
        shuffle: bool. New utterance order per pass.
        teacher_cache: ``keras_dmcodec.teachers.cache.TeacherCache`` or None.
        teachers: tuple of "sm" / "lm": the teacher features to return.
        hop: int. Codec hop (samples per frame).
    """

    def __init__(self, paths, sample_rate, segment_samples, seed, shuffle=True,
                 teacher_cache=None, teachers=(), hop=HOP):
        self.paths = list(paths)
        self.sample_rate = int(sample_rate)
        self.segment_samples = int(segment_samples)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.hop = int(hop)
        if self.segment_samples % self.hop:
            raise ValueError(f"segment ({segment_samples} samples) must be a multiple of the "
                             f"hop ({hop})")
        self.frames = self.segment_samples // self.hop
        self.cache = teacher_cache
        self.teachers = tuple(teachers)
        if self.teachers and teacher_cache is None:
            raise ValueError(f"teacher features {self.teachers} requested without a teacher cache")
        self.dimensions = {t: (teacher_cache.sm_dimension if t == "sm" else
                               teacher_cache.lm_dimension) for t in self.teachers}
        for teacher, dim in self.dimensions.items():
            if not dim:
                raise ValueError(f"the teacher cache {teacher_cache.root} has no "
                                 f"{teacher.upper()} teacher features")
        self.bad_files = set()
        self.missing = {t: set() for t in self.teachers}  # paths without a teacher target

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

    def _pick(self, index):
        n = len(self.paths)
        for attempt in range(n):
            epoch, position = divmod(index + attempt, n)
            path = self.paths[self._order(epoch)[position]]
            audio = self._load(path)
            if audio is not None:
                return path, audio
        raise RuntimeError("every audio file of the corpus is unreadable")

    def _missing(self, teacher, path, why):
        if path not in self.missing[teacher]:
            self.missing[teacher].add(path)
            warnings.warn(f"no {teacher.upper()} teacher features for {path} ({why}); its "
                          f"frames are masked out ({len(self.missing[teacher])} such "
                          "utterance(s) so far)", stacklevel=3)

    def _teacher_crop(self, teacher, path, cached, first_frame):
        """``(features [F, D], mask [F])`` of the crop; zeros and mask 0 where missing."""
        dim = self.dimensions[teacher]
        features = np.zeros((self.frames, dim), np.float32)
        mask = np.zeros(self.frames, np.float32)
        if cached is None:
            self._missing(teacher, path, "not in the cache")
            return features, mask
        if f"{teacher}_features" not in cached:
            self._missing(teacher, path, "no transcript" if teacher == "lm" else "not cached")
            return features, mask
        source = cached[f"{teacher}_features"][first_frame : first_frame + self.frames]
        if source.shape[1] != dim:
            raise ValueError(f"{path}: cached {teacher.upper()} features are {source.shape[1]}-d, "
                             f"the cache index says {dim}")
        features[: len(source)] = source
        if teacher == "lm":
            mask[: len(source)] = cached["lm_mask"][first_frame : first_frame + len(source)]
        else:
            mask[: len(source)] = 1.0
        # frames past the utterance's end are zero padding in the audio: no target there
        real = max(codec_frames_of(cached["num_samples"], self.hop) - first_frame, 0)
        mask[real:] = 0.0
        return features, mask

    def element(self, index):
        """``{"audio" [S], "sm_features" [F, D], "sm_mask" [F], ...}`` for element ``index``."""
        index = int(index)
        path, audio = self._pick(index)
        rng = np.random.default_rng([self.seed, index, 1])
        seg = self.segment_samples
        if len(audio) >= seg:
            start = self.hop * int(rng.integers(0, (len(audio) - seg) // self.hop + 1))
            crop = audio[start : start + seg]
        else:
            start, crop = 0, np.pad(audio, (0, seg - len(audio)))
        out = {"audio": crop.astype(np.float32)}
        if self.teachers:
            cached = self.cache.load(path)
            for teacher in self.teachers:
                out[f"{teacher}_features"], out[f"{teacher}_mask"] = self._teacher_crop(
                    teacher, path, cached, start // self.hop)
        return out

    def __call__(self, index):
        return self.element(index)["audio"]


def codec_frames_of(num_samples, hop=HOP):
    """Codec frames covering ``num_samples`` samples."""
    return -(-int(num_samples) // hop)


def make_dataset(sources, sample_rate=16000, segment_seconds=3.0, batch_size=6, seed=1234,
                 start_step=0, shuffle=True, num_parallel_calls=None, teacher_cache=None,
                 distill="none", hop=HOP):
    """Endless tf.data stream of ``{"audio": float32 [batch, segment], ...}`` batches.

    Args:
        sources: folders / audio files / manifests, or a list of them
            (``keras_dmcodec.corpus.list_corpus``).
        sample_rate: int. Model rate; files are resampled.
        segment_seconds: float. Crop length (reference 3 s), rounded down to whole
            hops; shorter files are zero-padded.
        batch_size: int. Batch size.
        seed: int. Fixes file order and crops.
        start_step: int. First batch (for ``--resume``).
        shuffle: bool. New utterance order per pass (False: sorted order).
        num_parallel_calls: loader parallelism (default: tf.data AUTOTUNE).
        teacher_cache: str/Path of a ``dmcodec cache-teachers`` directory,
            ``{"sm": dir, "lm": dir}`` to take each teacher from its own cache, or None.
        distill: "none", "lm", "sm" or "lm+sm": which teacher features the batches carry.
        hop: int. Codec hop in samples (320).

    Returns:
        ``(dataset, source)``; ``source.bad_files`` collects unreadable files,
        ``source.missing`` the utterances without teacher features (per teacher).
    """
    import tensorflow as tf

    if distill not in DISTILL_MODES:
        raise ValueError(f"distill must be one of {tuple(DISTILL_MODES)}, got {distill!r}")
    teachers = DISTILL_MODES[distill]
    if teachers and teacher_cache is None:
        raise ValueError(f"distill={distill!r} needs data.teacher_cache (a directory written by "
                         "`dmcodec cache-teachers`)")
    cache = None
    if teachers:
        cache = open_teacher_cache(teacher_cache)
    utterances, problems = list_corpus(sources)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        warnings.warn(f"skipped {len(problems)} corpus entr{'y' if len(problems) == 1 else 'ies'}: "
                      f"{problems[0]}{more}", stacklevel=2)
    segment = int(round(segment_seconds * sample_rate)) // hop * hop
    if segment <= 0:
        raise ValueError(f"segment_seconds={segment_seconds} is shorter than one hop")
    source = SegmentSource([str(utt.path) for utt in utterances], sample_rate, segment, seed,
                           shuffle, teacher_cache=cache, teachers=teachers, hop=hop)
    keys = ["audio"] + [f"{t}_{part}" for t in teachers for part in ("features", "mask")]
    shapes = {"audio": (segment,)}
    for t in teachers:
        shapes[f"{t}_features"] = (source.frames, source.dimensions[t])
        shapes[f"{t}_mask"] = (source.frames,)

    def load_numpy(index):
        element = source.element(index)
        return tuple(element[k].astype(np.float32) for k in keys)

    def load(index):
        values = tf.numpy_function(load_numpy, [index], [tf.float32] * len(keys))
        for value, key in zip(values, keys, strict=True):
            value.set_shape(shapes[key])
        return dict(zip(keys, values, strict=True))

    calls = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    dataset = (
        tf.data.Dataset.range(int(start_step) * batch_size, np.iinfo(np.int64).max)
        .map(load, num_parallel_calls=calls, deterministic=True)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    return dataset, source
