"""The one corpus reader: folders, LibriSpeech layout and manifests, as sorted ``Utterance`` lists.

Every command that reads a corpus uses ``list_corpus`` (training, ``cache-teachers``,
``evaluate``, ``tokenize-corpus``), and the folder inputs of ``encode`` / ``decode`` /
``roundtrip`` use ``list_files``, so the same source gives the same utterances everywhere.

Sources (``list_corpus`` takes one or a list):

- **A folder**: every audio file (``keras_dmcodec.audio.AUDIO_SUFFIXES``) in its tree.
  Hidden files and folders (name starting with ``.``) and temporary files (``*.tmp``,
  ``*.part``, ``*~``) are skipped: an interrupted write leaves a hidden ``.tmp_*`` file.
  LibriSpeech ``<speaker>-<chapter>.trans.txt`` files anywhere in the tree (lines
  ``<utterance-id> <TEXT>``) give transcripts: a file whose stem has such a line is that
  utterance (id = the stem, e.g. ``19-198-0001``); any other file's id is its path relative
  to the folder without its suffix (``speaker/clip_01``), and it has no transcript.
- **One audio file**: id = its stem, no transcript.
- **A manifest**, by suffix:

  - ``.tsv`` / ``.txt``: one utterance per line, ``path`` or ``path<TAB>text``. An optional
    first row names the columns (tab-separated: ``path`` or ``audio``, optionally ``text``
    and ``id``, in any order; other columns are ignored), e.g. ``id<TAB>path<TAB>text``.
  - ``.csv``: the same, comma-separated with CSV quoting.
  - ``.jsonl`` / ``.json``: one JSON object per line, ``{"path": ..., "text": ..., "id": ...}``
    (``"audio"`` accepted for ``"path"``; ``text`` and ``id`` optional); a ``.json`` file may
    also hold one JSON array of such objects.

  Blank lines and lines starting with ``#`` are skipped. Relative paths are resolved
  against the manifest's folder. Without an ``id``, the id is the path relative to the
  manifest's folder without its suffix (the file's stem for a path outside that folder).
  An empty text means "no transcript".

Entries that cannot be used are skipped and reported as one-line ``problems``, never
raised: missing audio, a malformed line, a duplicate id (the first one is kept), a
transcript line without an audio file, an empty transcript, and, with
``require_text=True``, audio without a transcript. Only a missing source, an unknown
manifest type, an unreadable manifest or a corpus with no usable utterance raise
``CorpusError``.
"""

import csv
import dataclasses
import io
import json
import os
from pathlib import Path

from keras_dmcodec.audio import AUDIO_SUFFIXES

MANIFEST_SUFFIXES = (".tsv", ".txt", ".csv", ".jsonl", ".json")
TRANSCRIPT_SUFFIX = ".trans.txt"
TEMPORARY_SUFFIXES = (".tmp", ".part", "~")
_PATH_COLUMNS = ("path", "audio")
_COLUMNS = (*_PATH_COLUMNS, "text", "id")


class CorpusError(ValueError):
    """A corpus source that cannot be read at all, with a one-line reason."""


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One corpus entry.

    Args:
        id: str. Unique within a listing (see the module docstring for how it is made).
        path: Path. The audio file.
        text: str or None. The transcript, None where the corpus has none.

    Example:
    >>> Utterance("19-198-0001", Path("19/198/19-198-0001.flac"), "HELLO").text
    'HELLO'
    """

    id: str
    path: Path
    text: str | None = None


@dataclasses.dataclass(frozen=True)
class CorpusListing:
    """What ``list_corpus`` found; unpacks as ``utterances, problems = listing``.

    Args:
        utterances: list of ``Utterance``, sorted by id.
        problems: list of one-line messages about the entries that were skipped.
    """

    utterances: list
    problems: list

    def __iter__(self):
        return iter((self.utterances, self.problems))


def is_skipped_name(name):
    """True for names a folder listing ignores: hidden (``.*``) and temporary files."""
    return name.startswith(".") or name.lower().endswith(TEMPORARY_SUFFIXES)


def list_files(folder, suffixes=AUDIO_SUFFIXES):
    """Sorted paths of the files under ``folder`` whose suffix is in ``suffixes``.

    Hidden files and folders and temporary files are skipped (``is_skipped_name``);
    symbolic links to folders are not followed.
    """
    suffixes = tuple(s.lower() for s in suffixes)
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not is_skipped_name(d)]
        for name in files:
            path = Path(parent) / name
            if (not is_skipped_name(name) and name.lower().endswith(suffixes)
                    and path.is_file()):
                found.append(path)
    return sorted(found)


def _read_trans_txt(folder, problems):
    """``{utterance id: (text, trans.txt path)}`` of the ``*.trans.txt`` files under ``folder``."""
    texts = {}
    for trans in list_files(folder, (TRANSCRIPT_SUFFIX,)):
        try:
            lines = trans.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            problems.append(f"{trans}: unreadable transcript file ({_reason(err)}) -- skipped")
            continue
        for number, line in enumerate(lines, 1):
            utt_id, _, text = line.strip().partition(" ")
            if not utt_id:
                continue
            where = f"{trans}:{number}"
            if not text.strip():
                problems.append(f"{where}: empty transcript for {utt_id} -- skipped")
            elif utt_id in texts:
                problems.append(f"{where}: second transcript of {utt_id} (first in "
                                f"{texts[utt_id][1]}) -- skipped")
            else:
                texts[utt_id] = (text.strip(), trans)
    return texts


def transcript_of(path):
    """The transcript of one audio file, where one lies beside it; None otherwise.

    Looked for in the file's own folder: a line ``<stem> <text>`` of a LibriSpeech
    ``*.trans.txt`` file, else the text of a ``<stem>.txt`` file.
    """
    path = Path(path)
    for trans in sorted(path.parent.glob("*" + TRANSCRIPT_SUFFIX)):
        try:
            lines = trans.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            utt_id, _, text = line.strip().partition(" ")
            if utt_id == path.stem and text.strip():
                return text.strip()
    sidecar = path.with_suffix(".txt")
    if sidecar.is_file():
        try:
            text = " ".join(sidecar.read_text(encoding="utf-8").split())
        except (OSError, UnicodeDecodeError):
            return None
        return text or None
    return None


def _relative_id(path, base):
    try:
        return path.relative_to(base).with_suffix("").as_posix()
    except ValueError:
        return path.stem


def _list_folder(folder, problems):
    texts = _read_trans_txt(folder, problems)
    entries, found = [], set()
    for path in list_files(folder):
        if path.stem in texts:
            found.add(path.stem)
            entries.append((str(path), Utterance(path.stem, path, texts[path.stem][0])))
        else:
            entries.append((str(path), Utterance(_relative_id(path, folder), path)))
    for utt_id, (_, trans) in texts.items():
        if utt_id not in found:
            problems.append(f"{trans}: transcript of {utt_id} has no audio file -- skipped")
    return entries


def _delimited_rows(text, delimiter):
    """Yields ``(line number, fields)`` of the non-blank, non-comment lines."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if delimiter == "\t":
            yield number, line.split("\t")
        else:
            yield number, next(csv.reader(io.StringIO(line)), [])


def _header(fields, manifest):
    """Column names when ``fields`` is a header row, else None."""
    names = [field.strip().lower() for field in fields]
    if names[0] not in _COLUMNS:
        return None
    if not any(name in _PATH_COLUMNS for name in names):
        raise CorpusError(f"{manifest}: header row {fields!r} has no 'path' (or 'audio') column")
    return names


def _keep_tabs(fields, count):
    """``fields`` cut to ``count``; the last one keeps the rest, tabs included (text has tabs)."""
    return fields[:count - 1] + ["\t".join(fields[count - 1:])] if len(fields) > count else fields


def _delimited_entries(manifest, text, delimiter):
    """Yields ``(where, path, text, id)``, or ``(where, None, error, None)`` for a bad line."""
    columns = None
    for index, (number, fields) in enumerate(_delimited_rows(text, delimiter)):
        where = f"{manifest}:{number}"
        if index == 0:
            columns = _header(fields, manifest)
            if columns is not None:
                continue
        names = columns or ["path", "text"]
        if delimiter == "\t":
            fields = _keep_tabs(fields, len(names))
        elif columns is None and len(fields) > 2:
            yield where, None, "expected 'path' or 'path,text'", None
            continue
        row = dict(zip(names, fields, strict=False))
        audio = row.get("path", row.get("audio"))
        if audio is None or not audio.strip():
            yield where, None, "no audio path", None
            continue
        yield where, audio.strip(), row.get("text"), row.get("id")


def _json_objects(manifest, text):
    """Yields ``(where, parsed value, None)``, or ``(where, None, error)`` for a bad line."""
    if manifest.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise CorpusError(f"{manifest}: invalid JSON ({err.msg}, line {err.lineno})") from None
        for number, item in enumerate(items, 1):
            yield f"{manifest}: item {number}", item, None
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            yield f"{manifest}:{number}", json.loads(line), None
        except json.JSONDecodeError as err:
            yield f"{manifest}:{number}", None, f"invalid JSON ({err.msg})"


def _json_entries(manifest, text):
    """Yields ``(where, path, text, id)``, or ``(where, None, error, None)`` for a bad entry."""
    for where, row, error in _json_objects(manifest, text):
        if error is not None:
            yield where, None, error, None
            continue
        if not isinstance(row, dict):
            yield where, None, "expected a JSON object with 'path' and optional 'text'", None
            continue
        audio, utt_text = row.get("path", row.get("audio")), row.get("text")
        if not isinstance(audio, str) or not audio.strip():
            yield where, None, "expected a string 'path' (or 'audio')", None
        elif not (utt_text is None or isinstance(utt_text, str)):
            yield where, None, "'text' must be a string", None
        else:
            utt_id = row.get("id")
            yield where, audio.strip(), utt_text, None if utt_id is None else str(utt_id)


def _list_manifest(manifest):
    try:
        text = manifest.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CorpusError(f"{manifest}: not a UTF-8 text manifest") from None
    except OSError as err:
        raise CorpusError(f"{manifest}: cannot read the manifest ({_reason(err)})") from None
    suffix = manifest.suffix.lower()
    if suffix in (".jsonl", ".json"):
        rows = _json_entries(manifest, text)
    else:
        rows = _delimited_entries(manifest, text, "," if suffix == ".csv" else "\t")
    base = manifest.parent
    entries = []
    for where, audio, utt_text, utt_id in rows:
        if audio is None:
            entries.append((where, utt_text))  # the reason the line is unusable
            continue
        path = Path(audio) if Path(audio).is_absolute() else base / audio
        utt_text = utt_text.strip() if utt_text and utt_text.strip() else None
        utt_id = utt_id.strip() if utt_id and utt_id.strip() else _relative_id(path, base)
        entries.append((where, Utterance(utt_id, path, utt_text)))
    return entries


def _reason(err):
    text = str(getattr(err, "strerror", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _entries(source, problems):
    """``[(where, Utterance or the reason the entry is unusable)]`` of one source, in order."""
    if source.is_dir():
        return _list_folder(source, problems)
    if source.name.lower().endswith(AUDIO_SUFFIXES):
        return [(str(source), Utterance(source.stem, source))]
    if source.suffix.lower() in MANIFEST_SUFFIXES:
        return _list_manifest(source)
    raise CorpusError(f"{source}: expected a folder, an audio file or a manifest "
                      f"({', '.join(MANIFEST_SUFFIXES)}), got a "
                      f"{source.suffix or 'suffix-less'} file")


def list_corpus(sources, require_text=False):
    """Lists the utterances of one source or a list of sources (see the module docstring).

    Args:
        sources: a folder, an audio file or a manifest (str or Path), or a list of them.
        require_text: bool. Skip (and report) utterances without a transcript.

    Returns:
        ``CorpusListing(utterances, problems)``: utterances sorted by id, and one-line
        messages about the entries that were skipped.

    Raises:
        CorpusError: a missing source, an unknown or unreadable manifest, or no usable
            utterance at all.

    Example:
    >>> utterances, problems = list_corpus("tests/data/speech")  # doctest: +SKIP
    >>> utterances[0]  # doctest: +SKIP
    Utterance(id='101-1-0000', path=PosixPath('tests/data/speech/101/1/101-1-0000.flac'),
              text='THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG')
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    sources = [Path(source) for source in sources]
    if not sources:
        raise CorpusError("no corpus source given")
    problems, seen, utterances = [], {}, []
    for source in sources:
        if not source.exists():
            raise CorpusError(f"{source}: no such file or folder")
        for where, utt in _entries(source, problems):
            if isinstance(utt, str):
                problems.append(f"{where}: {utt} -- skipped")
                continue
            if require_text and utt.text is None:
                if where != str(utt.path):  # a manifest line: say which file
                    detail = f" for {utt.path}"
                elif source.is_dir():
                    detail = f" (no line '{utt.path.stem} ...' in a {TRANSCRIPT_SUFFIX} file)"
                else:
                    detail = ""
                problems.append(f"{where}: no transcript{detail} -- skipped")
            elif not utt.path.is_file():
                problems.append(f"{where}: {utt.path}: no such file -- skipped")
            elif utt.id in seen:
                problems.append(f"{where}: duplicate utterance id {utt.id!r} (also "
                                f"{seen[utt.id]}) -- skipped")
            else:
                seen[utt.id] = utt.path
                utterances.append(utt)
    if not utterances:
        label = ", ".join(str(source) for source in sources)
        wanted = "audio file with a transcript" if require_text else "audio file"
        detail = f": {problems[0]}" if problems else ""
        raise CorpusError(f"{label}: no usable utterance (no {wanted} found){detail}")
    return CorpusListing(sorted(utterances, key=lambda utt: utt.id), problems)
