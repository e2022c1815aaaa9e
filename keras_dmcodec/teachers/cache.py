"""Teacher feature cache: run the frozen teachers once per utterance, read them while training.

Reference: DM-Codec ``extract_rep.py`` saves, per audio file, ``np.save`` of the
HuBERT hidden states (``hubert_<dir>/....hubert.npy``, shape (1, T, 768)) and of
the BERT hidden states of the wav2vec2 transcript padded to T CTC frames
(``llm_<dir>/....llm.npy``), plus a file list ``<rep>_train_file_list.txt``.
Here each utterance gets one ``.npz`` (no pickle; float16 features):

- ``sm_features`` [T_sm, D_sm]: the SM teacher's features of the whole
  utterance (2-D: the reference's leading 1 caused its frame-0 defect);
- ``lm_features`` [F, D_lm] + ``lm_mask`` [F]: the LM teacher's token features
  already expanded to the utterance's F = ceil(samples / 320) codec frames by
  ``keras_dmcodec.teachers.alignment`` (absent when there is no transcript);
- ``meta``: a JSON string (path, sample count, frame counts, transcript with
  word timings, alignment used).

``index.json`` holds the settings (teachers, layers, transcript source,
alignment) and one entry per utterance, and lists the utterances without a
transcript and those that failed. Every file is written atomically; a rerun
skips utterances already cached (resume), and refuses to mix settings.
"""

import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

from keras_dmcodec.audio import AudioError, load_audio
from keras_dmcodec.teachers.alignment import codec_frames, expand_to_frames, reference_num_tokens
from keras_dmcodec.teachers.transcripts import Transcript, Word, align_words
from keras_dmcodec.utils.files import atomic_output

LOG = logging.getLogger(__name__)
CACHE_VERSION = 1
_NPZ_LOCK = threading.Lock()
INDEX = "index.json"
HOP = 320
SAMPLE_RATE = 16000
TRANSCRIPT_SOURCES = ("ground_truth", "whisper", "ctc")


def utterance_key(path, root):
    """Cache-relative name of an utterance: its path under ``root`` without suffix.

    Files outside ``root`` get ``_external/<name>-<hash of the full path>``.
    """
    path = Path(path).resolve()
    try:
        rel = path.relative_to(Path(root).resolve())
        return rel.with_suffix("").as_posix()
    except ValueError:
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
        return f"_external/{path.stem}-{digest}"


def _transcript_to_json(transcript):
    return None if transcript is None else dataclasses.asdict(transcript)


def transcript_from_json(data):
    """Inverse of the cache's transcript record (``None`` stays ``None``)."""
    if data is None:
        return None
    return Transcript(text=data["text"], source=data.get("source", "unknown"),
                      words=[Word(w["text"], w.get("start"), w.get("end"))
                             for w in data.get("words", [])])


def _settings_equal(old, new):
    return json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True)


def build_cache(items, out_dir, sm_teacher=None, lm_teacher=None, layer="avg", sm_layer=None,
                lm_layer=None, transcripts="ground_truth", transcriber=None,
                alignment="aligned", word_feature="mean", keep_padding=True, root=None,
                log_every=25):
    """Runs the teachers over ``items`` and writes the cache to ``out_dir``.

    Args:
        items: list of ``keras_dmcodec.corpus.Utterance`` (``path``, ``text`` or None).
        out_dir: str or Path. Cache directory (created; resumed when it holds a cache).
        sm_teacher: speech teacher (``features(audio, layer)``) or None.
        lm_teacher: ``TextTeacher`` or None.
        layer: "avg" or int, for both teachers unless ``sm_layer``/``lm_layer`` say otherwise.
        transcripts: "ground_truth" (the items' text), "whisper" or "ctc" (``transcriber``).
        transcriber: a ``keras_dmcodec.asr.Transcriber`` (``transcribe(audio,
            word_timestamps=True) -> Transcript``, timed words). Needed
            for ASR transcripts, and for ``alignment="aligned"`` on ground truth (its
            words are timed by matching the ASR words, ``align_words``).
        alignment: "aligned" or "positional" (see ``keras_dmcodec.teachers.alignment``).
        word_feature: "mean" or "first" (aligned mode).
        keep_padding: positional mode: keep BERT's [PAD] states as targets (reference).
        root: folder the utterance keys are relative to (default: common parent).

    Returns:
        dict report: counts, ``no_transcript`` and ``failed`` lists, seconds.
    """
    if sm_teacher is None and lm_teacher is None:
        raise ValueError("nothing to cache: give a speech teacher, a text teacher or both")
    if transcripts not in TRANSCRIPT_SOURCES:
        raise ValueError(f"transcripts must be one of {TRANSCRIPT_SOURCES}, got {transcripts!r}")
    if alignment not in ("aligned", "positional"):
        raise ValueError(f"alignment must be 'aligned' or 'positional', got {alignment!r}")
    needs_asr = lm_teacher is not None and (transcripts != "ground_truth" or
                                            alignment == "aligned")
    if needs_asr and transcriber is None:
        raise ValueError(f"transcripts={transcripts!r} with alignment={alignment!r} needs an "
                         "ASR transcriber (whisper or ctc) for the words or their timings")
    if not items:
        raise ValueError("no utterances to cache")
    sm_layer = layer if sm_layer is None else sm_layer
    lm_layer = layer if lm_layer is None else lm_layer
    out_dir = Path(out_dir)
    if root is None:
        root = Path(os.path.commonpath([str(Path(it.path).resolve().parent)
                                         for it in items]))
    settings = {
        "version": CACHE_VERSION, "sample_rate": SAMPLE_RATE, "hop_length": HOP,
        "sm_teacher": getattr(sm_teacher, "name", None),
        "sm_dimension": getattr(sm_teacher, "dimension", None),
        "sm_layer": sm_layer if sm_teacher is not None else None,
        "lm_teacher": getattr(lm_teacher, "name", None),
        "lm_dimension": getattr(lm_teacher, "dimension", None),
        "lm_layer": lm_layer if lm_teacher is not None else None,
        "transcripts": transcripts if lm_teacher is not None else None,
        "transcriber": getattr(transcriber, "name", None) if needs_asr else None,
        "alignment": alignment if lm_teacher is not None else None,
        "word_feature": word_feature if lm_teacher is not None else None,
        "keep_padding": bool(keep_padding) if lm_teacher is not None else None,
    }
    index_path = out_dir / INDEX
    entries = {}
    if index_path.is_file():
        old = json.loads(index_path.read_text())
        if not _settings_equal(old.get("settings"), settings):
            raise ValueError(f"{out_dir}: holds a cache built with other settings "
                             f"({old.get('settings')}); use another --out")
        entries = old.get("utterances", {})
    out_dir.mkdir(parents=True, exist_ok=True)
    failed, started, done_before, new = {}, time.perf_counter(), 0, 0

    def write_index():
        no_text = sorted(k for k, e in entries.items() if e.get("no_transcript"))
        index = {"settings": settings, "root": str(Path(root).resolve()),
                 "utterances": entries, "no_transcript": no_text, "failed": failed}
        with atomic_output(index_path) as tmp:
            tmp.write_text(json.dumps(index, indent=1) + "\n")

    for n, item in enumerate(items):
        key = utterance_key(item.path, root)
        file = out_dir / f"{key}.npz"
        if file.is_file():
            try:
                entries[key] = read_entry_meta(file)
                done_before += 1
                continue
            except ValueError as err:
                LOG.warning("recomputing %s: %s", file, err)
        try:
            audio, _ = load_audio(item.path, sample_rate=SAMPLE_RATE)
        except AudioError as err:
            failed[key] = str(err)
            LOG.warning("skipping: %s", err)
            continue
        arrays, meta = compute_targets(audio, item.text, sm_teacher, lm_teacher,
                                       sm_layer, lm_layer, transcripts, transcriber, alignment,
                                       word_feature, keep_padding)
        meta["path"] = str(Path(item.path).resolve())
        meta["file"] = f"{key}.npz"
        arrays["meta"] = np.array(json.dumps(meta))
        with atomic_output(file) as tmp:
            np.savez(tmp, **arrays)
        entries[key] = meta
        new += 1
        if log_every and new % log_every == 0:
            write_index()
            LOG.info("%d/%d utterances cached", n + 1, len(items))
    write_index()
    no_text = sorted(k for k, e in entries.items() if e.get("no_transcript"))
    return {"cached": new, "already_cached": done_before, "failed": failed,
            "no_transcript": no_text, "utterances": len(entries),
            "alignment_fallbacks": sorted(k for k, e in entries.items()
                                          if e.get("alignment_used") == "positional (no timings)"),
            "seconds": time.perf_counter() - started, "index": str(index_path)}


def compute_targets(audio, text, sm_teacher=None, lm_teacher=None, sm_layer="avg",
                    lm_layer="avg", transcripts="ground_truth", transcriber=None,
                    alignment="aligned", word_feature="mean", keep_padding=True):
    """Teacher targets of one utterance, in memory (what the cache stores; also on the fly).

    Args:
        audio: float32 ``[samples]`` at 16 kHz.
        text: str or None. Ground-truth transcript (used when ``transcripts="ground_truth"``).
        Others: as ``build_cache``.

    Returns:
        ``(arrays, meta)``: arrays ``num_samples``, ``sm_features`` [T_sm, D] float16,
        ``lm_features`` [F, D] float16 and ``lm_mask`` [F] uint8 (teachers present and,
        for the LM, a transcript found); meta a JSON-ready dict (transcript, alignment).
    """
    num_samples = len(audio)
    frames = codec_frames(num_samples)
    arrays = {"num_samples": np.int64(num_samples)}
    meta = {"num_samples": num_samples, "num_frames": frames, "sm_frames": None,
            "lm_frames": None, "transcript": None, "no_transcript": False,
            "alignment_used": None, "alignment_stats": None}
    if sm_teacher is not None:
        sm = np.asarray(sm_teacher.features(audio[None], layer=sm_layer))[0]
        arrays["sm_features"] = sm.astype(np.float16)
        meta["sm_frames"] = int(sm.shape[0])
    if lm_teacher is None:
        return arrays, meta
    transcript = None
    if transcripts == "ground_truth":
        text = (text or "").strip()
        if text:
            transcript = Transcript.from_text(text)
            if alignment == "aligned":
                heard = transcriber.transcribe(audio, word_timestamps=True)
                transcript, meta["alignment_stats"] = align_words(
                    text, heard, source=f"ground_truth+{heard.source}")
    else:
        transcript = transcriber.transcribe(audio, word_timestamps=True)
        if not transcript.text.strip():
            transcript = None
    meta["transcript"] = _transcript_to_json(transcript)
    if transcript is None:
        meta["no_transcript"] = True
        return arrays, meta
    pad_to = max(reference_num_tokens(num_samples), 2) if alignment == "positional" else None
    features, tokens, word_index = lm_teacher.token_features([transcript.text], layer=lm_layer,
                                                             pad_to=pad_to)[0]
    lm, mask, used = expand_to_frames(alignment, features, tokens, word_index, transcript,
                                      frames, word_feature=word_feature,
                                      keep_padding=keep_padding)
    arrays["lm_features"] = lm.astype(np.float16)
    arrays["lm_mask"] = mask.astype(np.uint8)
    meta.update(lm_frames=frames, alignment_used=used, lm_tokens=len(tokens),
                lm_masked_frames=int(frames - mask.sum()))
    return arrays, meta


def read_entry_meta(file):
    """The ``meta`` record of one cached ``.npz`` (ValueError when unreadable)."""
    try:
        with np.load(file, allow_pickle=False) as data:
            return json.loads(str(data["meta"]))
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as err:
        raise ValueError(f"{file}: unreadable cache entry ({err})") from None


class TeacherCache:
    """Reads a cache written by ``build_cache``.

    Args:
        root: str or Path. The cache directory (with ``index.json``).

    Example:
    >>> cache = TeacherCache("teacher_cache")  # doctest: +SKIP
    >>> cache.load("/data/LibriSpeech/.../19-198-0001.flac")["lm_features"].shape  # doctest: +SKIP
    (250, 384)
    """

    def __init__(self, root):
        self.root = Path(root)
        index_path = self.root / INDEX
        if not index_path.is_file():
            raise FileNotFoundError(f"{self.root}: no teacher cache ({INDEX} missing); "
                                    "build one with `dmcodec cache-teachers`")
        try:
            index = json.loads(index_path.read_text())
            self.settings = index["settings"]
            utterances = index["utterances"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{index_path}: not a teacher cache index ({err})") from None
        if self.settings.get("version") != CACHE_VERSION:
            raise ValueError(f"{index_path}: cache version {self.settings.get('version')}, "
                             f"this code reads {CACHE_VERSION}")
        self.entries = {entry["path"]: entry for entry in utterances.values()}
        self.no_transcript = index.get("no_transcript", [])

    @property
    def sm_dimension(self):
        return self.settings.get("sm_dimension")

    @property
    def lm_dimension(self):
        return self.settings.get("lm_dimension")

    def load(self, audio_path, keys=("sm_features", "lm_features", "lm_mask")):
        """``{"num_samples", "sm_features"?, "lm_features"?, "lm_mask"?}`` float32, or None.

        None when the utterance is not in the cache. Keys are absent for a teacher
        the cache lacks or, for the LM, an utterance without a transcript. ``keys``
        limits which arrays are read.
        """
        entry = self.entries.get(str(Path(audio_path).resolve()))
        if entry is None:
            return None
        file = self.root / entry["file"]
        try:
            # One reader at a time: tf.data calls this from several threads, and numpy
            # parses .npy headers with ast.literal_eval, which CPython 3.11.7 does not run
            # safely in parallel ("AST constructor recursion depth mismatch" killed a
            # training run after ~1500 steps).
            with _NPZ_LOCK, np.load(file, allow_pickle=False) as data:
                out = {"num_samples": int(data["num_samples"])}
                for key in keys:
                    if key in data.files:
                        out[key] = data[key].astype(np.float32)
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"{file}: unreadable cache entry ({err})") from None
        for key in ("sm_features", "lm_features"):
            if key in out and out[key].ndim != 2:
                raise ValueError(f"{file}: {key} must be [frames, dim], got {out[key].shape}")
        return out


class SplitTeacherCache:
    """Reads the SM targets from one cache and the LM targets from another.

    For experiments that change one teacher's targets without recomputing the
    other's (e.g. the same Whisper features with word-aligned vs positional
    MiniLM targets). Same interface as ``TeacherCache``.

    Args:
        sm: str or Path. Cache directory providing ``sm_features``.
        lm: str or Path. Cache directory providing ``lm_features`` / ``lm_mask``.

    Example:
    >>> cache = SplitTeacherCache(sm="cache_aligned", lm="cache_positional")  # doctest: +SKIP
    """

    def __init__(self, sm, lm):
        self.sm_cache, self.lm_cache = TeacherCache(sm), TeacherCache(lm)
        if not self.sm_cache.sm_dimension:
            raise ValueError(f"{self.sm_cache.root}: has no SM teacher features")
        if not self.lm_cache.lm_dimension:
            raise ValueError(f"{self.lm_cache.root}: has no LM teacher features")
        self.root = f"sm={self.sm_cache.root}, lm={self.lm_cache.root}"
        self.settings = {"sm": self.sm_cache.settings, "lm": self.lm_cache.settings}
        self.no_transcript = self.lm_cache.no_transcript

    @property
    def sm_dimension(self):
        return self.sm_cache.sm_dimension

    @property
    def lm_dimension(self):
        return self.lm_cache.lm_dimension

    def load(self, audio_path):
        """As ``TeacherCache.load``; None when the utterance is in neither cache."""
        sm = self.sm_cache.load(audio_path, keys=("sm_features",))
        lm = self.lm_cache.load(audio_path, keys=("lm_features", "lm_mask"))
        if sm is not None and lm is not None and sm["num_samples"] != lm["num_samples"]:
            raise ValueError(f"{audio_path}: the SM and LM caches disagree on its length "
                             f"({sm['num_samples']} vs {lm['num_samples']} samples)")
        if sm is None or lm is None:
            return sm or lm
        return {**sm, **lm}


def open_teacher_cache(spec):
    """``TeacherCache`` for a directory, ``SplitTeacherCache`` for ``{"sm": dir, "lm": dir}``."""
    if isinstance(spec, dict):
        if set(spec) != {"sm", "lm"}:
            raise ValueError(f"a split teacher cache needs exactly the keys 'sm' and 'lm', got "
                             f"{sorted(spec)}")
        return SplitTeacherCache(spec["sm"], spec["lm"])
    return TeacherCache(spec)
