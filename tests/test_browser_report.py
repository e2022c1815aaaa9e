"""The listening report in a real browser: headless Chromium (Debian's) driven by Selenium.

A small evaluation (a tiny codec, three utterances, the Whisper tiny.en judge) writes
``report.html``; Chromium opens it from the file system and the test checks what a
person would: no console errors, every player can decode its file, one plays, the
per-utterance table sorts, the page renders. The screenshot is kept as an artifact in
``$DMCODEC_TEST_ARTIFACTS`` (default ``outputs/test_artifacts/``).

Without Chromium the test is skipped, unless ``DMCODEC_REQUIRE_BROWSER=1`` (set by
``tools/run_tests.sh``, so ``make test`` and CI run it, after ``make install`` has
installed the ``chromium`` and ``chromium-driver`` packages).
"""

import os
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_dmcodec.asr import make_asr
from keras_dmcodec.evaluation.runner import run_evaluation
from keras_dmcodec.models.dmcodec import DMCodec

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / "tests" / "data" / "speech"
IDS = ["101-1-0000", "102-1-0000", "104-1-0000"]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# As root, in a sandbox, with no network: the flags the environment notes ask for.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--mute-audio",
                  "--window-size=1400,1800")


def _browser_or_skip():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        why = f"no browser to test with: {', '.join(missing)} missing (make install adds them)"
        if os.environ.get("DMCODEC_REQUIRE_BROWSER") == "1":
            pytest.fail(why + "; DMCODEC_REQUIRE_BROWSER=1 asks for the browser test")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={_profile_dir()}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _profile_dir():
    import tempfile

    return tempfile.mkdtemp(prefix="dmcodec-chromium-")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    model = DMCodec(n_filters=4, dimension=16, semantic_dimension=8, n_q=2, codebook_size=16,
                    lstm_layers=1, kmeans_init=False, seed=0)
    model.build((None, None))
    preset = model.save_to_preset(root / "tiny_codec")
    lines = []
    for utt_id in IDS:
        speaker, chapter, _ = utt_id.split("-")
        folder = SPEECH / speaker / chapter
        texts = dict(line.split(" ", 1) for line in
                     (folder / f"{speaker}-{chapter}.trans.txt").read_text().splitlines())
        lines.append(f"{folder / utt_id}.flac\t{texts[utt_id]}")
    manifest = root / "manifest.tsv"
    manifest.write_text("\n".join(lines) + "\n")
    out = root / "eval"
    run_evaluation([str(preset)], manifest, out, n_qs=[1, 2], judge=make_asr(),
                   progress=False, log=lambda m: None, listen_per_group=1)
    return out / "report.html"


def _column(driver, table_id, header):
    return driver.execute_script("""
        const table = document.getElementById(arguments[0]);
        const col = [...table.tHead.rows[0].cells].findIndex(c => c.textContent === arguments[1]);
        return [...table.tBodies[0].rows].map(r => r.cells[col].getAttribute('data-value'));
    """, table_id, header)


def test_report_in_chromium(report):
    from selenium.webdriver.common.by import By

    driver = _browser_or_skip()
    try:
        driver.get(report.resolve().as_uri())
        assert driver.title.startswith("Listening report: tiny_codec")

        # every player decodes its file: a finite duration > 0 (metadata loaded)
        deadline = time.monotonic() + 20
        while True:
            durations = driver.execute_script(
                "return [...document.querySelectorAll('audio')].map(a => a.duration)")
            if durations and all(d is not None and np.isfinite(d) and d > 0 for d in durations):
                break
            assert time.monotonic() < deadline, f"players without a duration: {durations}"
            time.sleep(0.2)
        # three utterances, one per group: original + n_q 1 and 2 for each
        assert len(durations) == 3 * 3
        assert all(1.0 < d < 10.0 for d in durations)

        # one player plays (muted) for 0.2 s: play() resolves and the time advances. A click
        # first, as a person's would be: Chromium lets a page play only after one.
        driver.find_element(By.TAG_NAME, "h1").click()
        # (The time is polled for up to 5 s after 0.2 s of play: on a loaded machine the
        # media clock can start late.)
        played = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const audio = document.querySelector('audio');
            audio.muted = true;
            audio.play().then(() => {
                const start = performance.now();
                const poll = () => {
                    const waited = performance.now() - start;
                    if ((waited >= 200 && audio.currentTime > 0.05) || waited > 5000) {
                        done({ok: true, t: audio.currentTime, paused: audio.paused});
                    } else { setTimeout(poll, 50); }
                };
                setTimeout(poll, 200);
            }, err => done({ok: false, error: String(err)}));
        """)
        assert played["ok"], played
        assert played["t"] > 0.05 and not played["paused"], played

        # the per-utterance table sorts by a click on a header, then the other way
        header = driver.find_element(By.XPATH, "//table[@id='utterances']//th[text()='STOI']")
        before = [float(v) for v in _column(driver, "utterances", "STOI")]
        assert before != sorted(before)  # ordered by utterance first, so the click matters
        header.click()
        assert header.get_attribute("aria-sort") == "ascending"
        assert [float(v) for v in _column(driver, "utterances", "STOI")] == sorted(before)
        header.click()
        assert header.get_attribute("aria-sort") == "descending"
        assert [float(v) for v in _column(driver, "utterances", "STOI")] == sorted(
            before, reverse=True)

        # the page renders: the screenshot is not blank, and it is kept
        artifacts = Path(os.environ.get("DMCODEC_TEST_ARTIFACTS", ROOT / "outputs"
                                        / "test_artifacts"))
        artifacts.mkdir(parents=True, exist_ok=True)
        shot = artifacts / f"report_screenshot_{keras.backend.backend()}.png"
        assert driver.save_screenshot(str(shot))
        from PIL import Image

        with Image.open(shot) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
        assert pixels.shape[0] > 500 and pixels.shape[1] > 500
        assert pixels.std() > 20  # text, tables, spectrograms: far from one flat colour
        assert len(np.unique(pixels.reshape(-1, 3).astype(np.uint8), axis=0)) > 200

        # no console errors (a missing file, a script error, a failed decode)
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()
