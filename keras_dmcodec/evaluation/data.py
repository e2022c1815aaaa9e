"""Evaluation corpora: LibriSpeech-layout folders and manifests (path + transcript).

A LibriSpeech-layout folder holds ``<speaker>/<chapter>/<spk>-<ch>-<utt>.flac``
and ``<spk>-<ch>.trans.txt`` files whose lines are ``<utterance id> <TEXT>``;
any folder tree of ``.flac``/``.wav`` files with ``*.trans.txt`` files of that form
is read. A manifest is a TSV file (``path<TAB>text`` per line, an optional
``path<TAB>text`` header) or JSON lines (``{"path": ..., "text": ...}``, ``"audio"``
accepted for ``"path"``, optional ``"id"``); relative paths are resolved against
the manifest's folder. Problems (audio without transcript, transcript without
audio, empty text, malformed lines) are returned as one-line messages, not raised,
so that a corpus with a few bad entries still evaluates.
"""

import json
from dataclasses import dataclass
from pathlib import Path

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3")
MANIFEST_SUFFIXES = (".tsv", ".txt", ".jsonl", ".json")


@dataclass(frozen=True)
class Utterance:
    """One evaluation item: a unique id, the audio path and its exact transcript."""

    id: str
    path: Path
    text: str


def _read_librispeech(root):
    problems = []
    texts = {}
    for trans in sorted(root.rglob("*.trans.txt")):
        for number, line in enumerate(trans.read_text(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            if not text.strip():
                problems.append(f"{trans}:{number}: empty transcript for {utt_id}")
                continue
            texts[utt_id] = (text.strip(), trans)
    audio = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        audio.setdefault(path.stem, path)
    items = []
    for utt_id, path in audio.items():
        if utt_id in texts:
            items.append(Utterance(utt_id, path, texts[utt_id][0]))
        else:
            problems.append(f"{path}: no transcript (no line '{utt_id} ...' in a .trans.txt "
                            "file) -- skipped")
    for utt_id, (_, trans) in texts.items():
        if utt_id not in audio:
            problems.append(f"{trans}: transcript of {utt_id} has no audio file -- skipped")
    return items, problems


def _manifest_rows(path):
    """Yields ``(line, path, text, id or None)``, or ``(line, None, error, None)`` for bad lines."""
    lines = path.read_text(errors="replace").splitlines()
    as_json = path.suffix.lower() in (".jsonl", ".json")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if as_json:
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                yield number, None, f"invalid JSON ({err.msg})", None
                continue
            if not isinstance(row, dict):
                yield number, None, "expected a JSON object with 'path' and 'text'", None
                continue
            audio = row.get("path", row.get("audio"))
            if not isinstance(audio, str) or "text" not in row:
                yield number, None, "expected keys 'path' (or 'audio') and 'text'", None
                continue
            yield number, audio, str(row["text"] or ""), row.get("id")
        else:
            audio, sep, text = line.partition("\t")
            if number == 1 and audio.strip().lower() in ("path", "audio"):
                continue
            if not sep:
                yield number, None, "expected 'path<TAB>text'", None
                continue
            yield number, audio.strip(), text, None


def _read_manifest(manifest):
    problems, items, seen = [], [], set()
    base = manifest.parent
    for number, audio, text, utt_id in _manifest_rows(manifest):
        where = f"{manifest}:{number}"
        if audio is None:
            problems.append(f"{where}: {text} -- skipped")
            continue
        path = Path(audio) if Path(audio).is_absolute() else base / audio
        if not text.strip():
            problems.append(f"{where}: empty transcript for {path} -- skipped")
            continue
        utt_id = str(utt_id) if utt_id is not None else _id_for(path, base)
        if utt_id in seen:
            problems.append(f"{where}: duplicate utterance id {utt_id!r} -- skipped")
            continue
        seen.add(utt_id)
        items.append(Utterance(utt_id, path, text.strip()))
    return items, problems


def _id_for(path, base):
    try:
        rel = path.relative_to(base)
    except ValueError:
        rel = Path(path.name)
    return str(rel.with_suffix("")).replace("/", "_").replace("\\", "_")


def read_dataset(source):
    """Lists the utterances of a LibriSpeech-layout folder or a manifest file.

    Args:
        source: a folder, or a ``.tsv``/``.txt``/``.jsonl``/``.json`` manifest.

    Returns:
        ``(utterances, problems)``: utterances sorted by id, and one-line messages
        about entries that were skipped.

    Raises:
        ValueError: missing source, unknown manifest type, or no usable utterance.
    """
    source = Path(source)
    if not source.exists():
        raise ValueError(f"{source}: no such file or folder")
    if source.is_dir():
        items, problems = _read_librispeech(source)
    elif source.suffix.lower() in MANIFEST_SUFFIXES:
        items, problems = _read_manifest(source)
    else:
        raise ValueError(f"{source}: expected a folder or a manifest "
                         f"({', '.join(MANIFEST_SUFFIXES)}), got a {source.suffix or 'plain'} file")
    if not items:
        detail = f" ({problems[0]})" if problems else ""
        raise ValueError(f"{source}: no utterances with audio and a transcript found{detail}")
    return sorted(items, key=lambda u: u.id), problems
