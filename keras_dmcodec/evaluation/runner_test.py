"""The whole evaluation pipeline on real TTS speech with a tiny codec (runs on every backend)."""

import csv
import json
import re
from pathlib import Path

import jiwer
import numpy as np
import pytest
from PIL import Image
from pystoi import stoi as pystoi_stoi

from keras_dmcodec.asr import make_asr
from keras_dmcodec.audio import load_audio
from keras_dmcodec.evaluation import codebook_perplexity, codebook_usage
from keras_dmcodec.evaluation.layout import REPORT_FILE
from keras_dmcodec.evaluation.runner import RESULTS_FILE, run_evaluation, showcase_path
from keras_dmcodec.evaluation.systems import KerasCodecSystem
from keras_dmcodec.models.dmcodec import DMCodec

SPEECH = Path(__file__).resolve().parents[2] / "tests" / "data" / "speech"
IDS = ["101-1-0000", "104-1-0000"]  # flite slt and rms: the judge hears both perfectly
TINY = dict(n_filters=4, dimension=16, semantic_dimension=8, n_q=4, codebook_size=32,
            lstm_layers=1, kmeans_iters=3)


def _fill_codebooks(model, audio):
    """Codebooks from the encoder's latents, layer by layer (cheaper than a k-means pass)."""
    import keras

    rng = np.random.default_rng(0)
    residual = keras.ops.convert_to_numpy(model.encoder(audio[None, :, None]))[0]
    for layer in model.quantizer.quantizers:
        book = residual[rng.choice(len(residual), 32, replace=False)]
        book = book + 1e-3 * rng.normal(size=book.shape)
        layer.codebook.assign(book.astype("float32"))
        layer.embed_avg.assign(book.astype("float32"))
        layer.cluster_size.assign(np.ones(32, "float32"))
        layer.initialized.assign(1.0)
        nearest = ((residual[:, None] - book[None]) ** 2).sum(-1).argmin(1)
        residual = residual - book[nearest]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation")
    manifest = root / "manifest.tsv"
    lines = []
    for utt_id in IDS:
        speaker, chapter, _ = utt_id.split("-")
        folder = SPEECH / speaker / chapter
        text = dict(line.split(" ", 1) for line in
                    (folder / f"{speaker}-{chapter}.trans.txt").read_text().splitlines())[utt_id]
        lines.append(f"{folder / utt_id}.flac\t{text}")
    manifest.write_text("\n".join(lines) + "\n")
    model = DMCodec(**TINY, seed=0)
    model.build((None, None))
    audio = load_audio(SPEECH / "101" / "1" / "101-1-0000.flac")[0]
    _fill_codebooks(model, audio)
    judge = make_asr()
    # One system object for every run here: its compiled encode/decode are reused. (Loading
    # from a preset directory is covered by the CLI test, tests/test_evaluate_cli.py.)
    system = KerasCodecSystem(model, "tiny")
    out = root / "out"
    first = run_evaluation([system], manifest, out, n_qs=[2, 4], judge=judge,
                           progress=False, log=lambda m: None)
    return dict(root=root, manifest=manifest, judge=judge, out=out, first=first, system=system)


def _rows(run):
    return {(r["system"], r["n_q"]): r for r in run["rows"]}


def test_original_row_is_each_metrics_ceiling(setup):
    rows = _rows(setup["first"])
    original = rows[("original", None)]
    assert original["wer"] == 0.0 and original["wil"] == 0.0  # judge hears the originals
    assert original["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert original["visqol_nsim"] == pytest.approx(1.0, abs=1e-6)
    assert original["visqol"] > 4.0  # lattice mapping tops out near 4.2-4.4
    assert original["pesq"] > 4.5
    assert original["mel_distance"] == 0.0
    assert np.isnan(original["si_snr"])  # unbounded for a signal against itself


def test_codec_rows_match_independent_computations(setup):
    rows = _rows(setup["first"])
    records = setup["first"]["result"]["records"]
    model = setup["system"].model
    for n_q in (2, 4):
        row = rows[("tiny", n_q)]
        assert row["utterances"] == 2
        assert row["kbps"] == pytest.approx(n_q * 5 * 50 / 1000)  # log2(32) bits at 50 Hz
        # codebook statistics from codes computed here, with the model's own encode
        counts = np.zeros((n_q, 32), int)
        for utt_id in IDS:
            speaker, chapter, _ = utt_id.split("-")
            audio = load_audio(SPEECH / speaker / chapter / f"{utt_id}.flac")[0]
            codes = model.encode(audio[None], n_q=n_q)[0]  # each utterance at its own length
            for q in range(n_q):
                counts[q] += np.bincount(codes[q], minlength=32)
        np.testing.assert_allclose(row["perplexity_per_quantizer"], codebook_perplexity(counts))
        np.testing.assert_allclose(row["usage_per_quantizer"], codebook_usage(counts))
        # corpus WER from the stored hypotheses, by jiwer on plainly lower-cased text
        mine = [r for r in records if r["system"] == "tiny" and r["n_q"] == n_q]
        refs = [r["text"].lower() for r in mine]
        hyps = ["".join(c for c in r["hypothesis"].lower() if c.isalnum() or c == " ")
                for r in mine]
        hyps = [h if h.strip() else "" for h in hyps]
        assert row["wer"] == pytest.approx(100 * jiwer.wer(refs, hyps), abs=1e-9)
    # STOI of the kept reconstruction, recomputed with pystoi from the WAV (16-bit rounding)
    record = next(r for r in records if r["system"] == "tiny" and r["n_q"] == 4
                  and r["id"] == IDS[0])
    original = load_audio(SPEECH / "101" / "1" / "101-1-0000.flac")[0]
    decoded = load_audio(showcase_path(setup["out"], "tiny", 4, IDS[0]))[0]
    assert record["stoi"] == pytest.approx(pystoi_stoi(original, decoded, 16000), abs=0.02)


def test_reports_and_plots_are_written(setup):
    out = setup["out"]
    table = (out / "results.md").read_text()
    assert "| Model | n_q | kbit/s | WER % ↓ | WIL % ↓ | ViSQOL ↑ | STOI ↑ |" in table
    assert "Original audio (no codec)" in table
    with open(out / "results.csv") as f:
        assert [(r["system"], r["n_q"]) for r in csv.DictReader(f)] == [
            ("original", ""), ("tiny", "2"), ("tiny", "4")]
    payload = json.loads((out / "results.json").read_text())
    assert len(payload["utterances"]) == 2 * 3 and len(payload["summary"]) == 3
    for name in ("spectrograms.png", "codebook_usage.png", "metrics_vs_bitrate.png"):
        assert (out / name).stat().st_size > 10_000


def test_resume_skips_done_utterances(setup):
    out = setup["out"]
    again = run_evaluation([setup["system"]], setup["manifest"], out, n_qs=[2, 4],
                           judge=setup["judge"], progress=False, plots=False, log=lambda m: None)
    assert again["result"]["computed"] == 0 and again["result"]["reused"] == 6
    lines = (out / RESULTS_FILE).read_text().splitlines()
    # an interrupted run: the last record cut in half
    (out / RESULTS_FILE).write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:25])
    third = run_evaluation([setup["system"]], setup["manifest"], out, n_qs=[2, 4],
                           judge=setup["judge"], progress=False, plots=False, log=lambda m: None)
    assert third["result"]["computed"] == 1
    assert _rows(third)[("tiny", 4)]["wer"] == _rows(setup["first"])[("tiny", 4)]["wer"]
    # the cut line was ended before the new record: nothing is lost the next time
    fourth = run_evaluation([setup["system"]], setup["manifest"], out, n_qs=[2, 4],
                            judge=setup["judge"], progress=False, plots=False, html=False,
                            log=lambda m: None)
    assert fourth["result"]["computed"] == 0 and fourth["result"]["reused"] == 6


def test_unreadable_audio_is_skipped_and_counted(setup, tmp_path):
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"not audio")
    manifest = tmp_path / "m.tsv"
    manifest.write_text(setup["manifest"].read_text().splitlines()[0] + f"\n{bad}\tHELLO\n"
                        f"{tmp_path / 'gone.flac'}\tGONE\n")
    messages = []
    run = run_evaluation([setup["system"]], manifest, tmp_path / "out", n_qs=[2],
                         judge=setup["judge"], progress=False, plots=False, log=messages.append)
    skipped = run["result"]["skipped"]
    assert len(skipped) == 2 and "cannot read audio" in " ".join(skipped)
    assert "no such file" in " ".join(skipped)
    assert {r["utterances"] for r in run["rows"]} == {1}
    assert "Skipped 2 utterance(s)" in (tmp_path / "out" / "results.md").read_text()


def test_setup_errors(setup, tmp_path):
    with pytest.raises(ValueError, match="encodec package is not installed"):
        run_evaluation([], setup["manifest"], tmp_path, references=["encodec"])
    with pytest.raises(ValueError, match="n_q 5 is out of range"):
        run_evaluation([setup["system"]], setup["manifest"], tmp_path, n_qs=[5],
                       judge=setup["judge"], progress=False, log=lambda m: None)
    with pytest.raises(ValueError, match="visqol_mapper"):
        run_evaluation([setup["system"]], setup["manifest"], setup["out"], n_qs=[2],
                       judge=setup["judge"], visqol_mapper="polynomial", progress=False,
                       log=lambda m: None)


def _audio_sources(page):
    return re.findall(r'<audio controls preload="metadata" src="([^"]+)"', page)


def test_listening_report_is_written(setup):
    out = setup["out"]
    page = (out / REPORT_FILE).read_text()
    assert "<table class=\"sortable\" id=\"summary\">" in page
    assert "<table class=\"sortable\" id=\"utterances\">" in page
    # two utterances: each is in the panel, with the original and both n_q as players
    sources = _audio_sources(page)
    assert len(sources) == 2 * 3
    for utt_id in IDS:
        assert f'id="utt-{utt_id}"' in page
    for src in sources:
        assert src.startswith("report_audio/")
        audio, sr = load_audio(out / src)  # a FLAC the page can link
        assert sr == 16000 and len(audio) > 16000
    images = re.findall(r'<img class="spec"[^>]* src="([^"]+)"', page)
    assert len(images) == len(sources)
    for image in images:
        with Image.open(out / image) as png:  # 80 mel bins x 10 ms frames
            assert png.format == "PNG" and png.size[1] == 80 and png.size[0] > 100
    assert 'src="metrics_vs_bitrate.png"' in page
    assert "fingerprint" in page and "whisper" in page.lower()


def test_resumed_run_regenerates_the_report(setup):
    out = setup["out"]
    (out / REPORT_FILE).unlink()
    gone = showcase_path(out, "tiny", 2, IDS[1])
    gone.unlink()
    again = run_evaluation([setup["system"]], setup["manifest"], out, n_qs=[2, 4],
                           judge=setup["judge"], progress=False, plots=False, log=lambda m: None)
    assert again["result"]["computed"] == 0  # nothing scored again, the audio made again
    assert gone.is_file() and (out / REPORT_FILE).is_file()
    assert str(out / REPORT_FILE) in map(str, again["files"])
    # a chosen panel: only that utterance
    chosen = run_evaluation([setup["system"]], setup["manifest"], out, n_qs=[2, 4],
                            judge=setup["judge"], progress=False, plots=False,
                            log=lambda m: None, listen=[IDS[1]])
    page = (out / REPORT_FILE).read_text()
    assert len(_audio_sources(page)) == 3 and f'id="utt-{IDS[0]}"' not in page
    assert chosen["result"]["computed"] == 0
    with pytest.raises(ValueError, match="'nope' is not an utterance id"):
        run_evaluation([setup["system"]], setup["manifest"], out, n_qs=[2],
                       judge=setup["judge"], progress=False, log=lambda m: None,
                       listen=["nope"])
