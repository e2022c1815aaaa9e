"""Corpus tokenization on Ray Data: audio corpus in, sharded Parquet token files out.

``tokenize_corpus`` lists a corpus (a directory tree of audio files in any
format soundfile reads, or a manifest), cuts the utterances, sorted by id, into
deterministic shards of ``shard_size``, and maps the shards over a pool of Ray
actors (``ActorPoolStrategy``), each of which loads the codec **once** and then
encodes whole shards. A shard is written as one Parquet file through a
temporary file and a rename, so it is either complete or absent; a worker that
dies mid-shard (crash, OOM kill, lost node) is restarted by Ray and the shard is
retried (``max_retries``). Re-running on the same output directory skips
shards whose Parquet file exists and validates (same shard contents, model and
``n_q``). Unreadable or empty audio is counted in ``report.json`` with a
one-line reason and does not stop the run. ``manifest.json`` lists the shards.

Codes equal ``dmcodec encode`` of the same file: each file goes through
``keras_dmcodec.inference.encode_file`` (whole clip in one pass up to the
chunk length, chunked with context beyond it), the function the command uses.
With ``batch_size > 1``, clips of exactly equal length (after sorting each
shard by duration) are encoded as one batch, never padded (padding would change
the codes: reflect padding and the bidirectional LSTM see it). Batched
kernels round differently from batch 1, so a few codes in ten thousand may then
differ from a one-clip encoding (measured: docs/tokenize_corpus.md); the
default ``batch_size=1`` is bit-identical.

Output: ``shard-NNNNN.parquet`` with one row per utterance (see ``SCHEMA``),
``manifest.json`` and ``report.json``. Read them with ``read_shard`` /
``iter_tokens``.

This module imports neither Keras nor Ray at module level: Ray workers set the
driver's Keras backend before Keras is imported, and the listing / reading
helpers stay cheap.
"""

import collections
import csv
import dataclasses
import hashlib
import json
import logging
import os
import re
import time
import warnings
from pathlib import Path

import numpy as np

from keras_dmcodec.utils.files import atomic_output

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.json"
SHARD_GLOB = "shard-*.parquet"
METADATA_KEY = b"keras_dmcodec.shard"
# Test hook: "crash_once:N" kills the worker (os._exit) after shard N's temporary
# file is written and before the rename, once per output directory; "hang:N"
# blocks the worker at the same point. Lets tests kill a run mid-shard.
FAULT_ENV = "DMCODEC_TOKENIZE_FAULT"
# Compiled encoders kept per worker on TensorFlow, one per input shape (see _fresh_graph).
GRAPH_CACHE = 8

# Suffixes listed when the input is a directory (soundfile's formats plus common aliases).
_EXTRA_SUFFIXES = {"aif", "aiff", "oga", "opus", "mp3", "ogg", "wav", "flac"}


def shard_file(index):
    return f"shard-{index:05d}.parquet"


def _audio_suffixes():
    import soundfile as sf

    return {name.lower() for name in sf.available_formats()} | _EXTRA_SUFFIXES


def _one_line(err):
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One corpus entry: ``utterance_id`` (unique), ``path`` (absolute) and
    ``relative_path`` (as listed, relative to the corpus root or manifest)."""

    utterance_id: str
    path: str
    relative_path: str


# ------------------------------------------------------------------- listing
def _list_directory(root):
    suffixes = _audio_suffixes()
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith(".") or Path(name).suffix.lower().lstrip(".") not in suffixes:
                continue
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            found.append(Utterance(str(Path(rel).with_suffix("").as_posix()), str(path), rel))
    return found


def _manifest_entries(path):
    suffix = path.suffix.lower()
    text = path.read_text()
    if suffix == ".jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: invalid JSON ({err.msg})") from None
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                raise ValueError(f"{path}:{number}: expected an object with a 'path' string")
            yield number, entry["path"], entry.get("id")
    elif suffix in (".csv", ".tsv"):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
        if "path" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: manifest needs a header with a 'path' column")
        for number, row in enumerate(reader, 2):
            yield number, row["path"], row.get("id") or None
    else:
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if line and not line.startswith("#"):
                yield number, line, None


def _list_manifest(manifest):
    root = manifest.parent
    found = []
    for number, rel, uid in _manifest_entries(manifest):
        if not rel.strip():
            raise ValueError(f"{manifest}:{number}: empty path")
        path = Path(rel) if Path(rel).is_absolute() else root / rel
        if uid is None:
            uid = Path(rel).with_suffix("").as_posix().lstrip("/")
        found.append(Utterance(str(uid), str(path), rel))
    return found


def list_utterances(source):
    """Lists a corpus: a directory tree of audio files or a manifest file.

    Directory: every file whose suffix soundfile knows (``.wav``, ``.flac``,
    ``.ogg``, ``.mp3``, ...; hidden files skipped); the utterance id is the
    path relative to the directory without its suffix. Manifest: ``.txt``
    (one path per line, ``#`` comments), ``.csv`` / ``.tsv`` (a ``path``
    column and optionally ``id``) or ``.jsonl`` (``{"path": ..., "id": ...}``);
    relative paths are relative to the manifest's folder.

    Returns:
        list of ``Utterance`` sorted by id.

    Raises:
        ValueError: no such source, an empty corpus, a malformed manifest or
            duplicate utterance ids (one line naming the first duplicate).
    """
    source = Path(source)
    if source.is_dir():
        utterances = _list_directory(source)
    elif source.is_file():
        utterances = _list_manifest(source)
    else:
        raise ValueError(f"{source}: no such directory or manifest file")
    if not utterances:
        raise ValueError(f"{source}: no audio files found")
    utterances.sort(key=lambda u: u.utterance_id)
    for before, after in zip(utterances, utterances[1:], strict=False):
        if before.utterance_id == after.utterance_id:
            raise ValueError(
                f"{source}: duplicate utterance id {before.utterance_id!r} "
                f"({before.relative_path} and {after.relative_path})"
            )
    return utterances


def plan_shards(utterances, shard_size):
    """Cuts utterances (sorted by id) into consecutive shards of ``shard_size``."""
    if int(shard_size) < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    ordered = sorted(utterances, key=lambda u: u.utterance_id)
    return [ordered[i: i + shard_size] for i in range(0, len(ordered), shard_size)]


def shard_hash(shard):
    """Fingerprint of a shard's assignment (ids and relative paths)."""
    digest = hashlib.sha256()
    for utt in shard:
        digest.update(f"{utt.utterance_id}\t{utt.relative_path}\n".encode())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------- model
def _file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def resolve_model(spec):
    """Config and weights of a preset name or directory, without loading Keras.

    Returns a dict with ``model`` (the spec as given), ``config``,
    ``config_hash`` (``tokens.config_fingerprint``) and ``weights_sha256``.
    """
    from keras_dmcodec.presets import (
        CONFIG_FILE,
        PRESETS,
        WEIGHTS_FILE,
        PresetError,
        preset_weights_dir,
    )
    from keras_dmcodec.tokens import config_fingerprint

    spec = str(spec)
    directory = Path(spec) if Path(spec).is_dir() else None
    if directory is None and spec in PRESETS:
        directory = preset_weights_dir(spec)
        if directory is None:
            raise PresetError(
                f"no trained weights ship for preset {spec!r}; pass a preset directory "
                "(DMCodec.save_to_preset) to tokenize with other weights"
            )
    if directory is None:
        raise PresetError(f"unknown preset {spec!r}: expected one of {sorted(PRESETS)} or a "
                          "preset directory")
    try:
        data = json.loads((directory / CONFIG_FILE).read_text())
        config = data["config"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise PresetError(f"{directory}: unreadable {CONFIG_FILE} ({_one_line(err)})") from None
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise PresetError(f"{directory}: missing {WEIGHTS_FILE}")
    return dict(model=spec, config=config, config_hash=config_fingerprint(config),
                weights_sha256=_file_sha256(weights))


# -------------------------------------------------------------------- output
def _schema(codes_type):
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


def _shard_metadata(path):
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path)
    raw = (meta.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ValueError("no keras_dmcodec shard metadata")
    return json.loads(raw), meta.num_rows


def check_shard(path, expected):
    """Returns None when the Parquet shard at ``path`` is complete and matches ``expected``
    (a dict of metadata values: ``shard_hash``, ``n_q``, ``config_hash``,
    ``weights_sha256``), else a one-line reason."""
    if not Path(path).is_file():
        return "missing"
    try:
        info, num_rows = _shard_metadata(path)
    except Exception as err:  # pyarrow raises several types for truncated/corrupt files
        return f"unreadable ({_one_line(err)})"
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


def _fault(point, shard_index, out_dir):
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return
    kind, _, target = spec.partition(":")
    if target != str(shard_index) or point != "before_rename":
        return
    if kind == "hang":
        time.sleep(3600)
    elif kind == "crash_once":
        marker = Path(out_dir) / f".fault_crashed_{shard_index:05d}"
        if not marker.exists():
            marker.touch()
            os._exit(17)


# -------------------------------------------------------------------- worker
class ShardEncoder:
    """Ray Data actor: loads the codec once, then encodes and writes whole shards.

    Each call gets a batch of shard rows (``shard``: index, ``utterances``:
    JSON list of ``[id, path, relative_path]``) and returns one summary row per
    shard (``shard``, ``summary`` JSON).

    Args:
        model: preset name or directory.
        expected: dict from ``resolve_model`` (checked against what loads here,
            so every worker of a cluster encodes with the same weights).
        out_dir: output directory (shared by all workers).
        n_q: codebooks to keep (None: all).
        batch_size: clips of equal length encoded together (1: bit-identical
            to ``dmcodec encode``).
        backend: Keras backend, set before Keras is imported in the worker.
        threads: CPU threads for the backend's kernels (None: backend default).
    """

    def __init__(self, model, expected, out_dir, n_q, batch_size, backend, threads=None):
        os.environ["KERAS_BACKEND"] = backend
        import keras

        if keras.backend.backend() != backend:
            raise RuntimeError(f"worker already runs Keras on {keras.backend.backend()}, "
                               f"expected {backend}")
        self.backend = keras.backend.backend()
        self._set_threads(backend, threads)
        from keras_dmcodec.presets import load_preset
        from keras_dmcodec.tokens import codebook_fingerprint, codes_dtype, config_fingerprint

        if resolve_model(model)["weights_sha256"] != expected["weights_sha256"]:
            raise RuntimeError(f"{model}: weights on this worker differ from the driver's")
        self.model = load_preset(model)
        if config_fingerprint(self.model) != expected["config_hash"]:
            raise RuntimeError(f"{model}: config on this worker differs from the driver's")
        self.model_name = expected["model"]
        self.expected = expected
        self.codebook_hash = codebook_fingerprint(self.model)
        self.codes_dtype = codes_dtype(self.model.codebook_size)
        self.out_dir = Path(out_dir)
        self.n_q = self.model.n_q if n_q is None else int(n_q)
        self.batch_size = int(batch_size)
        self._graphs = collections.OrderedDict()

    @staticmethod
    def _set_threads(backend, threads):
        if not threads:
            return
        if backend == "torch":
            import torch

            torch.set_num_threads(int(threads))
        elif backend == "tensorflow":
            import tensorflow as tf

            try:
                tf.config.threading.set_intra_op_parallelism_threads(int(threads))
                tf.config.threading.set_inter_op_parallelism_threads(int(threads))
            except RuntimeError:  # already initialised in this process
                pass

    def __call__(self, batch):
        shards, summaries = [], []
        for index, listed in zip(batch["shard"], batch["utterances"], strict=True):
            shard = [Utterance(*entry) for entry in json.loads(str(listed))]
            shards.append(int(index))
            summaries.append(json.dumps(self.encode_shard(int(index), shard)))
        return {"shard": np.asarray(shards, dtype=np.int64), "summary": np.asarray(summaries)}

    def _chunk_samples(self):
        from keras_dmcodec.inference import DEFAULT_CHUNK_SECONDS

        return int(DEFAULT_CHUNK_SECONDS * self.model.sample_rate)

    def _fresh_graph(self, key):
        """On TensorFlow, gives the codec a compiled encoder traced only for ``key``'s shape.

        Keras traces predict functions with ``reduce_retracing``: after a second input
        shape the graph is retraced for unknown shapes, whose kernels round differently,
        so codes would depend on which lengths a worker saw before (measured: a few
        frames per file flip). A graph traced for one static shape gives the codes a
        fresh ``dmcodec encode`` process gives, so each shape gets its own (the last
        ``GRAPH_CACHE`` kept). ``key=None``: a chunked file, which traces its own window
        shapes. JAX compiles per shape anyway; torch is eager.
        """
        if self.backend != "tensorflow":
            return
        if key is None:
            self.model._inference.items = {}
            return
        if key not in self._graphs:
            self._graphs[key] = {}
            while len(self._graphs) > GRAPH_CACHE:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        self.model._inference.items = self._graphs[key]

    def _encode_sorted(self, shard, bad):
        """Yields ``(utterance, codes, num_samples)``; appends unreadable files to ``bad``."""
        import soundfile as sf

        from keras_dmcodec.inference import encode_batch, encode_file, iter_file_blocks

        durations = []
        for utt in shard:
            try:
                info = sf.info(utt.path)
                durations.append((info.frames / max(info.samplerate, 1), utt,
                                  (info.frames, info.samplerate)))
            except Exception as err:
                bad.append((utt.relative_path, f"cannot read audio ({_one_line(err)})"))
        durations.sort(key=lambda item: (item[0], item[1].utterance_id))
        limit = self._chunk_samples()
        pending = []

        def flush():
            clips = [audio for _, audio in pending]
            self._fresh_graph(("batch", len(clips), len(clips[0])))
            for (utt, audio), codes in zip(pending, encode_batch(
                    self.model, clips, n_q=self.n_q, max_batch=self.batch_size), strict=True):
                yield utt, codes, len(audio)
            pending.clear()

        for seconds, utt, source_shape in durations:
            try:
                if self.batch_size == 1 or seconds * self.model.sample_rate > limit:
                    # A chunked (long) file traces several window shapes: always fresh.
                    self._fresh_graph(("file", source_shape) if seconds * self.model.sample_rate
                                      <= limit else None)
                    codes, num_samples = encode_file(self.model, utt.path, n_q=self.n_q)
                    yield utt, codes, num_samples
                    continue
                audio = np.concatenate(list(iter_file_blocks(utt.path, self.model.sample_rate)))
            except Exception as err:  # bad audio is reported, never fatal for the shard
                bad.append((utt.relative_path, _one_line(err)))
                continue
            if pending and (len(pending[0][1]) != len(audio) or len(pending) >= self.batch_size):
                yield from flush()
            pending.append((utt, audio))
        if pending:
            yield from flush()

    def encode_shard(self, index, shard):
        import pyarrow as pa
        import pyarrow.parquet as pq

        start = time.perf_counter()
        bad, rows = [], []
        audio_seconds = 0.0
        for utt, codes, num_samples in self._encode_sorted(shard, bad):
            codes = np.asarray(codes).astype(self.codes_dtype)
            rows.append(dict(
                utterance_id=utt.utterance_id, path=utt.relative_path, codes=codes.tolist(),
                n_q=codes.shape[0], num_frames=codes.shape[1], num_samples=int(num_samples),
                sample_rate=self.model.sample_rate, model=self.model_name,
                config_hash=self.expected["config_hash"], codebook_hash=self.codebook_hash,
            ))
            audio_seconds += num_samples / self.model.sample_rate
        rows.sort(key=lambda row: row["utterance_id"])
        codes_type = pa.int16() if self.codes_dtype == np.int16 else pa.int32()
        info = dict(
            format_version=FORMAT_VERSION, shard=index, shard_hash=shard_hash(shard),
            num_assigned=len(shard), num_ok=len(rows), bad=bad, n_q=self.n_q,
            model=self.model_name, config_hash=self.expected["config_hash"],
            weights_sha256=self.expected["weights_sha256"], codebook_hash=self.codebook_hash,
            sample_rate=self.model.sample_rate, audio_seconds=audio_seconds,
        )
        schema = _schema(codes_type).with_metadata({METADATA_KEY: json.dumps(info)})
        table = pa.Table.from_pylist(rows, schema=schema)
        with atomic_output(self.out_dir / shard_file(index)) as tmp:
            pq.write_table(table, tmp, compression="zstd")
            _fault("before_rename", index, self.out_dir)
        info["encode_seconds"] = time.perf_counter() - start
        info["worker_pid"] = os.getpid()
        info["worker_backend"] = self.backend
        return info


# -------------------------------------------------------------------- driver
def _default_backend():
    import sys

    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    return os.environ.get("KERAS_BACKEND") or "tensorflow"


class _RaySession:
    """Connects to ``address`` (or ``$RAY_ADDRESS``), or starts a private local instance."""

    def __init__(self, address, num_cpus, num_gpus):
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self.owned = False

    def __enter__(self):
        import ray

        if ray.is_initialized():
            return self
        address = self.address or os.environ.get("RAY_ADDRESS") or "local"
        kwargs = dict(include_dashboard=False, log_to_driver=False,
                      logging_level=logging.WARNING)
        if address == "local":
            # "local" starts a new instance rather than joining whichever cluster the
            # last `ray start` on this machine left behind.
            kwargs.update(num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                          object_store_memory=256 * 1024 ** 2)
        ray.init(address=address, **kwargs)
        self.owned = True
        return self

    def __exit__(self, *exc):
        import ray

        if self.owned:
            ray.shutdown()


def _ray_error_line(err):
    """One line for a Ray error: its summary plus the worker's own exception, ANSI-free."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(err).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return type(err).__name__
    causes = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception)\b.*:", line)]
    summary = lines[0].split(", ray::")[0]
    return f"{summary}: {causes[-1]}" if causes and causes[-1] != lines[0] else summary


def _remove_temporaries(out_dir):
    for tmp in Path(out_dir).glob(".tmp_shard-*.parquet"):
        tmp.unlink(missing_ok=True)


def _write_json(path, data):
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2) + "\n")


def tokenize_corpus(source, out_dir, model, n_q=None, workers=1, batch_size=1, shard_size=256,
                    cpus_per_worker=None, gpus_per_worker=0, address=None, backend=None,
                    max_retries=3, log=None):
    """Tokenizes a corpus with a pool of Ray actors; writes Parquet shards + manifest + report.

    Args:
        source: directory tree of audio, or a manifest (see ``list_utterances``).
        out_dir: output directory (local or a filesystem every worker mounts).
        model: preset name (with shipped weights) or preset directory.
        n_q: codebooks to keep (default: all of the model's).
        workers: actors, each holding one model.
        batch_size: clips of equal length encoded per call (1 is bit-identical
            to ``dmcodec encode``; see the module docstring).
        shard_size: utterances per Parquet shard.
        cpus_per_worker: CPUs reserved per actor (default: local CPUs / workers
            on a local instance, 1 on a cluster); also the backend's thread count.
        gpus_per_worker: GPUs per actor (e.g. 1, or 0.5 to share a GPU).
        address: Ray cluster address (default ``$RAY_ADDRESS``, else a new local
            instance). An already initialised Ray connection is used as is.
        backend: Keras backend of the workers (default: the driver's).
        max_retries: retries of a shard whose worker died or raised.
        log: callable for progress lines (e.g. ``print``), or None.

    Returns:
        the report dict written to ``report.json``.
    """
    import ray
    import ray.data

    log = log or (lambda message: None)
    out_dir = Path(out_dir)
    expected_model = resolve_model(model)
    model_n_q = int(expected_model["config"].get("n_q", 8))
    n_q = model_n_q if n_q is None else int(n_q)
    if not 1 <= n_q <= model_n_q:
        raise ValueError(f"n_q must be in 1..{model_n_q} for this model, got {n_q}")
    for name, value in (("workers", workers), ("batch_size", batch_size),
                        ("max_retries + 1", max_retries + 1)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    backend = backend or _default_backend()
    if backend not in ("tensorflow", "jax", "torch"):
        raise ValueError(f"backend must be tensorflow, jax or torch, got {backend!r}")
    utterances = list_utterances(source)
    shards = plan_shards(utterances, shard_size)
    expected = dict(n_q=n_q, config_hash=expected_model["config_hash"],
                    weights_sha256=expected_model["weights_sha256"])

    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_temporaries(out_dir)
    todo, skipped, redo = [], [], {}
    for index, shard in enumerate(shards):
        reason = check_shard(out_dir / shard_file(index),
                             dict(expected, shard=index, shard_hash=shard_hash(shard)))
        if reason is None:
            skipped.append(index)
        else:
            if reason != "missing":
                redo[index] = reason
            todo.append(index)
    log(f"{len(utterances)} utterances in {len(shards)} shards: {len(skipped)} already done, "
        f"{len(todo)} to encode with {workers} worker(s) on {backend}")

    start = time.perf_counter()
    results, failed = {}, {}
    failure = "failed after retries (see the Ray worker logs)"
    if todo:
        local = not (address or os.environ.get("RAY_ADDRESS") or ray.is_initialized())
        if cpus_per_worker is None:
            cpus_per_worker = max(1, (os.cpu_count() or 1) // workers) if local else 1
        env_vars = {"KERAS_BACKEND": backend}
        if os.environ.get(FAULT_ENV):
            env_vars[FAULT_ENV] = os.environ[FAULT_ENV]
        with _RaySession(address, num_cpus=max(workers * cpus_per_worker, 1),
                         num_gpus=workers * gpus_per_worker if gpus_per_worker else None):
            context = ray.data.DataContext.get_current()
            saved = (context.actor_task_retry_on_errors, context.max_errored_blocks,
                     context.enable_progress_bars)
            # Retry a shard on any error (bounded by max_task_retries), then drop it
            # rather than abort the others; the driver reports it as failed.
            context.actor_task_retry_on_errors = True
            context.max_errored_blocks = -1
            context.enable_progress_bars = False
            try:
                items = [dict(shard=index, utterances=json.dumps(
                    [dataclasses.astuple(u) for u in shards[index]])) for index in todo]
                dataset = ray.data.from_items(items, override_num_blocks=len(items))
                with warnings.catch_warnings():
                    # Ray 2.60 has no named parameter for max_task_retries yet; its
                    # default for actor pools is unbounded retries.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    encoded = dataset.map_batches(
                        ShardEncoder, batch_size=1,
                        compute=ray.data.ActorPoolStrategy(size=int(workers),
                                                           max_tasks_in_flight_per_actor=1),
                        fn_constructor_kwargs=dict(
                            model=str(model), expected=expected_model,
                            out_dir=str(out_dir.resolve()),
                            n_q=n_q, batch_size=int(batch_size), backend=backend,
                            threads=cpus_per_worker if local else None),
                        num_cpus=cpus_per_worker, num_gpus=gpus_per_worker or None,
                        max_task_retries=int(max_retries), runtime_env={"env_vars": env_vars},
                    )
                try:
                    for row in encoded.iter_rows():
                        info = json.loads(row["summary"])
                        results[int(row["shard"])] = info
                        log(f"shard {int(row['shard']):5d}: {info['num_ok']} encoded, "
                            f"{len(info['bad'])} bad, {info['encode_seconds']:.1f} s "
                            f"({len(results)}/{len(todo)})")
                except Exception as err:  # e.g. workers that cannot start; shards done stay
                    failure = _ray_error_line(err)
                    log(f"error: {failure}")
            finally:
                (context.actor_task_retry_on_errors, context.max_errored_blocks,
                 context.enable_progress_bars) = saved
        for index in todo:
            if index not in results:
                failed[index] = failure
    elapsed = time.perf_counter() - start
    _remove_temporaries(out_dir)

    shard_entries, bad_files = [], []
    for index, shard in enumerate(shards):
        if index in failed:
            continue
        info = results.get(index)
        if info is None:
            info, _ = _shard_metadata(out_dir / shard_file(index))
        shard_entries.append(dict(
            file=shard_file(index), num_rows=info["num_ok"], num_assigned=info["num_assigned"],
            first_id=shard[0].utterance_id, last_id=shard[-1].utterance_id,
            audio_seconds=round(info["audio_seconds"], 3),
        ))
        bad_files.extend(dict(path=path, reason=reason) for path, reason in info["bad"])
    planned = {shard_file(i) for i in range(len(shards))}
    stale = sorted(p.name for p in out_dir.glob(SHARD_GLOB) if p.name not in planned)
    for name in stale:  # left by an earlier run over a larger corpus
        (out_dir / name).unlink()

    encoded_seconds = sum(results[i]["audio_seconds"] for i in results)
    encoded_count = sum(results[i]["num_ok"] for i in results)
    manifest = dict(
        format_version=FORMAT_VERSION, complete=not failed, source=str(source),
        model=expected_model["model"], config_hash=expected["config_hash"],
        weights_sha256=expected["weights_sha256"], n_q=n_q,
        sample_rate=int(expected_model["config"].get("sample_rate", 16000)),
        shard_size=int(shard_size), num_shards=len(shards),
        num_utterances=sum(s["num_rows"] for s in shard_entries),
        audio_seconds=round(sum(s["audio_seconds"] for s in shard_entries), 3),
        shards=shard_entries,
    )
    report = dict(
        num_listed=len(utterances), num_encoded=manifest["num_utterances"],
        num_bad=len(bad_files), bad_files=bad_files,
        failed_shards=[dict(shard=i, reason=r) for i, r in sorted(failed.items())],
        skipped_shards=skipped, written_shards=sorted(results),
        redone_shards=[dict(shard=i, reason=r) for i, r in sorted(redo.items())],
        removed_stale_shards=stale, workers=int(workers), backend=backend,
        worker_backends=sorted({info["worker_backend"] for info in results.values()}),
        batch_size=int(batch_size), elapsed_seconds=round(elapsed, 3),
        encoded_audio_seconds=round(encoded_seconds, 3), encoded_utterances=encoded_count,
        worker_busy_seconds=round(sum(info["encode_seconds"] for info in results.values()), 3),
    )
    _write_json(out_dir / REPORT_FILE, report)
    _write_json(out_dir / MANIFEST_FILE, manifest)
    return report
