"""The listening report's page builder (tests/test_browser_report.py opens it in Chromium)."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_dmcodec.asr import Transcriber
from keras_dmcodec.audio import load_audio, write_audio
from keras_dmcodec.evaluation.html_report import (
    RoundtripReport,
    marked_hypothesis,
    select_listening_set,
    write_listening_report,
)
from keras_dmcodec.teachers.transcripts import Transcript

SPEECH = Path(__file__).resolve().parents[2] / "tests" / "data" / "speech"


def _records(stois):
    return [{"system": "m", "n_q": 8, "id": f"u{i:02d}", "stoi": s} for i, s in enumerate(stois)]


def test_listening_set_takes_best_median_and_worst():
    records = _records(np.linspace(0.5, 0.95, 20))  # u19 best, u00 worst
    records += [{"system": "m", "n_q": 4, "id": "u99", "stoi": 1.0},  # another n_q: ignored
                {"system": "m", "n_q": 8, "id": "nan", "stoi": float("nan")}]
    chosen = select_listening_set(records, "m", 8, per_group=3)
    assert chosen == [("best", "u19"), ("best", "u18"), ("best", "u17"),
                      ("median", "u11"), ("median", "u10"), ("median", "u09"),
                      ("worst", "u00"), ("worst", "u01"), ("worst", "u02")]
    # fewer utterances than three groups: each appears once, in the first group that takes it
    few = select_listening_set(_records([0.7, 0.9, 0.8]), "m", 8, per_group=2)
    assert few == [("best", "u01"), ("best", "u02"), ("worst", "u00")]
    assert select_listening_set(records, "other", 8) == []


def test_word_errors_are_marked_and_text_is_escaped():
    marked = marked_hypothesis("The cat sat on the mat.", "the hat sat on mat")
    assert marked == ('the <span class="w-sub" title="said: cat">hat</span> sat on '
                      '<span class="w-del" title="missed">the</span> mat')
    assert marked_hypothesis("a cat", "a cat today") == (
        'a cat <span class="w-ins" title="inserted">today</span>')
    assert "nothing recognised" in marked_hypothesis("a b", "  ")
    assert marked_hypothesis("", "<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"  # no reference


def test_page_links_existing_files_and_escapes_text(tmp_path):
    audio_path = SPEECH / "101" / "1" / "101-1-0000.flac"
    panel = {"id": "101-1-0000", "group": "worst", "text": "a <script>alert(1)</script> b",
             "duration_s": 2.0, "entries": [
                 {"title": "Original", "audio": audio_path, "record": None},
                 {"title": "codec & co", "audio": tmp_path / "missing.flac",
                  "record": {"system": "c", "id": "101-1-0000", "stoi": 0.81, "wer": 0.5,
                             "text": "a b", "hypothesis": "a c"}}]}
    page_path = write_listening_report(tmp_path / "site" / "report.html", title="T <1>",
                                       settings={"model": "m", "empty": None}, panels=[panel])
    page = page_path.read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "<title>T &lt;1&gt;</title>" in page and "codec &amp; co" in page
    assert "(audio not kept)" in page  # the missing file gets no player
    (src,) = re.findall(r'<audio controls preload="metadata" src="([^"]+)"', page)
    assert (page_path.parent / src).resolve() == audio_path.resolve()  # relative link
    (image,) = re.findall(r'<img class="spec"[^>]* src="([^"]+)"', page)
    assert image.startswith("report_images/") and (page_path.parent / image).is_file()
    assert "STOI 0.810 · WER % 50.0" not in page and "WER % 50.0 · STOI 0.810" in page
    assert "<dt>empty</dt>" not in page
    assert page.rstrip().endswith("</html>")


class _Echo(Transcriber):
    """A judge that hears the original perfectly and the reconstruction with one error."""

    name = "echo"
    description = "echo judge"

    def recognize(self, audio, word_timestamps=False):
        text = "the quick brown fox" if np.abs(audio).max() > 0.2 else "the quick frown fox"
        return Transcript.from_text(text, source="echo")


def test_roundtrip_report(tmp_path):
    audio, sr = load_audio(SPEECH / "101" / "1" / "101-1-0000.flac")
    audio = audio / np.abs(audio).max() * 0.5
    decoded = 0.3 * audio  # quieter: the echo judge makes one error
    report = RoundtripReport(tmp_path / "rt" / "out.html", "codec", {"model": "m"},
                             judge=_Echo())
    scores = report.add("clip.flac", audio, decoded, sr, bitrate=4000, n_q=8)
    assert scores["stoi"] == pytest.approx(1.0, abs=1e-3)  # a scaled copy is as intelligible
    page = report.write().read_text()
    assert "the judge&#x27;s transcript of the original: the quick brown fox" in page
    assert '<span class="w-sub" title="said: brown">frown</span>' in page
    assert "codec (4.00 kbit/s)" in page and "echo judge" not in page  # settings are given
    for folder in ("original", "reconstruction"):
        assert (tmp_path / "rt" / "report_audio" / folder / "clip.flac").is_file()
    assert page.count("<tr><td") == 2  # the per-file table: original + reconstruction


def test_spectrograms_of_nested_ids_do_not_collide(tmp_path):
    # ids from a manifest can hold folders ("test/1010/3/1010-3-0000"): each system's audio
    # then ends in the same folder name, and each needs its own image
    audio, sr = load_audio(SPEECH / "101" / "1" / "101-1-0000.flac")
    site = tmp_path / "site"
    entries = []
    for system, gain in (("original", 1.0), ("codec_nq8", 0.01)):
        path = site / "report_audio" / system / "test" / "3" / "u-3-0.flac"
        path.parent.mkdir(parents=True)
        write_audio(path, gain * audio, sr)
        entries.append({"title": system, "audio": path, "record": None})
    page = write_listening_report(site / "report.html", title="t", settings={}, panels=[
        {"id": "test/3/u-3-0", "group": None, "text": None, "duration_s": 1.0,
         "entries": entries}]).read_text()
    images = re.findall(r'<img class="spec"[^>]* src="([^"]+)"', page)
    assert images == ["report_images/original/test/3/u-3-0.png",
                      "report_images/codec_nq8/test/3/u-3-0.png"]
    with Image.open(site / images[0]) as a, Image.open(site / images[1]) as b:
        assert np.asarray(a).mean() > np.asarray(b).mean()  # 40 dB quieter: darker
