"""Shards of ``tokenize-corpus``: planning, and the Parquet files (schema, write, check, read).

A corpus (``keras_dmcodec.corpus.list_corpus``, sorted by utterance id) is cut into
consecutive shards of ``shard_size`` (``plan_shards``): the same corpus and shard size
always give the same shards. Each shard becomes one Parquet file,
``shard-NNNNN.parquet``, with one row per utterance (``shard_schema``) and the shard's
metadata in the footer under ``METADATA_KEY`` (JSON: index, assignment hash, counts,
bad files, ``n_q``, model and weights fingerprints). ``write_shard`` writes it through a
temporary file and a rename, so it is either complete or absent; ``check_shard`` says
whether an existing file is complete and matches what a run would write. ``read_shard``
and ``iter_tokens`` read the output back.

pyarrow is imported inside the functions that need it (a heavy optional dependency):
planning and checking names stays cheap for the driver.
"""

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from keras_dmcodec.utils.files import atomic_output

# 2: shards record the model's name and its one fingerprint (keras_dmcodec.tokens).
FORMAT_VERSION = 2
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.json"
SHARD_GLOB = "shard-*.parquet"
METADATA_KEY = b"keras_dmcodec.shard"


def one_line(err):
    """The first line of an error's message (its type name when it has none), for reports."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@dataclasses.dataclass(frozen=True)
class ShardItem:
    """One utterance as a shard records it.

    Args:
        id: str. The utterance id (``keras_dmcodec.corpus.Utterance.id``).
        path: str. The audio file to read.
        relative_path: str. The path written to the Parquet row and to reports:
            relative to the corpus folder (or the manifest's folder), absolute outside it.
    """

    id: str
    path: str
    relative_path: str

    @classmethod
    def of(cls, utterance, root):
        """The ``ShardItem`` of a ``corpus.Utterance`` listed from ``root``."""
        path = Path(utterance.path)
        try:
            relative = path.relative_to(root).as_posix()
        except ValueError:
            relative = str(path)
        return cls(utterance.id, str(path), relative)


def shard_file(index):
    return f"shard-{index:05d}.parquet"


def plan_shards(utterances, shard_size, root):
    """Cuts utterances, sorted by id, into consecutive lists of ``ShardItem`` of ``shard_size``.

    Args:
        utterances: ``keras_dmcodec.corpus.Utterance`` list.
        shard_size: int >= 1.
        root: the corpus folder (or the manifest's folder) relative paths are taken from.
    """
    if int(shard_size) < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    ordered = [ShardItem.of(utt, root) for utt in sorted(utterances, key=lambda u: u.id)]
    return [ordered[i: i + shard_size] for i in range(0, len(ordered), shard_size)]


def shard_hash(shard):
    """Fingerprint of a shard's assignment (ids and relative paths)."""
    digest = hashlib.sha256()
    for item in shard:
        digest.update(f"{item.id}\t{item.relative_path}\n".encode())
    return digest.hexdigest()[:16]


def shard_schema(codes_type):
    """The Parquet schema of a shard's rows; ``codes_type`` is ``pa.int16()`` or ``pa.int32()``."""
    import pyarrow as pa

    return pa.schema([
        ("utterance_id", pa.string()),
        ("path", pa.string()),
        ("codes", pa.list_(pa.list_(codes_type))),
        ("n_q", pa.int32()),
        ("num_frames", pa.int32()),
        ("num_samples", pa.int64()),
        ("sample_rate", pa.int32()),
        ("model", pa.string()),
        ("config_hash", pa.string()),
        ("codebook_hash", pa.string()),
    ])


def write_shard(path, rows, info, codes_dtype, before_commit=None):
    """Writes one shard atomically: ``rows`` (dicts of ``shard_schema``) and ``info`` (footer).

    Args:
        path: the shard's file.
        rows: list of row dicts, ``codes`` as nested lists.
        info: dict of metadata stored under ``METADATA_KEY``.
        codes_dtype: ``np.int16`` or ``np.int32``.
        before_commit: None, or ``callable(temporary_path)`` run after the temporary
            file is complete and before the rename that publishes it (fault-injection
            tests kill the worker there).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    codes_type = pa.int16() if codes_dtype == np.int16 else pa.int32()
    schema = shard_schema(codes_type).with_metadata({METADATA_KEY: json.dumps(info)})
    table = pa.Table.from_pylist(rows, schema=schema)
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
        if before_commit is not None:
            before_commit(tmp)


def shard_metadata(path):
    """``(info dict, row count)`` from a shard's Parquet footer."""
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path)
    raw = (meta.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ValueError("no keras_dmcodec shard metadata")
    return json.loads(raw), meta.num_rows


def check_shard(path, expected):
    """Returns None when the Parquet shard at ``path`` is complete and matches ``expected``
    (a dict of metadata values, e.g. ``shard_hash``, ``n_q``, ``fingerprint``), else a
    one-line reason."""
    if not Path(path).is_file():
        return "missing"
    try:
        info, num_rows = shard_metadata(path)
    except Exception as err:  # pyarrow raises several types for truncated/corrupt files
        return f"unreadable ({one_line(err)})"
    if info.get("format_version") != FORMAT_VERSION:
        return f"format version {info.get('format_version')} != {FORMAT_VERSION}"
    for key, value in expected.items():
        if info.get(key) != value:
            return f"{key} {info.get(key)!r} != {value!r}"
    if num_rows != info.get("num_ok"):
        return f"{num_rows} rows, expected {info.get('num_ok')}"
    return None


def read_shard(path):
    """Reads a shard: returns a list of dicts with ``codes`` as int arrays ``[n_q, frames]``."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    rows = table.to_pylist()
    for row in rows:
        row["codes"] = np.asarray(row["codes"], dtype=np.int32).reshape(row["n_q"], -1)
    return rows


def iter_tokens(out_dir):
    """Yields every row (see ``read_shard``) of the shards listed in ``out_dir``'s manifest."""
    out_dir = Path(out_dir)
    manifest = json.loads((out_dir / MANIFEST_FILE).read_text())
    for shard in manifest["shards"]:
        yield from read_shard(out_dir / shard["file"])


def remove_temporaries(out_dir):
    """Removes the temporary shard files an interrupted run left in ``out_dir``."""
    for tmp in Path(out_dir).glob(".tmp_shard-*.parquet"):
        tmp.unlink(missing_ok=True)


def write_json(path, data):
    """Writes ``data`` as indented JSON, atomically."""
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2) + "\n")
