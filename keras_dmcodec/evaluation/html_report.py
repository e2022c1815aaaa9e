"""The listening report: one HTML page to hear and see what a codec does.

``write_listening_report`` writes a page with no network, no build step and no
framework: plain HTML, one stylesheet and ~60 lines of script, opened straight
from the file system (``file://``). Audio stays beside it (FLAC in
``report_audio/``, which Chromium and Firefox decode), spectrograms are small PNGs
in ``report_images/``. The page holds:

- **Summary**: the results table in the paper's layout (one row per system and
  ``n_q``), the metric-vs-bitrate and codebook figures, and the run's settings;
- **Listening panel**: for each chosen utterance, the original and every
  reconstruction as audio players side by side, each with its spectrogram (one
  colour scale per utterance, set by the original), its metrics and what the ASR
  judge heard, with word errors marked against the transcript;
- **All utterances**: a sortable, filterable table of every per-utterance result.

``write_evaluation_report`` builds it from an evaluation folder's records (the
runner calls it; a resumed run regenerates it from the cached results), and
``RoundtripReport`` builds the same panel for single files (``dmcodec roundtrip
--html``, ``dmcodec demo``).
"""

import datetime
import html
import math
import os
from pathlib import Path
from urllib.parse import quote

import numpy as np

from keras_dmcodec.asr import align_words, error_rates
from keras_dmcodec.audio import load_audio, write_audio
from keras_dmcodec.evaluation import metrics
from keras_dmcodec.evaluation.layout import AUDIO_DIR, IMAGES_DIR, REPORT_FILE, showcase_path
from keras_dmcodec.evaluation.plots import log_mel, short_label, write_spectrogram_image
from keras_dmcodec.evaluation.report import COLUMNS, format_cell
from keras_dmcodec.utils.files import atomic_output

GROUPS = ("best", "median", "worst")

# (record key, header, format, higher is better)
_UTTERANCE_COLUMNS = [
    ("wer", "WER %", "{:.1f}", False),
    ("stoi", "STOI", "{:.3f}", True),
    ("visqol", "ViSQOL", "{:.2f}", True),
    ("pesq", "PESQ-WB", "{:.2f}", True),
    ("mel_distance", "Mel dist.", "{:.3f}", False),
    ("si_snr", "SI-SNR dB", "{:.2f}", True),
]

_STYLE = """
:root { --fg: #1d1d1f; --muted: #5f6368; --line: #d9dce1; --bg2: #f6f7f9; --sub: #c5221f;
        --ins: #b06000; --del: #7b7b7b; --accent: #1a5fb4; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
       margin: 0 auto; padding: 1.2em 1.6em 3em; max-width: 1500px; background: #fff; }
h1 { font-size: 1.55em; margin: 0.2em 0 0.1em; }
h2 { font-size: 1.25em; margin: 1.8em 0 0.5em; border-bottom: 2px solid var(--line);
     padding-bottom: 0.2em; }
h3 { font-size: 1.05em; margin: 0 0 0.3em; }
.muted { color: var(--muted); }
nav a { margin-right: 1.2em; color: var(--accent); }
table { border-collapse: collapse; font-size: 0.92em; }
th, td { padding: 0.3em 0.6em; border-bottom: 1px solid var(--line); text-align: right;
         vertical-align: top; }
th { background: var(--bg2); position: sticky; top: 0; }
td.text, th.text { text-align: left; }
table.sortable th { cursor: pointer; user-select: none; white-space: nowrap; }
table.sortable th::after { content: " \\2195"; color: #aaa; }
table.sortable th[aria-sort="ascending"]::after { content: " \\2191"; color: var(--fg); }
table.sortable th[aria-sort="descending"]::after { content: " \\2193"; color: var(--fg); }
dl.settings { display: grid; grid-template-columns: max-content 1fr; gap: 0.15em 1em;
              font-size: 0.92em; }
dl.settings dt { color: var(--muted); }
dl.settings dd { margin: 0; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; margin: 1em 0; }
.figures figure { margin: 0; flex: 1 1 560px; max-width: 760px; }
.figures img { width: 100%; border: 1px solid var(--line); }
.utterance { border: 1px solid var(--line); border-radius: 8px; padding: 0.8em 1em;
             margin: 0 0 1em; background: #fff; }
.utterance .ref { margin: 0.2em 0 0.6em; }
.tag { display: inline-block; font-size: 0.78em; padding: 0.05em 0.5em; border-radius: 1em;
       background: var(--bg2); border: 1px solid var(--line); margin-left: 0.4em; }
.tag.best { background: #e6f4ea; } .tag.worst { background: #fce8e6; }
.entries { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr));
           gap: 0.8em; }
.entry { background: var(--bg2); border-radius: 6px; padding: 0.6em; min-width: 0; }
.entry audio { width: 100%; height: 36px; }
.entry img.spec { width: 100%; height: 110px; display: block; image-rendering: pixelated;
                  border-radius: 3px; margin: 0.3em 0; }
.scores { font-size: 0.85em; color: var(--muted); }
.heard { font-size: 0.92em; margin-top: 0.3em; }
.w-sub { color: var(--sub); font-weight: 600; text-decoration: underline wavy; }
.w-ins { color: var(--ins); font-style: italic; text-decoration: underline dotted; }
.w-del { color: var(--del); text-decoration: line-through; }
.legend span { margin-right: 1em; }
input.filter { font: inherit; padding: 0.25em 0.5em; width: 22em; margin: 0.3em 0 0.6em; }
.note { background: #fff8e1; border-left: 4px solid #f9ab00; padding: 0.4em 0.8em; }
"""

_SCRIPT = """
(function () {
  'use strict';
  function cellKey(row, col) {
    var cell = row.cells[col];
    var raw = cell.hasAttribute('data-value') ? cell.getAttribute('data-value')
                                               : cell.textContent.trim();
    var num = parseFloat(raw);
    return isNaN(num) ? {n: false, v: raw.toLowerCase()} : {n: true, v: num};
  }
  function sortTable(table, col, th) {
    var ascending = th.getAttribute('aria-sort') !== 'ascending';
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) {
      c.removeAttribute('aria-sort');
    });
    th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellKey(a, col), y = cellKey(b, col);
      if (x.n !== y.n) { return x.n ? -1 : 1; }  // values before blanks, either way
      var order = x.v < y.v ? -1 : (x.v > y.v ? 1 : 0);
      return ascending ? order : -order;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.tabIndex = 0;
      th.addEventListener('click', function () { sortTable(table, col, th); });
      th.addEventListener('keydown', function (e) {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sortTable(table, col, th); }
      });
    });
  });
  document.querySelectorAll('input.filter').forEach(function (input) {
    var table = document.getElementById(input.getAttribute('data-table'));
    input.addEventListener('input', function () {
      var needle = input.value.toLowerCase();
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        row.hidden = needle !== '' && row.textContent.toLowerCase().indexOf(needle) < 0;
      });
    });
  });
  // One player at a time: starting one pauses the others.
  document.addEventListener('play', function (e) {
    document.querySelectorAll('audio').forEach(function (a) {
      if (a !== e.target) { a.pause(); }
    });
  }, true);
})();
"""


def _esc(value):
    return html.escape(str(value), quote=True)


def _href(path, base):
    return quote(Path(os.path.relpath(path, base)).as_posix())


def _number(value):
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def select_listening_set(records, system, n_q, per_group=5):
    """The utterances a listening panel shows: best, median and worst by STOI.

    Args:
        records: per-utterance records (``runner.evaluate``'s ``records``).
        system: key of the system whose STOI ranks the utterances.
        n_q: its codebook count.
        per_group: utterances per group (5).

    Returns:
        list of ``(group, utterance id)`` (groups ``"best"``, ``"median"``, ``"worst"``);
        an utterance appears once, in the first group that takes it, so a small
        corpus gives fewer than ``3 * per_group``.
    """
    scored = sorted(((r["stoi"], r["id"]) for r in records
                     if r["system"] == system and r["n_q"] == n_q and _number(r.get("stoi"))),
                    key=lambda x: (-x[0], x[1]))
    ids = [utt for _, utt in scored]
    middle = max(0, (len(ids) - per_group) // 2)
    picks = [("best", ids[:per_group]), ("median", ids[middle:middle + per_group]),
             ("worst", ids[::-1][:per_group])]
    chosen, seen = [], set()
    for group, group_ids in picks:
        for utt in group_ids:
            if utt not in seen:
                seen.add(utt)
                chosen.append((group, utt))
    return chosen


def marked_hypothesis(reference, hypothesis):
    """HTML of ``hypothesis`` with its word errors against ``reference`` marked.

    Substituted words are red (the reference word in the tooltip), inserted words
    orange and italic, deleted reference words grey and struck through; the
    alignment is the one WER counts (``asr.align_words``).
    """
    if not (hypothesis or "").strip():
        return '<span class="muted">(nothing recognised)</span>'
    if not (reference or "").strip():
        return _esc(hypothesis)
    words = []
    for op, ref_word, hyp_word in align_words(reference, hypothesis):
        if op == "equal":
            words.append(_esc(hyp_word))
        elif op == "substitute":
            words.append(f'<span class="w-sub" title="said: {_esc(ref_word)}">'
                         f'{_esc(hyp_word)}</span>')
        elif op == "insert":
            words.append(f'<span class="w-ins" title="inserted">{_esc(hyp_word)}</span>')
        else:
            words.append(f'<span class="w-del" title="missed">{_esc(ref_word)}</span>')
    return " ".join(words)


def _settings_html(settings):
    items = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in settings.items()
                    if v not in (None, ""))
    return f'<dl class="settings">{items}</dl>'


def _summary_html(rows):
    head = "".join(f'<th class="{"text" if k == "label" else ""}">{_esc(h)}</th>'
                   for k, h, _ in COLUMNS)
    body = []
    for row in rows:
        cells = []
        for key, _, fmt in COLUMNS:
            text = format_cell(row, key, fmt)
            value = row.get(key)
            data = f' data-value="{value:.6g}"' if _number(value) else ""
            cls = ' class="text"' if key == "label" else ""
            cells.append(f"<td{cls}{data}>{_esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="sortable" id="summary"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _scores_line(record):
    if record is None:
        return ""
    parts = []
    for key, header, fmt, _ in _UTTERANCE_COLUMNS:
        value = record.get(key)
        if key == "wer" and _number(value):
            value = 100 * value
        if _number(value) and not (key == "si_snr" and record.get("system") == "original"):
            parts.append(f"{header} {fmt.format(value)}")
    return " · ".join(parts)


def _image_path(audio_path, html_dir, panel_id, index):
    """Where an entry's spectrogram goes: the audio's path below ``report_audio/``, mirrored
    below ``report_images/`` (unique as the audio files are, whatever the utterance ids
    hold); audio kept elsewhere is named by its panel and position."""
    try:
        relative = Path(audio_path).resolve().relative_to(
            (Path(html_dir) / AUDIO_DIR).resolve())
    except ValueError:
        relative = Path("other") / panel_id / f"{index}.flac"
    return Path(html_dir) / IMAGES_DIR / relative.with_suffix(".png")


def _spectrograms(panel, html_dir):
    """Writes one PNG per entry that has audio, on the original's colour scale."""
    mels = []
    for entry in panel["entries"]:
        audio_path = entry.get("audio")
        if audio_path is None or not Path(audio_path).is_file():
            mels.append(None)
            continue
        audio, sr = load_audio(audio_path)
        mels.append(log_mel(audio, sr))
    reference = next((m for m in mels if m is not None), None)
    if reference is None:
        return [None] * len(mels)
    vmax = float(reference.max())
    paths = []
    for index, (entry, mel) in enumerate(zip(panel["entries"], mels, strict=True)):
        if mel is None:
            paths.append(None)
            continue
        path = _image_path(entry["audio"], html_dir, panel["id"], index)
        path.parent.mkdir(parents=True, exist_ok=True)
        paths.append(write_spectrogram_image(path, mel, vmax - 80.0, vmax))
    return paths


def _panel_html(panel, html_dir):
    images = _spectrograms(panel, html_dir)
    group = panel.get("group")
    tag = f'<span class="tag {_esc(group)}">{_esc(group)} STOI</span>' if group else ""
    seconds = panel.get("duration_s")
    length = f'<span class="muted"> · {seconds:.2f} s</span>' if _number(seconds) else ""
    text = panel.get("text")
    ref = (f'<p class="ref"><b>Transcript:</b> {_esc(text)}</p>' if text
           else '<p class="ref muted">No transcript given.</p>')
    cards = []
    for entry, image in zip(panel["entries"], images, strict=True):
        record = entry.get("record")
        audio = entry.get("audio")
        if audio is not None and Path(audio).is_file():
            player = (f'<audio controls preload="metadata" '
                      f'src="{_esc(_href(audio, html_dir))}"></audio>')
        else:
            player = '<p class="muted">(audio not kept)</p>'
        spec = (f'<img class="spec" alt="log-mel spectrogram, {_esc(entry["title"])}" '
                f'src="{_esc(_href(image, html_dir))}">' if image is not None else "")
        heard = ""
        if record is not None and "hypothesis" in record:
            heard = (f'<div class="heard"><span class="muted">ASR heard:</span> '
                     f'{marked_hypothesis(record.get("text") or text, record["hypothesis"])}'
                     "</div>")
        cards.append(f'<div class="entry"><h3>{_esc(entry["title"])}</h3>{player}{spec}'
                     f'<div class="scores">{_esc(_scores_line(record))}</div>{heard}</div>')
    anchor = _esc(panel["id"])
    return (f'<section class="utterance" id="utt-{anchor}"><h3>{_esc(panel["id"])}{length}'
            f'{tag}</h3>{ref}<div class="entries">{"".join(cards)}</div></section>')


def _utterance_table_html(records, labels, listened):
    head = ['<th class="text">Utterance</th>', '<th class="text">System</th>', "<th>n_q</th>",
            "<th>Seconds</th>"]
    head += [f"<th>{_esc(h)}</th>" for _, h, _, _ in _UTTERANCE_COLUMNS]
    head += ['<th class="text">ASR heard</th>']
    body = []
    for r in sorted(records, key=lambda r: (r["id"], r["system"] != "original",
                                            r["system"], r["n_q"] or 0)):
        utt = _esc(r["id"])
        name = (f'<a href="#utt-{utt}">{utt}</a>' if r["id"] in listened else utt)
        cells = [f'<td class="text" data-value="{utt}">{name}</td>',
                 f'<td class="text">{_esc(short_label(labels.get(r["system"], r["system"])))}'
                 "</td>",
                 f'<td data-value="{r["n_q"] or ""}">{r["n_q"] if r["n_q"] else "–"}</td>',
                 f'<td data-value="{r["duration_s"]:.3f}">{r["duration_s"]:.2f}</td>']
        for key, _, fmt, _ in _UTTERANCE_COLUMNS:
            value = r.get(key)
            if key == "wer" and _number(value):
                value = 100 * value
            if _number(value):
                cells.append(f'<td data-value="{value:.6g}">{_esc(fmt.format(value))}</td>')
            else:
                cells.append('<td data-value="">–</td>')
        cells.append(f'<td class="text">{_esc(r.get("hypothesis", ""))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<input class="filter" type="search" data-table="utterances" '
            f'placeholder="filter rows (utterance, system, words)" aria-label="filter rows">'
            f'<table class="sortable" id="utterances"><thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def write_listening_report(path, *, title, settings, panels, summary_rows=None, figures=(),
                           records=None, labels=None, notes=()):
    """Writes the listening report page; returns its path.

    Args:
        path: the HTML file to write (its folder holds ``report_audio/`` and
            ``report_images/``; spectrograms are written there).
        title: page title.
        settings: ordered dict of setting name -> value (model, fingerprint, judge, ...).
        panels: list of dicts, one per utterance: ``id``, ``group`` (or None),
            ``text`` (transcript or None), ``duration_s``, ``entries`` (list of dicts:
            ``title``, ``audio`` (path or None), ``record`` (per-utterance result or None)).
        summary_rows: ``report.summarize`` rows for the summary table, or None.
        figures: paths of PNG figures to show under the summary.
        records: per-utterance records for the sortable table, or None.
        labels: system key -> label for that table.
        notes: lines shown in a note box under the title.
    """
    path = Path(path)
    base = path.parent
    base.mkdir(parents=True, exist_ok=True)
    listened = {p["id"] for p in panels}
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # file:// pages would otherwise ask for a favicon
        f"<title>{_esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        f'<nav><a href="#summary-section">{"Summary" if summary_rows else "Settings"}</a>'
        '<a href="#listening">Listening panel</a>'
        + ('<a href="#all">All utterances</a>' if records else "") + "</nav>",
    ]
    for note in notes:
        parts.append(f'<p class="note">{_esc(note)}</p>')
    parts.append(f'<h2 id="summary-section">{"Summary" if summary_rows else "Settings"}</h2>')
    if summary_rows:
        parts.append(_summary_html(summary_rows))
        parts.append('<p class="muted">WER and WIL over all utterances (corpus level); the '
                     "other metrics are means over utterances. Click a header to sort.</p>")
    shown = [f'<figure><img alt="{_esc(Path(f).stem.replace("_", " "))}" '
             f'src="{_esc(_href(f, base))}"></figure>'
             for f in figures if f is not None and Path(f).is_file()]
    if shown:
        parts.append(f'<div class="figures">{"".join(shown)}</div>')
    parts.append(("<h3>Settings</h3>" if summary_rows else "") + _settings_html(settings))
    parts.append('<h2 id="listening">Listening panel</h2>')
    parts.append('<p class="legend muted">Word errors against the transcript: '
                 '<span class="w-sub">substituted</span> <span class="w-ins">inserted</span> '
                 '<span class="w-del">missed</span> (hover a word for more).<br>Spectrograms: '
                 "log-mel, 0 to 8 kHz, one colour scale per utterance (80 dB below the "
                 "original's peak).</p>")
    if not panels:
        parts.append('<p class="muted">No utterances to listen to.</p>')
    parts += [_panel_html(panel, base) for panel in panels]
    if records:
        parts.append('<h2 id="all">All utterances</h2>')
        parts.append(_utterance_table_html(records, labels or {}, listened))
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    with atomic_output(path) as tmp:
        Path(tmp).write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def _today():
    return datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def evaluation_panels(out_dir, records, systems, listening):
    """Panels for ``write_listening_report`` from an evaluation folder's records.

    Args:
        out_dir: the evaluation folder (its ``report_audio/`` holds the kept audio).
        records: per-utterance records.
        systems: ``[(system key, label, n_q)]`` in row order (original first).
        listening: ``[(group, utterance id)]`` (``select_listening_set``).
    """
    by_key = {(r["system"], r["n_q"], r["id"]): r for r in records}
    panels = []
    for group, utt in listening:
        entries = []
        for key, label, n_q in systems:
            record = by_key.get((key, n_q, utt))
            if record is None:
                continue
            title = ("Original" if key == "original"
                     else f"{short_label(label)}, n_q={n_q} ({record['bitrate'] / 1000:.2f} "
                     "kbit/s)")
            entries.append({"title": title, "audio": showcase_path(out_dir, key, n_q, utt),
                            "record": record})
        if entries:
            first = entries[0]["record"]
            panels.append({"id": utt, "group": group, "text": first.get("text"),
                           "duration_s": first.get("duration_s"), "entries": entries})
    return panels


def write_evaluation_report(out_dir, rows, records, systems, listening, settings, notes=()):
    """``report.html`` of an evaluation folder (see ``write_listening_report``)."""
    out_dir = Path(out_dir)
    labels = {key: label for key, label, _ in systems}
    names = ", ".join(short_label(label) for key, label in labels.items() if key != "original")
    figures = [out_dir / n for n in ("metrics_vs_bitrate.png", "codebook_usage.png")]
    return write_listening_report(
        out_dir / REPORT_FILE, title=f"Listening report: {names or 'original audio'}",
        settings=settings, panels=evaluation_panels(out_dir, records, systems, listening),
        summary_rows=rows, figures=figures, records=records, labels=labels, notes=notes)


class RoundtripReport:
    """Builds the listening report of single files, one panel each (``dmcodec roundtrip --html``).

    ``add`` writes the original and the reconstruction as FLAC into ``report_audio/``
    beside the page, scores the reconstruction (STOI, ViSQOL, PESQ-WB, mel distance,
    SI-SNR) and, when a judge is given, transcribes both; ``write`` writes the page.
    Only the scores stay in memory. Without a transcript, the judge's transcript of
    the original stands in as the reference for marking the reconstruction's errors.

    Args:
        path: the HTML file to write.
        model_label: the model's name for titles.
        settings: ordered dict of settings shown on the page.
        judge: a ``keras_dmcodec.asr.Transcriber`` or None (no transcripts).
        visqol: a ``metrics.ViSQOLSpeech`` or None (a new one).

    Example:
    >>> report = RoundtripReport("out/report.html", "dmcodec_small", {"model": "..."})
    ... # doctest: +SKIP
    >>> report.add("clip", audio, decoded, 16000, text="the words")  # doctest: +SKIP
    >>> report.write()  # doctest: +SKIP
    """

    def __init__(self, path, model_label, settings, judge=None, visqol=None):
        self.path = Path(path)
        self.model_label = model_label
        self.settings = dict(settings)
        self.judge = judge
        self.visqol = visqol
        self.panels = []
        self.records = []

    def add(self, name, audio, decoded, sample_rate, text=None, bitrate=None, n_q=None):
        """Adds one file's panel; returns the reconstruction's scores (dict).

        Args:
            name: the file's name (its stem names the audio files and the panel).
            audio: float ``[samples]``, the original.
            decoded: float ``[samples]``, the reconstruction.
            sample_rate: int.
            text: transcript, or None.
            bitrate: the codec's bit/s, for the title.
            n_q: codebooks used, for the table.
        """
        audio = np.asarray(audio, np.float32)
        n = min(len(audio), len(decoded))
        audio, decoded = audio[:n], np.asarray(decoded, np.float32)[:n]
        stem = Path(name).stem
        folder = self.path.parent / AUDIO_DIR
        original_path = write_audio(folder / "original" / f"{stem}.flac", audio, sample_rate,
                                    overwrite=True)
        decoded_path = write_audio(folder / "reconstruction" / f"{stem}.flac", decoded,
                                   sample_rate, overwrite=True)
        if self.visqol is None:
            self.visqol = metrics.ViSQOLSpeech()
        scores = metrics.reconstruction_scores(audio, decoded, sample_rate, self.visqol)
        seconds = n / sample_rate
        original = {"system": "original", "id": stem, "n_q": None, "duration_s": seconds}
        rebuilt = {"system": "reconstruction", "id": stem, "n_q": n_q, "duration_s": seconds,
                   **scores}
        if self.judge is not None:
            original["hypothesis"] = self.judge.transcribe(audio, sample_rate).text
            rebuilt["hypothesis"] = self.judge.transcribe(decoded, sample_rate).text
            reference = text or original["hypothesis"]
            if reference.strip():
                for record in (original, rebuilt):
                    record["text"] = reference
                    record["wer"] = error_rates([reference], [record["hypothesis"]])["wer"]
        kbps = f" ({bitrate / 1000:.2f} kbit/s)" if bitrate else ""
        self.panels.append({
            "id": stem, "group": None, "duration_s": seconds,
            "text": text or (f"(none given; the judge's transcript of the original: "
                             f"{original['hypothesis']})" if self.judge is not None else None),
            "entries": [{"title": "Original", "audio": original_path, "record": original},
                        {"title": f"{self.model_label}{kbps}", "audio": decoded_path,
                         "record": rebuilt}]})
        self.records += [original, rebuilt]
        return scores

    def write(self):
        """Writes the page (``write_listening_report``); returns its path."""
        settings = {**self.settings, "generated": _today()}
        return write_listening_report(self.path, title=f"Listening report: {self.model_label}",
                                      settings=settings, panels=self.panels,
                                      records=self.records,
                                      labels={"reconstruction": self.model_label})


def evaluation_settings(run, data, utterances, seconds, models):
    """The settings block of an evaluation report, from ``run.json`` and the corpus."""
    fingerprints = run.get("systems", {})
    settings = {}
    for key, label in run.get("labels", {}).items():
        if key != "original" and key in models:
            settings[f"model {key}"] = f"{label} (fingerprint {fingerprints.get(key)})"
    settings.update({
        "ASR judge": run.get("judge_description") or run.get("judge"),
        "ViSQOL mapping": run.get("visqol_mapper"),
        "data": f"{data} ({utterances} utterances, {seconds / 3600:.3f} h)",
        "generated": _today(),
    })
    return settings

