"""The Ray Data actor of ``tokenize-corpus``: loads the codec once, then encodes whole shards.

Codes equal ``dmcodec encode`` of the same file: each file goes through
``keras_dmcodec.inference.encode_file`` (whole clip in one pass up to the
chunk length, chunked with context beyond it), the function the command uses.
With ``batch_size > 1``, each shard's clips are sorted by duration and encoded
``batch_size`` at a time by ``keras_dmcodec.inference.encode_batch``: padded to a
shared length bucket, with each clip's length given to the model, so that every
conv's reflect padding and every LSTM direction see only the clip's own samples.
The codes equal each clip's codes alone apart from float near-ties (batched kernels
round differently from batch 1; measured in docs/performance.md); the default
``batch_size=1`` is bit-identical to ``dmcodec encode``.

Keras is imported in ``ShardEncoder.__init__``, after the worker's backend is set:
the driver imports this module too, and must not import Keras for it.
"""

import functools
import json
import os
import time
from pathlib import Path

import numpy as np

from keras_dmcodec.inference import (
    DEFAULT_CHUNK_SECONDS,
    encode_batch,
    encode_file,
    iter_file_blocks,
)
from keras_dmcodec.pipelines.shards import (
    FORMAT_VERSION,
    ShardItem,
    one_line,
    shard_file,
    shard_hash,
    write_shard,
)
from keras_dmcodec.tokens import codes_dtype

# Compiled encoders a worker keeps (on TensorFlow one per input shape; shards are sorted by
# length, so equal lengths reuse one and memory stays bounded).
GRAPH_CACHE = 8


class ShardEncoder:
    """Ray Data actor: loads the codec once, then encodes and writes whole shards.

    Each call gets a batch of shard rows (``shard``: index, ``utterances``: JSON list
    of ``ShardItem`` fields ``[id, path, relative_path]``) and returns one summary row
    per shard (``shard``, ``summary`` JSON).

    Args:
        model: preset name, folder or handle (``keras_dmcodec.models.loader.resolve_model``).
        expected: dict of what the driver resolved (``name``, ``fingerprint``); a worker
            whose model differs refuses to start, so every worker of a cluster encodes
            with the same weights.
        out_dir: output directory (shared by all workers).
        n_q: codebooks to keep (None: all).
        batch_size: clips encoded together, padded with lengths (1: bit-identical
            to ``dmcodec encode``).
        backend: Keras backend, set before Keras is imported in the worker.
        threads: CPU threads for the backend's kernels (None: backend default).
        before_commit: None, or ``callable(shard_index, temporary_path)`` run after a
            shard's temporary file is written and before the rename that publishes it.
            Tests pass one to kill or hang a worker mid-shard.

    Example:
    >>> encoder = ShardEncoder("path/to/preset", expected, "tokens/", None, 1,
    ...                        "tensorflow")  # doctest: +SKIP
    >>> encoder.encode_shard(0, [ShardItem("a", "/data/a.flac", "a.flac")])  # doctest: +SKIP
    {'format_version': 2, 'shard': 0, 'num_ok': 1, 'bad': [], ...}
    """

    def __init__(self, model, expected, out_dir, n_q, batch_size, backend, threads=None,
                 before_commit=None):
        os.environ["KERAS_BACKEND"] = backend
        # deferred: Keras reads KERAS_BACKEND when first imported, set just above.
        import keras

        # deferred: the loader imports Keras, whose backend was set just above.
        from keras_dmcodec.models.loader import resolve_model

        if keras.backend.backend() != backend:
            raise RuntimeError(f"worker already runs Keras on {keras.backend.backend()}, "
                               f"expected {backend}")
        self.backend = keras.backend.backend()
        self._set_threads(backend, threads)
        resolved = resolve_model(model)
        if resolved.fingerprint != expected["fingerprint"]:
            raise RuntimeError(f"{model}: the model on this worker (fingerprint "
                               f"{resolved.fingerprint}) differs from the driver's "
                               f"({expected['fingerprint']})")
        self.model = resolved.model
        self.model.set_compiled_cache_size(GRAPH_CACHE)
        self.model_name = resolved.name
        self.fingerprint = resolved.fingerprint
        self.config_hash = resolved.identity.config
        self.codebook_hash = resolved.identity.codebooks
        self.codes_dtype = codes_dtype(self.model.codebook_size)
        self.out_dir = Path(out_dir)
        self.n_q = self.model.n_q if n_q is None else int(n_q)
        self.batch_size = int(batch_size)
        self.before_commit = before_commit

    @staticmethod
    def _set_threads(backend, threads):
        if not threads:
            return
        if backend == "torch":
            # deferred: torch is a heavy optional backend.
            import torch

            torch.set_num_threads(int(threads))
        elif backend == "tensorflow":
            # deferred: tensorflow is a heavy optional backend.
            import tensorflow as tf

            try:
                tf.config.threading.set_intra_op_parallelism_threads(int(threads))
                tf.config.threading.set_inter_op_parallelism_threads(int(threads))
            except RuntimeError:  # already initialised in this process
                pass

    def __call__(self, batch):
        shards, summaries = [], []
        for index, listed in zip(batch["shard"], batch["utterances"], strict=True):
            shard = [ShardItem(*entry) for entry in json.loads(str(listed))]
            shards.append(int(index))
            summaries.append(json.dumps(self.encode_shard(int(index), shard)))
        return {"shard": np.asarray(shards, dtype=np.int64), "summary": np.asarray(summaries)}

    def _encode_sorted(self, shard, bad):
        """Yields ``(item, codes, num_samples)``; appends unreadable files to ``bad``."""
        # deferred: soundfile loads libsndfile; the driver never needs it.
        import soundfile as sf

        durations = []
        for item in shard:
            try:
                info = sf.info(item.path)
                durations.append((info.frames / max(info.samplerate, 1), item))
            except Exception as err:
                bad.append((item.relative_path, f"cannot read audio ({one_line(err)})"))
        durations.sort(key=lambda entry: (entry[0], entry[1].id))
        limit = int(DEFAULT_CHUNK_SECONDS * self.model.sample_rate)
        pending = []

        def flush():
            clips = [audio for _, audio in pending]
            for (item, audio), codes in zip(pending, encode_batch(
                    self.model, clips, n_q=self.n_q, max_batch=self.batch_size), strict=True):
                yield item, codes, len(audio)
            pending.clear()

        for seconds, item in durations:
            try:
                if self.batch_size == 1 or seconds * self.model.sample_rate > limit:
                    codes, num_samples = encode_file(self.model, item.path, n_q=self.n_q)
                    yield item, codes, num_samples
                    continue
                audio = np.concatenate(list(iter_file_blocks(item.path, self.model.sample_rate)))
            except Exception as err:  # bad audio is reported, never fatal for the shard
                bad.append((item.relative_path, one_line(err)))
                continue
            # Files come sorted by duration: a batch pads its clips to similar lengths.
            if len(pending) >= self.batch_size:
                yield from flush()
            pending.append((item, audio))
        if pending:
            yield from flush()

    def encode_shard(self, index, shard):
        """Encodes a shard (list of ``ShardItem``) and writes its Parquet file; returns its info."""
        start = time.perf_counter()
        bad, rows = [], []
        audio_seconds = 0.0
        for item, codes, num_samples in self._encode_sorted(shard, bad):
            codes = np.asarray(codes).astype(self.codes_dtype)
            rows.append(dict(
                utterance_id=item.id, path=item.relative_path, codes=codes.tolist(),
                n_q=codes.shape[0], num_frames=codes.shape[1], num_samples=int(num_samples),
                sample_rate=self.model.sample_rate, model=self.model_name,
                config_hash=self.config_hash, codebook_hash=self.codebook_hash,
            ))
            audio_seconds += num_samples / self.model.sample_rate
        rows.sort(key=lambda row: row["utterance_id"])
        info = dict(
            format_version=FORMAT_VERSION, shard=index, shard_hash=shard_hash(shard),
            num_assigned=len(shard), num_ok=len(rows), bad=bad, n_q=self.n_q,
            model=self.model_name, fingerprint=self.fingerprint, config_hash=self.config_hash,
            codebook_hash=self.codebook_hash, sample_rate=self.model.sample_rate,
            audio_seconds=audio_seconds,
        )
        hook = None if self.before_commit is None else functools.partial(self.before_commit,
                                                                         index)
        write_shard(self.out_dir / shard_file(index), rows, info, self.codes_dtype,
                    before_commit=hook)
        info["encode_seconds"] = time.perf_counter() - start
        info["worker_pid"] = os.getpid()
        info["worker_backend"] = self.backend
        return info
