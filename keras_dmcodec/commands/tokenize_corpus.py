"""``dmcodec tokenize-corpus``: encode a corpus to sharded Parquet token files on Ray Data.
"""

import sys

from keras_dmcodec.pipelines.shards import MANIFEST_FILE, REPORT_FILE
from keras_dmcodec.pipelines.tokenize import tokenize_corpus


def register(subparsers):
    parser = subparsers.add_parser(
        "tokenize-corpus", help="encode a corpus to sharded Parquet token files (Ray Data)",
        description="Encode every audio file of a directory tree or manifest with a pool of Ray "
        "workers (one model each) into Parquet shards plus manifest.json and report.json. "
        "Re-running with the same output folder skips the shards already written; unreadable "
        "files are listed in report.json. Uses $RAY_ADDRESS (or --address) when set, else a "
        "local Ray instance.")
    parser.add_argument("source", metavar="IN_DIR_OR_MANIFEST",
                        help="folder of audio (any soundfile format, searched recursively; "
                        "hidden and temporary files skipped) or a manifest (.tsv/.txt: 'path' or "
                        "'path<TAB>text' lines, optional header naming 'path', 'text', 'id'; "
                        ".csv: the same with commas; .jsonl/.json: {\"path\", \"text\", "
                        "\"id\"})")
    parser.add_argument("-o", "--out", required=True, metavar="OUT_DIR",
                        help="output folder (shared by all workers; resumes if present)")
    parser.add_argument("--model", required=True, metavar="PRESET_OR_DIR",
                        help="preset name with shipped weights, a preset directory or a "
                        "keras-hub handle")
    parser.add_argument("--n-q", type=int, default=None, metavar="N",
                        help="codebooks to keep (default: all)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="Ray actors, each with its own model (default 1)")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N",
                        help="clips encoded together, padded with their lengths (default 1: "
                        "codes bit-identical to `dmcodec encode`)")
    parser.add_argument("--shard-size", type=int, default=256, metavar="N",
                        help="utterances per Parquet shard (default 256)")
    parser.add_argument("--cpus-per-worker", type=float, default=None, metavar="N",
                        help="CPUs per worker (default: local CPUs / workers; 1 on a cluster)")
    parser.add_argument("--gpus-per-worker", "--num-gpus", type=float, default=0, metavar="N",
                        dest="gpus_per_worker", help="GPUs per worker (default 0: CPU workers)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: $RAY_ADDRESS, else a local instance)")
    parser.add_argument("--max-retries", type=int, default=3, metavar="N",
                        help="retries of a shard whose worker died or failed (default 3)")
    parser.set_defaults(handler=run)


def run(args):
    cpus = args.cpus_per_worker
    if cpus is not None and cpus.is_integer():
        cpus = int(cpus)
    report = tokenize_corpus(
        args.source, args.out, args.model, n_q=args.n_q, workers=args.workers,
        batch_size=args.batch_size, shard_size=args.shard_size, cpus_per_worker=cpus,
        gpus_per_worker=args.gpus_per_worker, address=args.address,
        max_retries=args.max_retries, log=lambda line: print(line, flush=True),
    )
    seconds = report["encoded_audio_seconds"]
    elapsed = report["elapsed_seconds"]
    speed = f", {seconds / elapsed:.1f}x real time" if elapsed > 0 and seconds else ""
    print(f"encoded {report['encoded_utterances']} utterances ({seconds / 3600:.3f} h of audio) "
          f"in {elapsed:.1f} s{speed}; {len(report['skipped_shards'])} shard(s) already done")
    print(f"total {report['num_encoded']} of {report['num_listed']} utterances in "
          f"{args.out}/{MANIFEST_FILE}; {report['num_bad']} bad file(s) listed in "
          f"{args.out}/{REPORT_FILE}")
    for entry in report["bad_files"][:10]:
        print(f"  bad: {entry['path']}: {entry['reason']}", file=sys.stderr)
    if report["num_skipped_entries"]:
        print(f"{report['num_skipped_entries']} corpus entr"
              f"{'y' if report['num_skipped_entries'] == 1 else 'ies'} skipped while listing "
              f"(listed in {args.out}/{REPORT_FILE})", file=sys.stderr)
    for problem in report["skipped_entries"][:10]:
        print(f"  skipped: {problem}", file=sys.stderr)
    if report["failed_shards"]:
        print(f"dmcodec: error: {len(report['failed_shards'])} shard(s) failed after retries: "
              f"{[f['shard'] for f in report['failed_shards']]}; re-run to retry them",
              file=sys.stderr)
        return 1
    if report["num_encoded"] == 0:
        print("dmcodec: error: no utterance could be encoded", file=sys.stderr)
        return 1
    return 0
