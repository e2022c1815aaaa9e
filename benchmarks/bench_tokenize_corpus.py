"""Corpus tokenization throughput on local Ray: 1 vs 2 workers (and batching by length).

Builds a corpus of ``--copies`` copies of each test utterance (tests/data/speech: six
real TTS utterances of 2.5-3.0 s, so six distinct lengths), saves ``dmcodec_small``
with random weights (codebooks k-means initialised on one clip) as a preset, and runs
``tokenize_corpus`` once per configuration into a fresh output folder. Prints a table:
utterances/s and hours of audio per hour, end to end (Ray start-up, worker start-up,
model load and compilation included) and in steady state (audio seconds over the
shards' encode time, divided among the workers).

``--corpus DIR`` tokenizes an existing corpus instead (for the issue's target: the 200
test-split utterances of ``python -m training.corpus``, ``data/tts_corpus/test``), and
``--model`` picks the codec (default: the shipped ``dmcodec_small``; ``random`` for the
random-weight preset built here). Speeds are multiples of real time (audio hours per
hour).

Usage:
    KERAS_BACKEND=tensorflow python benchmarks/bench_tokenize_corpus.py --copies 10
    KERAS_BACKEND=tensorflow python benchmarks/bench_tokenize_corpus.py \
        --corpus data/tts_corpus/test --configs 2x1,2x8 --shard-size 25
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_corpus(root, copies):
    import soundfile as sf

    files = sorted((ROOT / "tests" / "data" / "speech").glob("*/*/*.flac"))
    for copy in range(copies):
        for path in files:
            audio, sr = sf.read(path, dtype="float32")
            out = root / f"copy{copy:03d}" / path.name
            out.parent.mkdir(parents=True, exist_ok=True)
            sf.write(out, audio, sr)
    return len(files) * copies


def build_preset(directory):
    import numpy as np

    from keras_dmcodec.audio import bundled_sample, load_audio
    from keras_dmcodec.models.loader import resolve_model

    model = resolve_model("dmcodec_small", random_weights=True).model  # seed 0
    audio, _ = load_audio(bundled_sample()[0], sample_rate=model.sample_rate)
    model(audio[None].astype(np.float32), training=True)  # k-means codebook initialisation
    model.save_to_preset(directory)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=10, help="copies of each test utterance")
    parser.add_argument("--shard-size", type=int, default=10)
    parser.add_argument("--configs", default="1x1,2x1,1x8",
                        help="comma-separated WORKERSxBATCH_SIZE runs (default 1x1,2x1,1x8)")
    parser.add_argument("--corpus", default=None,
                        help="an existing corpus folder instead of copies of the test clips")
    parser.add_argument("--model", default="dmcodec_small",
                        help="preset name or folder; 'random': dmcodec_small, random weights")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from keras_dmcodec.ops.graphs import use_persistent_compilation_cache
    from keras_dmcodec.pipelines.tokenize import tokenize_corpus

    work = Path(tempfile.mkdtemp(prefix="bench_tokenize_"))
    # As the CLI does: JAX keeps compiled programs on disk, shared with the Ray workers. A
    # fresh folder, so the first configuration starts cold and later ones find the programs.
    use_persistent_compilation_cache(work / "jax_cache")
    try:
        if args.corpus:
            from keras_dmcodec.corpus import list_corpus

            corpus = Path(args.corpus)
            count = len(list_corpus(corpus).utterances)
        else:
            corpus = work / "corpus"
            count = build_corpus(corpus, args.copies)
        model = args.model
        if model == "random":
            build_preset(work / "preset")
            model = str(work / "preset")
        rows = []
        for i, config in enumerate(args.configs.split(",")):
            workers, batch = (int(x) for x in config.split("x"))
            start = time.perf_counter()
            report = tokenize_corpus(corpus, work / f"out_{i}_{config}", model,
                                     workers=workers, batch_size=batch,
                                     shard_size=args.shard_size)
            wall = time.perf_counter() - start
            assert report["num_encoded"] == count, report
            audio_s = report["encoded_audio_seconds"]
            busy = report["worker_busy_seconds"]
            rows.append((workers, batch, count, audio_s, wall, count / wall, audio_s / wall,
                         audio_s / (busy / workers)))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()[0]
    source = args.corpus or f"{args.copies} copies x 6 test utterances"
    print(f"\nbackend {keras.backend.backend()}, {os.cpu_count()} CPUs (load average {load:.1f}), "
          f"model {args.model}, corpus {source}, shard size {args.shard_size}")
    print("| workers | batch | utts | audio h | wall s | utt/s | x real time (end to end) "
          "| x real time (steady) |")
    print("|---|---|---|---|---|---|---|---|")
    for workers, batch, count, audio_s, wall, ups, rtf, steady in rows:
        print(f"| {workers} | {batch} | {count} | {audio_s / 3600:.3f} | {wall:.1f} | {ups:.2f} "
              f"| {rtf:.1f} | {steady:.1f} |")


if __name__ == "__main__":
    main()
