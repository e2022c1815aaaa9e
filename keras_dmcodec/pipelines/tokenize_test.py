"""Corpus tokenization on local Ray: kill mid-run, resume, exactly-once output, codes as encode."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile as sf

from conftest import TINY_CODEC
from keras_dmcodec.audio import load_audio
from keras_dmcodec.corpus import list_corpus
from keras_dmcodec.models.loader import resolve_model
from keras_dmcodec.pipelines import shards, tokenize
from keras_dmcodec.tokens import load_tokens

SPEECH = Path(__file__).resolve().parents[2] / "tests" / "data" / "speech"
ROOT = Path(__file__).resolve().parents[2]


def _corpus(root):
    """Six real utterances: five cut to 1 s (one compiled shape), one whole, one stereo
    22.05 kHz copy (downmix + resampling), plus two unreadable files."""
    files = sorted(SPEECH.glob("*/*/*.flac"))
    for i, path in enumerate(files):
        audio, sr = sf.read(path, dtype="float32")
        out = root / path.relative_to(SPEECH)
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, audio if i == 0 else audio[:sr], sr)
    audio, sr = sf.read(files[1], dtype="float32")
    stereo = np.stack([audio[:sr], audio[:sr] * 0.5], axis=1)
    (root / "extra").mkdir()
    sf.write(root / "extra" / "stereo_22k.wav", _resample(stereo, sr, 22050), 22050)
    (root / "extra" / "corrupt.flac").write_bytes(b"fLaC" + bytes(range(200)))
    (root / "extra" / "empty.wav").write_bytes(b"")
    (root / "extra" / "notes.txt").write_text("not audio, not listed")


def _resample(audio, orig, target):
    import soxr

    return soxr.resample(audio, orig, target)


def _wait_for(condition, process, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.2)
    return False


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="backend-independent; runs once")
def test_list_and_plan_shards(tmp_path):
    _corpus(tmp_path)
    utterances, problems = list_corpus(tmp_path)
    ids = [u.id for u in utterances]
    assert ids == sorted(ids) and len(ids) == 9 and not problems  # notes.txt is not audio
    assert "101/1/101-1-0000" in ids
    planned = shards.plan_shards(list(reversed(utterances)), 4, tmp_path)
    assert [len(s) for s in planned] == [4, 4, 1]
    assert [item.id for s in planned for item in s] == ids
    assert planned[0][0] == shards.ShardItem("101/1/101-1-0000",
                                             str(tmp_path / "101/1/101-1-0000.flac"),
                                             "101/1/101-1-0000.flac")
    assert shards.shard_hash(planned[0]) == shards.shard_hash(
        shards.plan_shards(utterances, 4, tmp_path)[0])
    manifest = tmp_path / "list.tsv"
    manifest.write_text("id\tpath\na\t101/1/101-1-0000.flac\nb\textra/stereo_22k.wav\n")
    listed, _ = list_corpus(manifest)
    assert [(u.id, u.path.is_file()) for u in listed] == [("a", True), ("b", True)]
    manifest.write_text("id\tpath\na\t101/1/101-1-0000.flac\na\textra/stereo_22k.wav\n")
    listed, problems = list_corpus(manifest)
    assert [u.id for u in listed] == ["a"] and "duplicate utterance id 'a'" in problems[0]
    with pytest.raises(ValueError, match="shard_size must be >= 1"):
        shards.plan_shards(listed, 0, tmp_path)


def _assert_codes_equal_encode(rows, corpus, preset):
    """Reference: what `dmcodec encode` computes for one short file in a fresh process."""
    codec, length = resolve_model(preset).model, None
    for row in sorted(rows, key=lambda row: row["num_samples"]):
        if keras.backend.backend() == "tensorflow" and row["num_samples"] != length:
            # A TF codec that has encoded other lengths reuses a shape-generic graph
            # (Keras's reduce_retracing), whose codes differ at near ties: start fresh.
            codec, length = resolve_model(preset).model, row["num_samples"]
        audio, _ = load_audio(corpus / row["path"], sample_rate=codec.sample_rate)
        expected = codec.encode(audio[None], n_q=codec.n_q)[0]
        np.testing.assert_array_equal(row["codes"], expected, err_msg=row["utterance_id"])
        assert row["num_samples"] == len(audio)


def _setup(tmp_path):
    corpus, out, preset = tmp_path / "corpus", tmp_path / "out", tmp_path / "preset"
    corpus.mkdir()
    _corpus(corpus)
    _tiny_codec().save_to_preset(preset)
    return corpus, out, preset


# Workers get as many threads as this process has by default: kernels split over a
# different thread count round differently, and the tiny codec's codebooks have near ties.
THREADS = os.cpu_count()


@pytest.mark.skipif(keras.backend.backend() == "tensorflow",
                    reason="the tensorflow pass runs the kill/resume test below")
def test_workers_use_driver_backend(tmp_path, monkeypatch):
    corpus, out, preset = _setup(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    report = tokenize.tokenize_corpus(corpus, out, str(preset), shard_size=5, workers=1,
                                      cpus_per_worker=THREADS)
    assert report["worker_backends"] == [keras.backend.backend()]
    assert report["num_encoded"] == 7 and report["num_bad"] == 2
    _assert_codes_equal_encode(list(shards.iter_tokens(out)), corpus, preset)


# Run 1 of the kill/resume test, in its own process: shard 1's worker hangs after writing
# the shard's temporary file (``before_commit``, pickled by value to the Ray worker).
HANGING_RUN = textwrap.dedent(
    """
    import sys, time
    from keras_dmcodec.pipelines.tokenize import tokenize_corpus

    def hang_in_shard_1(index, temporary_path):
        if index == 1:
            time.sleep(3600)

    corpus, out, preset, threads = sys.argv[1:]
    tokenize_corpus(corpus, out, preset, shard_size=3, workers=1, cpus_per_worker=int(threads),
                    before_commit=hang_in_shard_1, log=print)
    """
)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="Ray start-up is slow: the crash/resume machinery runs once")
def test_kill_resume_exactly_once_and_codes_equal_encode(tmp_path, monkeypatch):
    backend = keras.backend.backend()
    corpus, out, preset = _setup(tmp_path)

    # Run 1: a driver in its own process group; shard 1 hangs after writing its temporary
    # file, and the whole run (driver, raylet, workers) is SIGKILLed there.
    env = dict(os.environ, KERAS_BACKEND=backend)
    env.pop("RAY_ADDRESS", None)
    command = [sys.executable, "-c", HANGING_RUN, str(corpus), str(out), str(preset),
               str(THREADS)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        midway = _wait_for(lambda: (out / "shard-00000.parquet").exists()
                           and any(out.glob(".tmp_shard-00001.*")), process, timeout=240)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        log = process.communicate()[0].decode(errors="replace")
    assert midway, log[-3000:]
    assert not (out / "shard-00001.parquet").exists()
    assert not (out / shards.MANIFEST_FILE).exists()

    # Run 2: the Python API resumes; shard 2's worker dies once before its rename and
    # Ray restarts the actor and retries the shard.
    marker = out / ".fault_crashed_00002"

    def crash_once_in_shard_2(index, temporary_path):
        if index == 2 and not marker.exists():
            marker.touch()
            os._exit(17)

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    report = tokenize.tokenize_corpus(corpus, out, str(preset), shard_size=3, workers=1,
                                      cpus_per_worker=THREADS,
                                      before_commit=crash_once_in_shard_2)
    assert report["skipped_shards"] == [0]
    assert report["written_shards"] == [1, 2]
    assert report["failed_shards"] == [] and report["worker_backends"] == [backend]
    assert marker.exists()  # the crash did happen
    assert not list(out.glob(".tmp_*.parquet"))
    assert sorted(b["path"] for b in report["bad_files"]) == ["extra/corrupt.flac",
                                                             "extra/empty.wav"]

    manifest = json.loads((out / shards.MANIFEST_FILE).read_text())
    assert manifest["complete"] and manifest["num_shards"] == 3
    rows = list(shards.iter_tokens(out))
    ids = [row["utterance_id"] for row in rows]
    expected_ids = sorted(u.id for u in list_corpus(corpus).utterances
                          if "corrupt" not in u.path.name and "empty" not in u.path.name)
    assert sorted(ids) == expected_ids and len(ids) == len(set(ids)) == 7
    assert manifest["num_utterances"] == 7
    _assert_codes_equal_encode(rows, corpus, preset)
    assert {row["model"] for row in rows} == {manifest["model"]} == {preset.name}
    assert len({len(row["codes"][0]) for row in rows}) > 1  # more than one length

    # `dmcodec encode` itself, in a fresh process, on the longest file.
    longest = max(rows, key=lambda row: row["num_samples"])
    subprocess.run([sys.executable, "-m", "keras_dmcodec", "--backend", backend, "encode",
                    str(corpus / longest["path"]), "-o", str(tmp_path / "cli"), "--model",
                    str(preset)], cwd=ROOT, env=env, check=True, capture_output=True)
    tokens = load_tokens(next((tmp_path / "cli").glob("*.npz")))
    np.testing.assert_array_equal(tokens.codes, longest["codes"])
    assert (tokens.config_hash, tokens.codebook_hash) == (longest["config_hash"],
                                                          longest["codebook_hash"])

    # Run 3, through the command: nothing left to do; no Ray start, shards untouched.
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.parquet")}
    printed = subprocess.run([sys.executable, "-m", "keras_dmcodec", "--backend", backend,
                              "tokenize-corpus", str(corpus), "-o", str(out), "--model",
                              str(preset), "--shard-size", "3"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
    assert printed.returncode == 0, printed.stderr[-3000:]
    assert "3 shard(s) already done" in printed.stdout
    assert "total 7 of 9 utterances" in printed.stdout
    assert "bad: extra/corrupt.flac" in printed.stderr
    report = json.loads((out / shards.REPORT_FILE).read_text())
    assert report["skipped_shards"] == [0, 1, 2] and report["written_shards"] == []
    assert stamps == {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.parquet")}

    # A truncated shard does not validate, so the next run would redo it.
    with open(out / "shard-00001.parquet", "r+b") as handle:
        handle.truncate(100)
    assert shards.check_shard(out / "shard-00001.parquet", {}).startswith("unreadable")


def _tiny_codec():
    from keras_dmcodec.models.dmcodec import DMCodec

    codec = DMCodec(**TINY_CODEC, seed=3)
    # One training pass runs the k-means codebook initialisation, so codes are varied.
    codec(np.random.RandomState(0).randn(2, 16000).astype("float32") * 0.1, training=True)
    return codec
