import json
from pathlib import Path

import keras
import pytest

from training.curve import load_points, main
from training.train import train

SPEECH = Path(__file__).resolve().parents[1] / "tests" / "data" / "speech"
CONFIG = {
    "model": {"n_filters": 2, "dimension": 8, "semantic_dimension": 0, "n_q": 2,
              "codebook_size": 8, "lstm_layers": 1, "kmeans_iters": 2},
    "discriminators": {},
    "loss": {"mel_weights": [45.0, 1.0]},
    "data": {"train": str(SPEECH / "101"), "segment_seconds": 0.2, "batch_size": 2},
    "optimizer": {"learning_rate": 1e-3},
    "train": {"steps": 6, "steps_per_epoch": 2, "checkpoint_every": 2, "seed": 7},
}


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="evaluates through the (tested on every backend) runner; runs once")
def test_curve_of_a_run(tmp_path, capsys):
    run = tmp_path / "run"
    train(json.loads(json.dumps(CONFIG)), run, verbose=0)
    manifest = tmp_path / "m.tsv"
    manifest.write_text(f"{SPEECH / '104' / '1' / '104-1-0000.flac'}\t"
                        "WE WALKED HOME SLOWLY AFTER THE LONG MEETING\n")
    assert main(["--run", str(run), "--data", str(manifest), "--every", "4"]) == 0
    # step 4 (a multiple of --every) and 6 (the last); step 2 is not due
    points = load_points(run)
    assert [p["step"] for p in points] == [4, 6]
    assert all(0 <= p["stoi"] <= 1 and p["original_wer"] == 0.0 for p in points)
    assert [p["total_steps"] for p in points] == [4, 6]  # no warm start: no offset
    curve = run / "curve"
    assert (curve / "curve.png").stat().st_size > 10_000
    table = (curve / "curve.md").read_text()
    assert table.count("\n| 4 | 4 |") == 1 and "| 6 | 6 |" in table
    assert (curve / "step-4" / "preset" / "model.weights.h5").is_file()
    # a second call finds nothing new to evaluate
    capsys.readouterr()
    assert main(["--run", str(run), "--data", str(manifest), "--every", "4"]) == 0
    assert "(2 points)" in capsys.readouterr().out


def test_plot_marks_where_a_merged_curve_changes_phase(tmp_path, monkeypatch):
    import matplotlib.axes

    from training.curve import plot_curve

    point = {"stoi": 0.8, "mel_distance": 0.5, "wer": 30.0, "original_wer": 15.0,
             "utterances": 20}
    points = [dict(point, total_steps=s, phase=ph) for s, ph in
              ((0, "1: plain"), (1000, "1: plain"), (2000, "2: gan"), (3000, "2: gan"))]
    lines = []
    original = matplotlib.axes.Axes.axvline
    monkeypatch.setattr(matplotlib.axes.Axes, "axvline",
                        lambda ax, x, *a, **k: lines.append(x) or original(ax, x, *a, **k))
    assert plot_curve(points, tmp_path / "c.png").stat().st_size > 10_000
    assert lines == [1000, 1000, 1000]  # one per panel, at the new phase's starting point
    lines.clear()
    plot_curve([{k: v for k, v in p.items() if k != "phase"} for p in points],
               tmp_path / "d.png")
    assert lines == []


def _fake_run(root, name, totals, start_is_baseline):
    point = {"stoi": 0.8, "mel_distance": 0.5, "wer": 30.0, "visqol": 2.5, "pesq": 1.9,
             "si_snr": 4.0, "codebook_usage": 90.0, "original_wer": 15.0, "utterances": 20}
    points = [dict(point, total_steps=t, step=t - totals[0],
                   run_step=not (i == 0 and start_is_baseline), wer=30.0 + i + len(name))
              for i, t in enumerate(totals)]
    (root / name / "curve").mkdir(parents=True)
    (root / name / "curve" / "curve.json").write_text(json.dumps(points))
    return root / name


def test_merge_joins_phases_and_drops_the_repeated_starting_point(tmp_path, capsys):
    first = _fake_run(tmp_path, "a", [0, 1000, 2000], start_is_baseline=True)
    second = _fake_run(tmp_path, "bb", [2000, 3000], start_is_baseline=True)
    out = tmp_path / "preset"
    assert main(["--merge", f"1: plain={first}", f"2: gan=x={second}", "--to", str(out)]) == 0
    assert "(4 points, 2 phases)" in capsys.readouterr().out
    points = json.loads((out / "learning_curve.json").read_text())
    assert [p["total_steps"] for p in points] == [0, 1000, 2000, 3000]
    # step 2000 is the first run's own checkpoint, not the second's re-evaluation of it
    assert [p["phase"] for p in points] == ["1: plain"] * 3 + ["2: gan=x"]
    assert points[2]["wer"] == 33.0
    table = (out / "learning_curve.md").read_text()
    assert "| 0 | 1 (start) |" in table and "| 3000 | 2 |" in table
    assert (out / "learning_curve.png").stat().st_size > 10_000


def test_merge_refuses_overlapping_phases_and_runs_without_a_curve(tmp_path):
    first = _fake_run(tmp_path, "a", [0, 1000], start_is_baseline=True)
    second = _fake_run(tmp_path, "b", [500, 1000], start_is_baseline=False)
    with pytest.raises(SystemExit):
        main(["--merge", f"1={first}", f"2={second}", "--to", str(tmp_path / "o")])
    with pytest.raises(SystemExit):
        main(["--merge", f"1={tmp_path / 'missing'}", "--to", str(tmp_path / "o")])
    with pytest.raises(SystemExit):
        main(["--merge", "no-equals-sign", "--to", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()
