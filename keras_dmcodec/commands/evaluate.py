"""``dmcodec evaluate``: the paper's metrics (WER, WIL, ViSQOL, STOI + PESQ, mel distance,
SI-SNR, bitrate, codebook use) for one or more models over a corpus, offline.
"""

import argparse
from pathlib import Path

from keras_dmcodec.evaluation.report import markdown_table
from keras_dmcodec.evaluation.runner import run_evaluation


def register(subparsers):
    parser = subparsers.add_parser(
        "evaluate", help="score models on a corpus: WER/WIL (offline ASR), ViSQOL, STOI, ...",
        description="Encode and decode every utterance of a corpus with each model (and n_q), "
        "score the reconstruction against the original and transcribe it with an offline ASR "
        "judge. Writes results.md/.csv/.json, PNG plots and a listening report (report.html: "
        "tables, audio players, spectrograms, word errors; opens from the file system) to the "
        "output folder; re-running with the same folder resumes.")
    parser.add_argument("--model", action="append", default=[], metavar="PRESET_OR_DIR",
                        help="preset name, preset folder or keras-hub handle; random:NAME for "
                        "the architecture with random weights; repeat for several models")
    parser.add_argument("--data", required=True, metavar="DIR_OR_MANIFEST",
                        help="LibriSpeech-layout folder (.flac + .trans.txt) or a manifest "
                        "(.tsv: path<TAB>text, or .jsonl: {\"path\", \"text\"})")
    parser.add_argument("--n-q", type=int, nargs="+", action="extend", default=None,
                        metavar="N", help="codebook counts to evaluate (default: all codebooks)")
    parser.add_argument("--reference", action="append", default=[],
                        choices=("speechtokenizer", "encodec"),
                        help="add a reference model row (speechtokenizer: the reference "
                        "PyTorch architecture with random weights)")
    parser.add_argument("--asr", default="whisper", metavar="SPEC",
                        help="ASR judge: whisper (default: the packaged Whisper tiny.en), "
                        "whisper:DIR (a CTranslate2 Whisper directory) or ctc:DIR (a local "
                        "Wav2Vec2ForCTC directory: the reference code's greedy CTC)")
    parser.add_argument("--visqol-mapper", default="lattice", choices=("lattice", "polynomial"),
                        help="ViSQOL speech-mode MOS mapping (default lattice, ViSQOL's own)")
    parser.add_argument("--bucket-seconds", type=float, default=0.0, metavar="S",
                        help="zero-pad inputs to multiples of S seconds, as evaluations before "
                        "v0.3 did (default 0: each utterance at its own length)")
    parser.add_argument("-o", "--out", required=True, help="output folder (resumes if present)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.add_argument("--html", action=argparse.BooleanOptionalAction, default=True,
                        help="write the listening report report.html with its audio in "
                        "report_audio/ (default: on; --no-html skips it)")
    parser.add_argument("--listen", nargs="+", default=None, metavar="ID",
                        help="utterance ids for the report's listening panel (default: the 5 "
                        "best, 5 median and 5 worst by STOI of the first model)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args):

    if not args.model and not args.reference:
        raise ValueError("nothing to evaluate: give --model PRESET_OR_DIR and/or --reference")
    out = run_evaluation(args.model, args.data, Path(args.out), n_qs=args.n_q,
                         references=args.reference, judge=args.asr,
                         visqol_mapper=args.visqol_mapper, progress=not args.no_progress,
                         plots=not args.no_plots, bucket_seconds=args.bucket_seconds,
                         html=args.html, listen=args.listen)

    result = out["result"]
    print(markdown_table(out["rows"]), end="")
    print(f"judge: {result['judge']}")
    print(f"computed {result['computed']} results, reused {result['reused']} cached, "
          f"skipped {len(result['skipped'])} utterance(s)")
    for note in out["notes"]:
        print(f"note: {note}")
    print("wrote " + ", ".join(str(p) for p in out["files"]))
    return 0
