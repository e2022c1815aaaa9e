"""Evaluates codecs over a corpus: one utterance at a time, resumable, with a progress bar.

For every utterance the audio is read once; each system (and each requested
``n_q``) encodes and decodes it; the reconstruction is scored against the
original (STOI, ViSQOL speech mode, wideband PESQ, mel distance, SI-SNR) and
transcribed by the ASR judge; the original itself is transcribed too (the
``original`` row: the judge's own error rate). One JSON line per (system, n_q,
utterance) is appended to ``results.jsonl`` in the output folder and flushed, so
an interrupted run resumes where it stopped; ``run.json`` records the judge,
ViSQOL mapper and each system's weight fingerprint, and a re-run with a
different setup in the same folder is refused rather than mixed.
Memory stays bounded: only the current utterance and its reconstructions are held.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np

from keras_dmcodec.asr import error_rates, make_asr
from keras_dmcodec.audio import AudioError, load_audio, write_audio
from keras_dmcodec.corpus import list_corpus
from keras_dmcodec.evaluation import metrics
from keras_dmcodec.evaluation.html_report import (
    evaluation_settings,
    select_listening_set,
    write_evaluation_report,
)
from keras_dmcodec.evaluation.layout import RESULTS_FILE, RUN_FILE, showcase_path
from keras_dmcodec.evaluation.plots import write_plots
from keras_dmcodec.evaluation.report import write_reports
from keras_dmcodec.evaluation.systems import (
    CodecSystem,
    OriginalAudio,
    SpeechTokenizerReference,
    load_codec_system,
)
from keras_dmcodec.utils.files import atomic_output


def _record_key(record):
    return (record["system"], record["n_q"], record["id"])


def load_records(out_dir):
    """Per-utterance records cached in ``out_dir`` (a truncated last line is ignored)."""
    path = Path(out_dir) / RESULTS_FILE
    records = {}
    if not path.is_file():
        return records
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
            records[_record_key(record)] = record
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut short by an interrupted run: recomputed
    return records


def _check_run(out_dir, run):
    path = Path(out_dir) / RUN_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = {}
        for field in ("judge", "visqol_mapper"):
            if old.get(field, run[field]) != run[field]:
                raise ValueError(
                    f"{out_dir}: holds results with {field} {old.get(field)!r}, not "
                    f"{run[field]!r}; use another output folder")
        for key, fingerprint in run["systems"].items():
            previous = old.get("systems", {}).get(key)
            if previous is not None and previous != fingerprint:
                raise ValueError(
                    f"{out_dir}: holds results of a different '{key}' model (weights changed); "
                    "use another output folder")
        run = {**old, **run, "systems": {**old.get("systems", {}), **run["systems"]},
               "labels": {**old.get("labels", {}), **run["labels"]}}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(run, indent=2) + "\n")


def _sparse_counts(histograms):
    return [[[int(c), int(n)] for c in np.flatnonzero(row) for n in (row[c],)]
            for row in histograms]


def evaluate(systems, utterances, out_dir, n_qs=None, judge=None, visqol_mapper="lattice",
             showcase=1, progress=True, log=None, keep_audio_ids=()):
    """Runs the evaluation and returns the list of per-utterance records.

    Args:
        systems: ``CodecSystem`` instances (``OriginalAudio`` is added first).
        utterances: ``keras_dmcodec.corpus.Utterance`` list, each with a transcript.
        out_dir: output folder (``results.jsonl``, ``run.json``, ``audio/``).
        n_qs: list of codebook counts, or None for each system's maximum. Counts
            above a system's maximum are an error.
        judge: a ``keras_dmcodec.asr.Transcriber`` or ASR spec (default ``whisper``:
            Whisper tiny.en).
        visqol_mapper: ``"lattice"`` (ViSQOL's default) or ``"polynomial"``.
        showcase: number of utterances (in corpus order) whose original and
            reconstructed audio are kept in ``report_audio/`` (the spectrogram plot).
        keep_audio_ids: ids of further utterances whose audio is kept (the listening
            report's); for utterances already scored, only the missing audio is made.
        progress: show a progress bar on stderr.
        log: callable for one-line messages (default: through the progress bar).

    Returns:
        dict with ``records`` (list of dicts), ``skipped`` (list of messages) and ``run``.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    original = OriginalAudio(systems[0].sample_rate if systems else 16000)
    systems = [original] + [s for s in systems if not isinstance(s, OriginalAudio)]
    keys = [s.key for s in systems]
    if len(set(keys)) != len(keys):
        raise ValueError(f"two systems share a name: {keys}; a system is named after its "
                         "preset or folder, so give each --model a folder of its own name")
    plan = []
    for system in systems:
        if not system.has_codes:
            plan.append((system, None))
            continue
        wanted = [system.n_q_max] if not n_qs else sorted(set(int(n) for n in n_qs))
        for n_q in wanted:
            if not 1 <= n_q <= system.n_q_max:
                raise ValueError(f"n_q {n_q} is out of range for {system.key} "
                                 f"(1..{system.n_q_max})")
            plan.append((system, n_q))

    judge = make_asr(judge)
    visqol = metrics.ViSQOLSpeech(visqol_mapper)
    _check_run(out_dir, {
        "judge": judge.name, "judge_description": judge.description,
        "visqol_mapper": visqol_mapper,
        "systems": {s.key: s.fingerprint for s in systems},
        "labels": {s.key: s.label for s in systems},
    })
    records = load_records(out_dir)
    done_before = sum(1 for k in records if k[0] in keys)
    bar = tqdm(utterances, desc="evaluate", unit="utt", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    say = log or (lambda message: bar.write(message, file=sys.stderr))
    if done_before:
        say(f"resuming: {done_before} cached results in {out_dir / RESULTS_FILE} are reused")
    skipped, computed = [], 0
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / RESULTS_FILE
    if results_path.is_file() and results_path.stat().st_size:
        with open(results_path, "rb+") as results:  # a line cut short by an interrupted run:
            results.seek(-1, os.SEEK_END)           # end it, or the next record joins it
            if results.read(1) != b"\n":
                results.write(b"\n")
    with open(results_path, "a") as results:
        for index, utt in enumerate(bar):
            todo = [(s, n) for s, n in plan if (s.key, n, utt.id) not in records]
            keep_audio = index < showcase or utt.id in keep_audio_ids
            if keep_audio:
                todo += [(s, n) for s, n in plan if (s, n) not in todo
                         and not showcase_path(out_dir, s.key, n, utt.id).is_file()]
            if not todo:
                continue
            try:
                audio, sr = load_audio(utt.path, sample_rate=original.sample_rate)
            except AudioError as err:
                skipped.append(f"{utt.id}: {err} -- skipped")
                say(f"skipped {utt.id}: {err}")
                continue
            for system, n_q in todo:
                if system.sample_rate != sr:
                    raise ValueError(f"{system.key} runs at {system.sample_rate} Hz but the "
                                     f"evaluation rate is {sr} Hz")
                codes, audio_hat = system.reconstruct(audio, n_q)
                if keep_audio:
                    path = showcase_path(out_dir, system.key, n_q, utt.id)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    write_audio(path, audio_hat, sr, overwrite=True)
                if (system.key, n_q, utt.id) in records:
                    continue
                hypothesis = judge.transcribe(audio_hat, sr).text
                rates = error_rates([utt.text], [hypothesis])
                record = {
                    "system": system.key, "label": system.label, "n_q": n_q, "id": utt.id,
                    "path": str(utt.path), "duration_s": len(audio) / sr,
                    "bitrate": system.bitrate(n_q), "text": utt.text,
                    "hypothesis": hypothesis, "wer": rates["wer"], "wil": rates["wil"],
                    **metrics.reconstruction_scores(audio, audio_hat, sr, visqol),
                }
                if not system.has_codes:
                    record["si_snr"] = None  # unbounded for a signal against itself
                if codes is not None:
                    hist = metrics.code_histograms(codes, system.codebook_size)
                    record["codebook_size"] = system.codebook_size
                    record["code_counts"] = _sparse_counts(hist)
                results.write(json.dumps(record) + "\n")
                results.flush()
                os.fsync(results.fileno())
                records[_record_key(record)] = record
                computed += 1
            bar.set_postfix(done=computed, skipped=len(skipped))
    bar.close()
    wanted_keys = {(s.key, n, u.id) for s, n in plan for u in utterances}
    kept = [r for k, r in records.items() if k in wanted_keys]
    return {"records": kept, "skipped": skipped, "computed": computed, "reused": done_before,
            "judge": judge.description, "visqol_mapper": visqol_mapper,
            "systems": [(s.key, s.label, n) for s, n in plan]}


REFERENCE_SYSTEMS = ("speechtokenizer", "encodec")


def run_evaluation(models, data, out_dir, n_qs=None, references=(), judge=None,
                   visqol_mapper="lattice", progress=True, plots=True, log=print,
                   bucket_seconds=0.0, html=True, listen=None, listen_per_group=5):
    """The whole evaluation: read the corpus, build the systems, evaluate, write tables and plots.

    Args:
        models: preset names or preset directories (``DMCodec``), or ``CodecSystem``s.
        data: LibriSpeech-layout folder or manifest (``keras_dmcodec.corpus.list_corpus``).
        out_dir: output folder (created; reused for resuming).
        n_qs: codebook counts to evaluate (default: each model's maximum).
        references: reference systems, e.g. ``("speechtokenizer",)``.
        judge: ASR ``Transcriber`` or spec (``keras_dmcodec.asr.make_asr``; default Whisper
            tiny.en).
        visqol_mapper: ``"lattice"`` or ``"polynomial"``.
        progress: progress bar.
        plots: write the PNG figures.
        log: callable for one-line messages.
        bucket_seconds: zero-pad inputs of Keras models to multiples of this length
            (see ``KerasCodecSystem``; 0, the default: each utterance at its own length,
            which compiles nothing per length).
        html: write the listening report ``report.html`` (``html_report``).
        listen: utterance ids for its listening panel; None: the ``listen_per_group``
            best, median and worst by STOI of the first model at its largest ``n_q``.
        listen_per_group: utterances per group of the default panel.

    Returns:
        dict with ``rows`` (summary), ``result`` (``evaluate``'s output) and ``files``.
    """
    for name in references:  # before any slow loading, so a typo fails at once
        if name == "encodec":
            raise ValueError("--reference encodec is not available: the encodec package is not "
                             "installed (its import needs torchaudio, which this project "
                             "cannot install beside the CPU torch)")
        if name not in REFERENCE_SYSTEMS:
            raise ValueError(f"unknown reference {name!r}: expected one of {REFERENCE_SYSTEMS}")
    utterances, problems = list_corpus(data, require_text=True)
    for problem in problems:
        log(f"warning: {problem}")
    log(f"corpus: {len(utterances)} utterances from {data}"
        + (f" ({len(problems)} entries skipped)" if problems else ""))
    probe = None
    for utt in utterances:  # the first readable utterance initialises random codebooks
        try:
            probe = load_audio(utt.path, sample_rate=16000)[0]
            break
        except AudioError:
            continue
    if probe is None:
        raise ValueError(f"{data}: none of the {len(utterances)} audio files can be read")
    systems, notes = [], []
    for spec in models:
        system = spec if isinstance(spec, CodecSystem) else load_codec_system(
            spec, probe, bucket_seconds=bucket_seconds)
        systems.append(system)
        if "RANDOM" in system.label:
            notes.append(f"{system.label}: untrained, so its numbers show that the pipeline "
                         "works, not the codec's quality.")
    for name in references:
        if name == "speechtokenizer":
            try:
                systems.append(SpeechTokenizerReference(probe))
            except ImportError as err:
                raise ValueError(f"--reference speechtokenizer needs the speechtokenizer "
                                 f"package ({err})") from None
            notes.append(systems[-1].label + "; codebooks filled from the first utterance's "
                         "latents.")
    if listen:
        known = {u.id for u in utterances}
        unknown = [u for u in listen if u not in known]
        if unknown:
            raise ValueError(f"--listen: {unknown[0]!r} is not an utterance id of {data}")
    judge = make_asr(judge)  # once, for both passes below
    result = evaluate(systems, utterances, out_dir, n_qs=n_qs, judge=judge,
                      visqol_mapper=visqol_mapper, progress=progress)
    result["skipped"] = problems + result["skipped"]
    rows = write_reports(out_dir, result, notes=notes)
    files = [Path(out_dir) / n for n in ("results.md", "results.csv", "results.json")]
    if plots:
        files += write_plots(out_dir, rows, result["records"])
    if html:
        files.append(_write_html(out_dir, data, systems, utterances, result, rows, notes,
                                 listen, listen_per_group, n_qs, judge, visqol_mapper))
    return {"rows": rows, "result": result, "files": files, "notes": notes}


def _write_html(out_dir, data, systems, utterances, result, rows, notes, listen, per_group,
                n_qs, judge, visqol_mapper):
    """The listening report: picks its utterances, makes their missing audio, writes the page."""
    records = result["records"]
    codec_rows = [(key, n) for key, _, n in result["systems"] if key != "original"]
    if listen:
        listening = [(None, utt) for utt in listen]
    elif codec_rows:
        key = codec_rows[0][0]
        n_q = max(n for k, n in codec_rows if k == key)
        listening = select_listening_set(records, key, n_q, per_group)
    else:
        listening = select_listening_set(records, "original", None, per_group)
    wanted = {utt for _, utt in listening}
    missing = [u for u in utterances if u.id in wanted and any(
        not showcase_path(out_dir, key, n, u.id).is_file() for key, _, n in result["systems"])]
    if missing:  # already scored: this pass only decodes and keeps their audio
        evaluate(systems, missing, out_dir, n_qs=n_qs, judge=judge, visqol_mapper=visqol_mapper,
                 showcase=0, keep_audio_ids=wanted, progress=False, log=lambda m: None)
    run = json.loads((Path(out_dir) / RUN_FILE).read_text())
    scored = {r["id"]: r["duration_s"] for r in records}
    settings = evaluation_settings(run, data, len(scored), sum(scored.values()),
                                   {key for key, _, _ in result["systems"]})
    return write_evaluation_report(out_dir, rows, records, result["systems"], listening,
                                   settings, notes=notes)
