import json

import pytest

from training import ablation


@pytest.fixture
def fake_training(monkeypatch):
    """Replaces the training subprocess with one that writes the checkpoints a run would."""
    calls = []

    def fake_run(argv, log):
        argv = [str(a) for a in argv]
        config, run, steps = (argv[argv.index(flag) + 1] for flag in ("--config", "--out",
                                                                       "--steps"))
        calls.append({"config": config.rsplit("/", 1)[-1], "run": run, "steps": int(steps),
                      "resume": "--resume" in argv})
        from pathlib import Path

        from training.train import list_checkpoints

        done = list_checkpoints(run)
        start = done[-1][0] if done else 0
        assert bool(done) == ("--resume" in argv)
        for step in range(start + 250, int(steps) + 1, 250):
            path = Path(run) / "checkpoints" / f"step-{step}"
            path.mkdir(parents=True)
            origin = done[-1][1].parent.parent.name if done else Path(run).name
            (path / "state.json").write_text(json.dumps({"step": step, "origin": origin}))

    monkeypatch.setattr(ablation, "_run", fake_run)
    return calls


def test_branches_every_variant_from_one_shared_trunk(fake_training, tmp_path):
    for variant in ("none", "lm_sm"):
        ablation.train_variant(variant, 1000, tmp_path, shared_steps=500)
    # The trunk (no distillation) is trained once, to the shared step count.
    assert fake_training[0] == {"config": "small_none.json", "run": str(tmp_path / "shared"),
                                "steps": 500, "resume": False}
    # Each variant resumes from its copy of the trunk's checkpoint with its own config.
    assert [(c["config"], c["steps"], c["resume"]) for c in fake_training[1:]] == [
        ("small_none.json", 1000, True), ("small_lm_sm.json", 1000, True)]
    for variant in ("none", "lm_sm"):
        steps = sorted(p.name for p in (tmp_path / variant / "checkpoints").iterdir())
        assert steps == ["step-1000", "step-500", "step-750"]
        copied = json.loads((tmp_path / variant / "checkpoints" / "step-500" /
                             "state.json").read_text())
        assert copied["origin"] == "shared"  # the trunk's own checkpoint, copied whole
    assert not list(tmp_path.glob("*/checkpoints/.tmp_*"))


def test_finished_and_interrupted_variants(fake_training, tmp_path):
    ablation.train_variant("sm", 1000, tmp_path, shared_steps=500)
    n = len(fake_training)
    ablation.train_variant("sm", 1000, tmp_path, shared_steps=500)  # done: nothing runs
    assert len(fake_training) == n
    # Without a shared trunk a variant trains from scratch.
    ablation.train_variant("lm", 500, tmp_path)
    assert fake_training[-1] == {"config": "small_lm.json", "run": str(tmp_path / "lm"),
                                 "steps": 500, "resume": False}
    with pytest.raises(ValueError, match="shared-steps"):
        ablation.train_variant("none", 500, tmp_path / "x", shared_steps=500)


def test_report_gives_relative_wer_and_plot(tmp_path):
    def row(label, wer, stoi):
        return {"label": label, "wer": wer, "wil": wer + 10, "stoi": stoi, "visqol": 2.0,
                "pesq": 1.5, "mel_distance": 0.6}

    results = {"summary": [{"label": "Original audio", "wer": 17.0, "wil": 27.0, "stoi": None,
                            "visqol": 4.4, "pesq": None},
                           row("ablation_none", 60.0, 0.80), row("ablation_lm_sm", 51.0, 0.81)]}
    text = ablation.report(results, 1000, tmp_path, "data/test", shared_steps=500)
    assert "| no distillation | 60.00 |" in text
    assert "-15.0 %" in text  # (51 - 60) / 60
    assert "share their first 500 steps" in text
    assert "also the ASR judge" in text  # lm_sm uses the judge's own encoder as SM teacher
    assert (tmp_path / "ablation.md").read_text() == text
    assert (tmp_path / "ablation.png").stat().st_size > 0


def test_variants_differ_only_in_the_distillation_target():
    """The ablation's claim: same model, data, schedule and steps; only the teachers differ."""
    import copy

    from training.train import load_config

    def comparable(config):
        config = copy.deepcopy(config)
        config.pop("description", None)
        for key in ("distill", "sm_weight", "lm_weight"):
            config["loss"].pop(key, None)
        config["data"].pop("teacher_cache")
        return config

    configs = {v: load_config(ablation.config_path(v)) for v in ablation.VARIANTS}
    assert {v: c["loss"]["distill"] for v, c in configs.items()} == {
        "none": "none", "lm": "lm", "sm": "sm", "lm_sm": "lm+sm", "lm_sm_positional": "lm+sm"}
    for config in configs.values():
        assert comparable(config) == comparable(configs["none"])
    positional = configs["lm_sm_positional"]["data"]["teacher_cache"]
    assert positional["sm"] == configs["lm_sm"]["data"]["teacher_cache"]
    assert positional["lm"] != positional["sm"]


def test_overrides_derive_one_config_per_variant(tmp_path):
    from training.train import load_config

    overrides = ablation.parse_overrides(["model.n_filters=8", "model.dimension=128",
                                          "data.batch_size=4", "loss.distill_type=t_axis"])
    assert overrides == {"model": {"n_filters": 8, "dimension": 128},
                         "data": {"batch_size": 4}, "loss": {"distill_type": "t_axis"}}
    assert ablation.variant_config("sm", tmp_path) == ablation.config_path("sm")
    path = ablation.variant_config("sm", tmp_path, overrides)
    assert path == tmp_path / "configs" / "small_sm.json"
    derived, original = load_config(path), load_config(ablation.config_path("sm"))
    assert derived["model"] == dict(original["model"], n_filters=8, dimension=128)
    assert derived["data"] == dict(original["data"], batch_size=4)
    assert derived["loss"]["distill"] == "sm" and derived["loss"]["distill_type"] == "t_axis"
    for bad in ("n_filters=8", "model.=3", "model.n_filters"):
        with pytest.raises(ValueError, match="SECTION.KEY=VALUE"):
            ablation.parse_overrides([bad])


def test_overrides_reach_the_trunk_and_the_report(fake_training, tmp_path):
    overrides = {"model": {"n_filters": 8}}
    ablation.train_variant("lm", 1000, tmp_path, shared_steps=500, overrides=overrides)
    assert [c["config"] for c in fake_training] == ["small_none.json", "small_lm.json"]
    for variant in ("none", "lm"):  # the trunk too trains the derived config
        derived = json.loads((tmp_path / "configs" / f"small_{variant}.json").read_text())
        assert derived["model"] == {"n_filters": 8}
        assert derived["extends"] == str(ablation.config_path(variant))
    results = {"summary": [{"label": "ablation_none", "wer": 60.0, "wil": 70.0, "stoi": 0.8,
                            "visqol": 2.0, "pesq": 1.5, "mel_distance": 0.6}]}
    text = ablation.report(results, 1000, tmp_path, "data/test", 500, overrides)
    assert "with `model.n_filters=8`" in text and "on `data/test`" in text


def test_main_scores_each_variant_while_the_next_trains(fake_training, tmp_path, monkeypatch):
    events = []
    summary = [{"label": "Original audio", "wer": 10.0, "wil": 15.0, "stoi": 1.0,
                "visqol": 4.5, "pesq": 4.5, "mel_distance": 0.0}]

    def fake_ship(variant, steps, out):
        events.append(("ship", variant))
        summary.append({"label": f"ablation_{variant}", "wer": 50.0, "wil": 60.0, "stoi": 0.8,
                        "visqol": 2.0, "pesq": 1.5, "mel_distance": 0.6})
        return tmp_path / "presets" / f"ablation_{variant}"

    class FakePopen:
        def __init__(self, argv, **kwargs):
            self.argv = argv
            events.append(("start", argv[argv.index("--model") + 1].rsplit("_", 1)[-1],
                           "--no-plots" in argv))

        def wait(self):
            events.append(("wait",))
            return 0

    def fake_evaluate(presets, data, out):
        events.append(("evaluate", [p.name for p in presets]))
        return {"summary": summary}

    monkeypatch.setattr(ablation, "ship_variant", fake_ship)
    monkeypatch.setattr(ablation.subprocess, "Popen", FakePopen)
    monkeypatch.setattr(ablation, "evaluate", fake_evaluate)
    assert ablation.main(["--steps", "500", "--out", str(tmp_path), "--data", "d",
                          "--variants", "none", "sm", "lm"]) == 0
    # One background evaluation at a time, each started after its variant is shipped and
    # waited for before the next starts; the last variant is left to the final call.
    assert events == [("ship", "none"), ("start", "none", True), ("ship", "sm"), ("wait",),
                      ("start", "sm", True), ("ship", "lm"), ("wait",),
                      ("evaluate", ["ablation_none", "ablation_sm", "ablation_lm"])]
    assert (tmp_path / "ablation.md").exists()

    events.clear()
    assert ablation.main(["--steps", "500", "--out", str(tmp_path), "--variants", "none",
                          "sm", "--train-only"]) == 0
    assert [e[0] for e in events] == ["ship", "ship"]  # no evaluation at all


def test_a_failed_background_evaluation_stops_the_run(fake_training, tmp_path, monkeypatch):
    class FailingPopen:
        def __init__(self, argv, **kwargs):
            pass

        def wait(self):
            return 3

    monkeypatch.setattr(ablation, "ship_variant", lambda v, s, o: tmp_path / f"ablation_{v}")
    monkeypatch.setattr(ablation.subprocess, "Popen", FailingPopen)
    assert ablation.main(["--steps", "500", "--out", str(tmp_path), "--variants", "none",
                          "sm"]) == 1


def test_paired_differences_and_their_table(tmp_path):
    def rec(system, utt, stoi, wil):
        return {"system": f"ablation_{system}", "id": utt, "stoi": stoi, "wil": wil,
                "visqol": float("nan"), "mel_distance": 0.5}

    records = [rec("none", "a", 0.70, 1.0), rec("none", "b", 0.60, 0.9),
               rec("none", "c", 0.80, 1.0), rec("lm_sm", "a", 0.72, 0.9),
               rec("lm_sm", "b", 0.63, 0.9), rec("lm_sm", "c", 0.81, 1.0),
               rec("lm_sm", "only_here", 0.99, 0.0)]  # no `none` score: not paired
    mean, half, n = ablation.paired_differences(records, "lm_sm", "stoi")
    assert n == 3 and mean == pytest.approx(0.02)
    assert half == pytest.approx(1.96 * 0.01 / 3 ** 0.5)  # sd of (0.02, 0.03, 0.01) is 0.01
    assert ablation.paired_differences(records, "lm_sm", "visqol") is None  # NaNs dropped
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "results.jsonl").write_text(
        "\n".join(json.dumps(r) for r in records) + '\n{"system": "trunc')
    assert ablation.load_records(tmp_path) == json.loads(json.dumps(records))
    summary = [{"label": f"ablation_{v}", "wer": 50.0, "wil": 60.0, "stoi": 0.7, "visqol": 2.0,
                "pesq": 1.5, "mel_distance": 0.5} for v in ("none", "lm_sm")]
    text = ablation.report({"summary": summary}, 100, tmp_path, "d", records=records)
    # records without transcripts: no WER interval
    assert "| LM + SM, word-aligned text (ours) | – | -3.3 ± 6.5 | +0.020 ± 0.011 | – | +0.000" \
        in text


def test_relative_wer_interval_is_a_paired_bootstrap_of_the_corpus_wer():
    def rec(system, utt, wer, text):
        return {"system": f"ablation_{system}", "id": utt, "wer": wer, "text": text}

    four, two = "the cat sat down", "Hello, world!"  # 4 and 2 words after normalisation
    records = [rec("none", "a", 0.5, four), rec("none", "b", 1.0, two),
               rec("lm_sm", "a", 0.25, four), rec("lm_sm", "b", 0.5, two),
               rec("lm_sm", "c", 0.0, four)]  # not scored for `none`: not paired
    change, low, high, n = ablation.relative_wer_interval(records, "lm_sm")
    # errors: none 2 + 2 = 4, lm_sm 1 + 1 = 2 -> -50 %; every resample has the same ratio
    assert n == 2 and change == pytest.approx(-0.5)
    assert low == pytest.approx(-0.5) and high == pytest.approx(-0.5)
    records += [rec("none", "d", 0.5, four), rec("lm_sm", "d", 1.0, four)]
    change, low, high, n = ablation.relative_wer_interval(records, "lm_sm")
    assert n == 3 and change == pytest.approx(6 / 6 - 1)  # none 2+2+2, lm_sm 1+1+4
    assert low < -0.3 and high > 0.5  # utterance d pulls the other way: a wide interval
    assert ablation.relative_wer_interval(records[:2] + records[2:4], "lm_sm",
                                          resamples=10, seed=1)[0] == pytest.approx(-0.5)
    assert ablation.relative_wer_interval([rec("none", "a", 0.0, four),
                                           rec("lm_sm", "a", 0.5, four)], "lm_sm") is None


def test_report_tables_the_wer_interval(tmp_path):
    records = [{"system": f"ablation_{v}", "id": u, "wer": w, "text": "a b c d",
                "wil": w, "stoi": 0.8, "visqol": 2.0, "mel_distance": 0.5}
               for v, u, w in (("none", "a", 0.5), ("none", "b", 0.25),
                               ("lm_sm", "a", 0.25), ("lm_sm", "b", 0.25))]
    summary = [{"label": f"ablation_{v}", "wer": w, "wil": w, "stoi": 0.8, "visqol": 2.0,
                "pesq": 1.5, "mel_distance": 0.5} for v, w in (("none", 37.5), ("lm_sm", 25.0))]
    text = ablation.report({"summary": summary}, 100, tmp_path, "d", records=records)
    assert "| -33.3 % |" in text  # the summary's relative WER (25 vs 37.5)
    # 2 + 1 errors vs 1 + 1: -33.3 %; resamples of (a, a) give -50 %, of (b, b) 0 %
    assert "| LM + SM, word-aligned text (ours) | -33.3 % [-50.0, +0.0] |" in text
