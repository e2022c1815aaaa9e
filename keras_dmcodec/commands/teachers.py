"""``dmcodec cache-teachers``: run the distillation teachers once over a corpus and cache them.

Example::

    dmcodec cache-teachers --data tests/data/speech --out cache/ --sm whisper-tiny.en \\
        --lm minilm --layer avg --transcripts ground_truth --alignment aligned

The cache (see ``keras_dmcodec.teachers.cache``) is what the training config's
``data.teacher_cache`` points to.
"""

import sys

from keras_dmcodec.asr import make_asr
from keras_dmcodec.corpus import list_corpus
from keras_dmcodec.teachers.cache import build_cache
from keras_dmcodec.teachers.registry import load_speech_teacher, load_text_teacher


def register(subparsers):
    parser = subparsers.add_parser(
        "cache-teachers", help="precompute SM/LM teacher features for distillation",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, action="append",
                        help="audio folder (LibriSpeech layout for ground truth), audio file, or "
                             "manifest (.tsv/.txt: path<TAB>text, .csv, .jsonl; see "
                             "keras_dmcodec.corpus); repeatable")
    parser.add_argument("--out", required=True, help="cache directory (resumed if it exists)")
    parser.add_argument("--sm", default="none",
                        help="speech teacher: hubert:DIR, whisper-tiny.en, whisper:DIR, none")
    parser.add_argument("--lm", default="none", help="text teacher: minilm, bert:DIR, none")
    parser.add_argument("--layer", default="avg",
                        help="hidden state for both teachers: avg (mean of all, the reference "
                             "default) or an index (default: avg)")
    parser.add_argument("--sm-layer", default=None, help="override --layer for the SM teacher")
    parser.add_argument("--lm-layer", default=None, help="override --layer for the LM teacher")
    parser.add_argument("--transcripts", default="ground_truth",
                        choices=("ground_truth", "whisper", "ctc"),
                        help="text for the LM teacher (default: ground_truth)")
    parser.add_argument("--asr", default=None,
                        help="word-timed ASR: whisper (packaged tiny.en), whisper:DIR or "
                             "ctc:DIR (a Wav2Vec2ForCTC directory); used for whisper/ctc "
                             "transcripts and to time ground truth for --alignment aligned "
                             "(default: whisper)")
    parser.add_argument("--alignment", default="aligned", choices=("aligned", "positional"),
                        help="token features to frames: word-aligned, or the reference's "
                             "token i <-> frame i (default: aligned)")
    parser.add_argument("--word-feature", default="mean", choices=("mean", "first"),
                        help="aligned mode: a word's feature is the mean of its tokens or its "
                             "first token (default: mean)")
    parser.add_argument("--mask-padding", action="store_true",
                        help="positional mode: mask BERT [PAD] positions (the reference "
                             "distils them)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N utterances")
    parser.set_defaults(handler=run)


def _layer(value):
    if value is None or value in ("avg", "last"):
        return value
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"layer must be 'avg', 'last' or an integer, got {value!r}") from None


def run(args):
    items, problems = list_corpus(args.data)
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    if args.limit is not None:
        items = items[: args.limit]
    sm = None if args.sm == "none" else load_speech_teacher(args.sm)
    lm = None if args.lm == "none" else load_text_teacher(args.lm)
    asr_spec = args.asr
    if lm is not None and asr_spec is None:
        if args.transcripts == "ctc":
            raise ValueError("--transcripts ctc needs --asr ctc:DIR (a Wav2Vec2ForCTC directory)")
        if args.transcripts == "whisper" or args.alignment == "aligned":
            asr_spec = "whisper"
    if args.transcripts == "ctc" and asr_spec and not asr_spec.startswith("ctc:"):
        raise ValueError("--transcripts ctc needs --asr ctc:DIR")
    # Greedy Whisper: one pass over a whole corpus, for words and their timings.
    transcriber = make_asr(asr_spec, beam_size=1) if (lm is not None and asr_spec) else None
    report = build_cache(items, args.out, sm_teacher=sm, lm_teacher=lm, layer=_layer(args.layer),
                         sm_layer=_layer(args.sm_layer), lm_layer=_layer(args.lm_layer),
                         transcripts=args.transcripts, transcriber=transcriber,
                         alignment=args.alignment, word_feature=args.word_feature,
                         keep_padding=not args.mask_padding)
    print(f"cached {report['cached']} utterance(s), {report['already_cached']} already cached, "
          f"{len(report['failed'])} failed, in {report['seconds']:.1f} s -> {report['index']}")
    if lm is not None:
        missing = report["no_transcript"]
        print(f"no transcript ({len(missing)}): {', '.join(missing) if missing else 'none'}")
        fallback = report["alignment_fallbacks"]
        if fallback:
            print(f"no word timings, positional pairing used ({len(fallback)}): "
                  f"{', '.join(fallback)}")
    for key, reason in report["failed"].items():
        print(f"failed: {key}: {reason}", file=sys.stderr)
    return 0
