"""``dmcodec evaluate`` end to end in a subprocess (backend-independent: runs once, under TF)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="backend-independent; runs once")

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / "tests" / "data" / "speech"


def _dmcodec(*args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "keras_dmcodec", "--backend", "tensorflow",
                           *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_evaluate_command(tmp_path):
    from keras_dmcodec.models.dmcodec import DMCodec

    model = DMCodec(n_filters=4, dimension=16, semantic_dimension=8, n_q=2, codebook_size=16,
                    lstm_layers=1, kmeans_init=False, seed=0)
    model.build((None, None))
    preset = model.save_to_preset(tmp_path / "tiny_preset")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"path": str(SPEECH / "104" / "1" / "104-1-0000.flac"),
                    "text": "WE WALKED HOME SLOWLY AFTER THE LONG MEETING"}) + "\n"
        + json.dumps({"path": "missing.flac", "text": "NOT THERE"}) + "\n")
    out = tmp_path / "out"
    done = _dmcodec("evaluate", "--model", preset, "--data", manifest, "--n-q", 1, "-o", out,
                    "--no-plots", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| Original audio (no codec) | – | 256.00 | 0.00 | 0.00 |" in done.stdout
    assert "| tiny_preset | 1 | 0.20 |" in done.stdout  # log2(16) bits x 50 Hz
    assert "skipped 1 utterance(s)" in done.stdout
    summary = json.loads((out / "results.json").read_text())["summary"]
    assert [(r["system"], r["n_q"]) for r in summary] == [("original", None), ("tiny_preset", 1)]
    assert np.isfinite(summary[1]["stoi"]) and summary[1]["perplexity"] >= 1.0
    # the listening report, on by default: the one readable utterance, both rows as players
    assert str(out / "report.html") in done.stdout
    page = (out / "report.html").read_text()
    assert page.count("<audio ") == 2 and 'id="utt-104-1-0000"' in page

    # bad input: one clear line, exit status 1
    bad = _dmcodec("evaluate", "--model", preset, "--data", tmp_path / "nothing", "-o", out,
                   cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1].startswith("dmcodec: error: ")
    assert "nothing: no such file or folder" in bad.stderr
