"""Corpus tokenization on Ray Data: audio corpus in, sharded Parquet token files out.

``tokenize_corpus`` lists a corpus (``keras_dmcodec.corpus.list_corpus``: a folder tree
of audio, or a manifest), cuts the utterances, sorted by id, into deterministic shards
of ``shard_size`` (``keras_dmcodec.pipelines.shards``), and maps the shards over a pool
of Ray actors (``ActorPoolStrategy``), each of which loads the codec **once** and then
encodes whole shards (``keras_dmcodec.pipelines.encoder.ShardEncoder``). A shard is
written as one Parquet file through a temporary file and a rename, so it is either
complete or absent; a worker that dies mid-shard (crash, OOM kill, lost node) is
restarted by Ray and the shard is retried (``max_retries``). Re-running on the same
output directory skips shards whose Parquet file exists and validates (same shard
contents, model fingerprint and ``n_q``). Unreadable or empty audio is counted in
``report.json`` with a one-line reason and does not stop the run, as are corpus
entries the listing skipped. ``manifest.json`` lists the shards.

Output: ``shard-NNNNN.parquet`` with one row per utterance (see
``shards.shard_schema``), ``manifest.json`` and ``report.json``. Read them with
``keras_dmcodec.pipelines.shards.read_shard`` / ``iter_tokens``.

This module imports neither Keras nor Ray at module level: Ray workers set the
driver's Keras backend before Keras is imported, and the listing / reading
helpers stay cheap.
"""

import dataclasses
import json
import logging
import os
import re
import sys
import time
import warnings
from pathlib import Path

from keras_dmcodec.corpus import list_corpus
from keras_dmcodec.pipelines.encoder import ShardEncoder
from keras_dmcodec.pipelines.shards import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    REPORT_FILE,
    SHARD_GLOB,
    check_shard,
    plan_shards,
    remove_temporaries,
    shard_file,
    shard_hash,
    shard_metadata,
    write_json,
)


def _default_backend():
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    return os.environ.get("KERAS_BACKEND") or "tensorflow"


def _resolve_in_driver(spec):
    """The model's name, ``n_q``, sample rate and fingerprint, resolved once in the driver."""
    # The driver may share a node, and its GPU, with the workers: keep TensorFlow and JAX
    # from reserving most of the GPU's memory for a model that is only fingerprinted here.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    # deferred: the loader imports Keras, which the listing and reading helpers do not need.
    from keras_dmcodec.models.loader import resolve_model

    resolved = resolve_model(spec)
    return dict(name=resolved.name, fingerprint=resolved.fingerprint,
                config_hash=resolved.identity.config, n_q=int(resolved.model.n_q),
                sample_rate=int(resolved.model.sample_rate))


class _RaySession:
    """Connects to ``address`` (or ``$RAY_ADDRESS``), or starts a private local instance."""

    def __init__(self, address, num_cpus, num_gpus):
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self.owned = False

    def __enter__(self):
        # deferred: ray is a heavy optional dependency.
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
        import ray  # deferred: see __enter__

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


def tokenize_corpus(source, out_dir, model, n_q=None, workers=1, batch_size=1, shard_size=256,
                    cpus_per_worker=None, gpus_per_worker=0, address=None, backend=None,
                    max_retries=3, log=None, before_commit=None):
    """Tokenizes a corpus with a pool of Ray actors; writes Parquet shards + manifest + report.

    Args:
        source: a folder tree of audio, or a manifest (``keras_dmcodec.corpus``).
        out_dir: output directory (local or a filesystem every worker mounts).
        model: preset name (with shipped weights), preset folder or keras-hub handle
            (``keras_dmcodec.models.loader.resolve_model``).
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
        before_commit: None, or ``callable(shard_index, temporary_path)`` run in the worker
            after a shard's temporary file is written, before the rename that publishes it
            (fault-injection tests; see ``ShardEncoder``). It is pickled to the workers.

    Returns:
        the report dict written to ``report.json``.
    """
    # deferred: ray is a heavy optional dependency.
    import ray
    import ray.data

    log = log or (lambda message: None)
    source, out_dir = Path(source), Path(out_dir)
    for name, value in (("workers", workers), ("batch_size", batch_size),
                        ("shard_size", shard_size), ("max_retries + 1", max_retries + 1)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    backend = backend or _default_backend()
    if backend not in ("tensorflow", "jax", "torch"):
        raise ValueError(f"backend must be tensorflow, jax or torch, got {backend!r}")
    utterances, problems = list_corpus(source)
    expected_model = _resolve_in_driver(model)
    model_n_q = expected_model["n_q"]
    n_q = model_n_q if n_q is None else int(n_q)
    if not 1 <= n_q <= model_n_q:
        raise ValueError(f"n_q must be in 1..{model_n_q} for this model, got {n_q}")
    # Rows record paths relative to the corpus folder, or to the manifest's folder.
    shards = plan_shards(utterances, shard_size, source if source.is_dir() else source.parent)
    expected = dict(n_q=n_q, fingerprint=expected_model["fingerprint"])

    out_dir.mkdir(parents=True, exist_ok=True)
    remove_temporaries(out_dir)
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
    skipped_entries = f" ({len(problems)} corpus entries skipped)" if problems else ""
    log(f"{len(utterances)} utterances{skipped_entries} in {len(shards)} shards: "
        f"{len(skipped)} already done, {len(todo)} to encode with {workers} worker(s) on "
        f"{backend}")

    start = time.perf_counter()
    results, failed = {}, {}
    failure = "failed after retries (see the Ray worker logs)"
    if todo:
        local = not (address or os.environ.get("RAY_ADDRESS") or ray.is_initialized())
        if cpus_per_worker is None:
            cpus_per_worker = max(1, (os.cpu_count() or 1) // workers) if local else 1
        env_vars = {"KERAS_BACKEND": backend}
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
                            threads=cpus_per_worker if local else None,
                            before_commit=before_commit),
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
    remove_temporaries(out_dir)

    shard_entries, bad_files = [], []
    for index, shard in enumerate(shards):
        if index in failed:
            continue
        info = results.get(index)
        if info is None:
            info, _ = shard_metadata(out_dir / shard_file(index))
        shard_entries.append(dict(
            file=shard_file(index), num_rows=info["num_ok"], num_assigned=info["num_assigned"],
            first_id=shard[0].id, last_id=shard[-1].id,
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
        model=expected_model["name"], fingerprint=expected_model["fingerprint"],
        config_hash=expected_model["config_hash"], n_q=n_q,
        sample_rate=expected_model["sample_rate"],
        shard_size=int(shard_size), num_shards=len(shards),
        num_utterances=sum(s["num_rows"] for s in shard_entries),
        audio_seconds=round(sum(s["audio_seconds"] for s in shard_entries), 3),
        shards=shard_entries,
    )
    report = dict(
        num_listed=len(utterances), num_encoded=manifest["num_utterances"],
        num_skipped_entries=len(problems), skipped_entries=problems,
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
    write_json(out_dir / REPORT_FILE, report)
    write_json(out_dir / MANIFEST_FILE, manifest)
    return report
