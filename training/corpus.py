"""Synthetic English speech corpus in LibriSpeech layout, made with the Debian TTS voices here.

``python -m training.corpus --out data/tts_corpus --seed 0`` speaks sentences from
WordNet 3.0's usage examples (``training/sentences/``) with flite, festival and
espeak-ng voices, each at three rate/pitch variants (one variant = one speaker),
and writes::

    <out>/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    <out>/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt
    <out>/corpus.json        voices, sentence source + licence, counts, hours per split
    <out>/utterances.tsv     one row per utterance: split, speaker, voice, variant, seconds

Splits: ``train``, ``validation`` and ``test``. Their sentences are disjoint; the
test voices (by default flite ``rms`` and festival ``ked_diphone``) speak only in
``test``, where they take half of the utterances, the other half being spoken by
training voices. Everything (sentence order, split, speaker of each utterance,
audio bytes) is a pure function of the seed and the options, so one command
rebuilds the corpus; rerunning it skips finished utterances, and every file is
written atomically, so a killed build resumes where it stopped.

Audio: 16 kHz mono 16-bit FLAC, peak-normalised to -3 dBFS, silence trimmed at
-45 dBFS and padded with 0.1 s, as ``tests/data/speech`` was made.
"""

import argparse
import concurrent.futures
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from keras_dmcodec.utils.files import atomic_output

SENTENCES_DIR = Path(__file__).resolve().parent / "sentences"
DEFAULT_SENTENCES = SENTENCES_DIR / "wordnet_examples.txt"
LICENCE_FILE = SENTENCES_DIR / "LICENSE"
WORDNET_DIR = Path("/usr/share/wordnet")
SAMPLE_RATE = 16000
SPLITS = ("train", "validation", "test")
CHAPTERS = {"train": 1, "validation": 2, "test": 3}
FORMAT_VERSION = 2
SOURCE = {
    "name": "WordNet 3.0 usage examples (quoted examples in the glosses of data.noun/verb/adj/adv)",
    "origin": "Debian package wordnet-base 1:3.0-37, /usr/share/wordnet",
    "licence": "WordNet 3.0 licence (permissive, BSD-like; keep the notice): "
               "training/sentences/LICENSE",
    "copyright": "WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved.",
}


class CorpusError(RuntimeError):
    """A one-line reason why the corpus cannot be built (missing tool, bad option, ...)."""


@dataclass(frozen=True)
class Voice:
    """One TTS voice. ``vid`` is fixed forever: speaker ids derive from it.

    ``f0`` is the voice's mean F0 in Hz that pitch variants scale (flite and festival
    diphone voices); ``None`` where the engine cannot move this voice's pitch (flite
    ``rms``, festival HTS), so its variants differ in rate only. espeak-ng moves
    pitch with ``-p``.
    """

    vid: int
    engine: str
    name: str
    f0: float | None = None

    @property
    def key(self):
        return f"{self.engine}:{self.name}"

    @property
    def pitch_control(self):
        return self.engine == "espeak-ng" or self.f0 is not None


VOICES = (
    Voice(1, "flite", "slt", 170.0),
    Voice(2, "flite", "awb", 130.0),
    Voice(3, "flite", "kal16", 95.0),
    Voice(4, "flite", "rms"),
    Voice(5, "festival", "cmu_us_slt_arctic_hts"),
    Voice(6, "festival", "kal_diphone", 105.0),
    Voice(7, "festival", "ked_diphone", 105.0),
    Voice(8, "espeak-ng", "en-us"),
    Voice(9, "espeak-ng", "en-us+f3"),
    Voice(10, "espeak-ng", "en-gb-x-rp+m3"),
)
# espeak-ng en-gb-scotland+f2 was tried and left out: Whisper tiny.en got ~50 % of its
# words wrong (en-us: ~25 %, festival HTS slt: ~10 %).
VOICES_BY_KEY = {v.key: v for v in VOICES}
DEFAULT_TEST_VOICES = ("flite:rms", "festival:ked_diphone")
# (duration stretch, pitch factor): normal, faster and higher, slower and lower.
VARIANTS = ((1.0, 1.0), (0.88, 1.12), (1.15, 0.9))
ESPEAK_WPM = 165


def speaker_id(voice, variant):
    """LibriSpeech-style numeric speaker id of ``voice`` at variant index ``variant``.

    >>> speaker_id(VOICES_BY_KEY["flite:awb"], 2)
    1022
    """
    return 1000 + 10 * voice.vid + variant


# ---------------------------------------------------------------------------- sentences

_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "vs", "etc", "jr", "sr", "co", "inc", "ltd"}


def keep_sentence(text, min_words=4, max_words=25):
    """Whether ``text`` can be spoken with an exact transcript.

    Plain ASCII letters and light punctuation only: no digits (TTS would expand them
    in ways the transcript does not say), no acronyms or abbreviations (spelled or
    expanded unpredictably), no quotes.

    >>> keep_sentence("the children played in the garden")
    True
    >>> keep_sentence("DNA is the substance of our genes"), keep_sentence("he owns 3 cars")
    (False, False)
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z ,.;:?!'\-]*", text):
        return False
    words = text.replace("-", " ").split()
    if not min_words <= len(words) <= max_words:
        return False
    tokens = [w.strip(",.;:?!") for w in words]
    if any(sum(c.isupper() for c in t) >= 2 for t in tokens):
        return False
    if any(t.lower() in _ABBREVIATIONS for t in tokens) or re.search(r"\.\S", text):
        return False
    return not any(t.startswith("'") or t.endswith("'") or not t for t in tokens)


def transcript(text):
    """LibriSpeech-style transcript: uppercase words, apostrophes kept, no punctuation.

    >>> transcript("the well-known man's boat, I think?")
    "THE WELL KNOWN MAN'S BOAT I THINK"
    """
    return " ".join(re.sub(r"[^A-Za-z' ]", " ", text.replace("-", " ")).upper().split())


def extract_wordnet_examples(wordnet_dir=WORDNET_DIR):
    """Distinct usable usage examples from WordNet's ``data.*`` files, in file order."""
    wordnet_dir = Path(wordnet_dir)
    found = {}
    for pos in ("noun", "verb", "adj", "adv"):
        path = wordnet_dir / f"data.{pos}"
        if not path.is_file():
            raise CorpusError(f"{path}: not found (install Debian package wordnet-base)")
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:  # licence header / no gloss
                continue
            for example in re.findall(r'"([^"]*)"', line.split("|", 1)[1]):
                example = " ".join(example.split())
                key = transcript(example)
                if keep_sentence(example) and key not in found:
                    found[key] = example
    return list(found.values())


def _write_text(path, text):
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the corpus is shared


def write_sentence_file(sentences, path):
    header = [
        "# English sentences for training/corpus.py: the usage examples of WordNet 3.0,",
        "# filtered by training.corpus.keep_sentence (4-25 words, letters only) and",
        "# deduplicated by transcript. Regenerate with",
        "#   python -m training.corpus --extract-wordnet /usr/share/wordnet",
        f"# {SOURCE['copyright']}",
        "# Distributed under the WordNet 3.0 licence: see LICENSE in this folder.",
    ]
    _write_text(path, "\n".join(header + list(sentences)) + "\n")


def read_sentences(path=DEFAULT_SENTENCES):
    """Sentences of a one-per-line file (``#`` lines are comments), checked and deduplicated."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: sentence file not found")
    sentences, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not keep_sentence(line):
            raise CorpusError(f"{path}:{number}: sentence cannot be spoken exactly: {line!r}")
        if transcript(line) not in seen:
            seen.add(transcript(line))
            sentences.append(line)
    if not sentences:
        raise CorpusError(f"{path}: no sentences")
    return sentences


# ---------------------------------------------------------------------------- plan


def plan_corpus(sentences, seed, num_utterances, num_validation, num_test,
                voices=None, test_voices=DEFAULT_TEST_VOICES, min_words=15):
    """Every utterance of the corpus: a pure function of the arguments.

    Each split draws from its own random stream, so ``num_utterances`` changes only
    how far the training split goes: validation and test stay the same, and a
    smaller corpus's training split is a prefix of a larger one's.

    Returns:
        list of dicts with ``id, split, speaker, chapter, voice, variant, sentences,
        transcript, path`` (``path`` relative to the corpus root).
    """
    import numpy as np

    voices = [VOICES_BY_KEY[k] for k in (voices or [v.key for v in VOICES])]
    held = [VOICES_BY_KEY[k] for k in test_voices]
    if not held:
        raise CorpusError("at least one test voice is required")
    if any(v not in voices for v in held):
        raise CorpusError(f"test voices {list(test_voices)} must be among the voices")
    seen = [v for v in voices if v not in held]
    if not seen:
        raise CorpusError("every voice is a test voice: none is left for train")
    num_train = num_utterances - num_validation - num_test
    if num_test < 1 or num_validation < 0 or num_train < 1:
        raise CorpusError(f"--num-utterances {num_utterances} must exceed --num-validation "
                          f"{num_validation} + --num-test {num_test} (>= 1)")

    order = [sentences[i] for i in np.random.default_rng([seed, 0]).permutation(len(sentences))]
    # An utterance strings sentences together up to ``min_words`` words: single WordNet
    # examples (~2.5 s) are shorter than the 3 s training crops, which would be zero-padded.
    groups, group = [], []
    for sentence in order:
        group.append(sentence)
        if sum(len(transcript(x).split()) for x in group) >= min_words:
            groups.append(group)
            group = []
    if num_test + num_validation >= len(groups):
        raise CorpusError(f"only {len(groups)} utterances' worth of sentences for "
                          f"{num_test + num_validation} held-out utterances")
    texts = {"test": groups[:num_test],
             "validation": groups[num_test:num_test + num_validation]}
    pool = groups[num_test + num_validation:]
    # More training utterances than sentences left: reuse them (other speakers say them).
    texts["train"] = [pool[i % len(pool)] for i in range(num_train)]

    def speakers(vs):
        return [(v, k) for v in vs for k in range(len(VARIANTS))]

    def balanced(candidates, n, stream):
        """``n`` speakers: every one once per round, each round freshly shuffled."""
        rng = np.random.default_rng([seed, stream])
        out = []
        while len(out) < n:
            out += [candidates[i] for i in rng.permutation(len(candidates))]
        return out[:n]

    who = {"train": balanced(speakers(seen), num_train, 1),
           "validation": balanced(speakers(seen), num_validation, 2)}
    unseen_n = (num_test + 1) // 2
    unseen = balanced(speakers(held), unseen_n, 3)
    known = balanced(speakers(seen), num_test - unseen_n, 4)
    # Interleave so that any prefix of the test split mixes held-out and training voices.
    who["test"] = [unseen[i // 2] if i % 2 == 0 else known[i // 2] for i in range(num_test)]

    plan, counters = [], {}
    for split in SPLITS:
        chapter = CHAPTERS[split]
        for group, (voice, variant) in zip(texts[split], who[split], strict=True):
            spk = speaker_id(voice, variant)
            utt = counters.get((spk, chapter), 0)
            counters[(spk, chapter)] = utt + 1
            uid = f"{spk}-{chapter}-{utt:04d}"
            plan.append({
                "id": uid, "split": split, "speaker": spk, "chapter": chapter,
                "voice": voice.key, "variant": variant, "sentences": group,
                "transcript": " ".join(transcript(x) for x in group),
                "path": f"{split}/{spk}/{chapter}/{uid}.flac",
            })
    return plan


# ---------------------------------------------------------------------------- synthesis


def spoken_text(sentences):
    """What the TTS reads: each sentence capitalised and ended with a full stop.

    >>> spoken_text(["the dog ran", "is it late?"])
    'The dog ran. Is it late?'
    """
    out = []
    for text in sentences:
        text = text[0].upper() + text[1:]
        out.append(text if text[-1] in ".?!" else text.rstrip(",;:") + ".")
    return " ".join(out)


def tts_command(voice, variant, sentences, wav, workdir):
    """The command that speaks ``sentences`` into ``wav`` with ``voice`` at ``variant``."""
    stretch, pitch = VARIANTS[variant]
    text = spoken_text(sentences)
    if voice.engine == "flite":
        cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={stretch}"]
        if voice.f0 is not None:
            cmd += ["--setf", f"int_f0_target_mean={voice.f0 * pitch:.1f}"]
        return cmd + ["-t", text, "-o", str(wav)]
    if voice.engine == "festival":
        text_file = Path(workdir) / "text.txt"
        text_file.write_text(text + "\n", encoding="ascii")
        setup = [f"(voice_{voice.name})"]
        if voice.name.endswith("_hts"):  # HTS ignores Duration_Stretch; its engine takes -r
            setup.append(f'(set! hts_engine_params (append hts_engine_params '
                         f'(list (list "-r" {1.0 / stretch:.4f}))))')
        else:
            setup.append(f"(Parameter.set 'Duration_Stretch {stretch})")
        if voice.f0 is not None:
            setup.append(f"(set! int_lr_params '((target_f0_mean {voice.f0 * pitch:.1f}) "
                         "(target_f0_std 14) (model_f0_mean 170) (model_f0_std 34)))")
        return ["text2wave", "-eval", f"(begin {' '.join(setup)})", str(text_file),
                "-o", str(wav)]
    if voice.engine == "espeak-ng":
        speed = round(ESPEAK_WPM / stretch)
        pitch_value = int(round(50 + 100 * math.log2(pitch)))
        return ["espeak-ng", "-v", voice.name, "-s", str(speed), "-p", str(pitch_value),
                "-w", str(wav), text]
    raise CorpusError(f"unknown TTS engine {voice.engine!r}")


# Mono, 16 kHz, -3 dBFS peak, silence below -45 dBFS trimmed at both ends, 0.1 s padding.
SOX_EFFECTS = ["remix", "-", "rate", "-v", str(SAMPLE_RATE), "norm", "-3",
               "silence", "1", "0.02", "-45d", "reverse", "silence", "1", "0.02", "-45d",
               "reverse", "pad", "0.1", "0.1"]


def _run(cmd, what):
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CorpusError(f"{what}: {cmd[0]} failed: {err}") from None
    if result.returncode:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CorpusError(f"{what}: {cmd[0]} exited {result.returncode}: {tail[0]}")


def synthesise(item, root):
    """Speaks one planned utterance into its FLAC file (atomically). Returns its seconds."""
    import soundfile as sf

    voice = VOICES_BY_KEY[item["voice"]]
    target = Path(root) / item["path"]
    with tempfile.TemporaryDirectory(prefix="tts_corpus_") as workdir:
        wav = Path(workdir) / "tts.wav"
        _run(tts_command(voice, item["variant"], item["sentences"], wav, workdir), item["id"])
        with atomic_output(target) as tmp:
            _run(["sox", "-D", "-V1", str(wav), "-b", "16", "-t", "flac", str(tmp)]
                 + SOX_EFFECTS, item["id"])
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; the corpus is shared
            info = sf.info(str(tmp))
            if info.frames < 0.3 * SAMPLE_RATE:
                raise CorpusError(f"{item['id']}: {voice.key} produced only "
                                  f"{info.frames / SAMPLE_RATE:.2f} s for {item['transcript']!r}")
    return info.frames / SAMPLE_RATE


def check_tools(voices):
    """Fails with one line if a TTS engine, a voice or sox is missing."""
    engines = {VOICES_BY_KEY[k].engine for k in voices}
    binaries = {"flite": "flite", "festival": "text2wave", "espeak-ng": "espeak-ng"}
    for tool in sorted({binaries[e] for e in engines} | {"sox"}):
        if shutil.which(tool) is None:
            raise CorpusError(f"{tool} not found (Debian: make install, or apt-get install "
                              "flite festival festvox-kallpc16k festvox-kdlpc16k "
                              "festvox-us-slt-hts espeak-ng sox)")
    if "flite" in engines:
        listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout.split()
        for key in voices:
            voice = VOICES_BY_KEY[key]
            if voice.engine == "flite" and voice.name not in listed:
                raise CorpusError(f"flite has no voice {voice.name!r} (it lists {listed[2:]})")
    for key in voices:
        voice = VOICES_BY_KEY[key]
        if voice.engine == "festival":
            if not list(Path("/usr/share/festival/voices").glob(f"*/{voice.name}")):
                raise CorpusError(f"festival voice {voice.name} is not installed "
                                  "(/usr/share/festival/voices)")


# ---------------------------------------------------------------------------- build


def _settings(args, sentence_file, sentences):
    digest = hashlib.sha256("\n".join(sentences).encode()).hexdigest()
    return {
        "format_version": FORMAT_VERSION, "seed": args.seed,
        "num_utterances": args.num_utterances, "num_validation": args.num_validation,
        "num_test": args.num_test, "min_words": args.min_words,
        "voices": list(args.voices),
        "test_voices": list(args.test_voices), "variants": [list(v) for v in VARIANTS],
        "sentence_file": sentence_file.name, "sentences_sha256": digest,
    }


def _remove_stale_temporaries(root):
    for tmp in Path(root).rglob(".tmp_*"):
        tmp.unlink()


def _summary(plan, root, settings, seconds, num_sentences):
    splits = {}
    for split in SPLITS:
        items = [it for it in plan if it["split"] == split]
        secs = sum(seconds[it["id"]] for it in items)
        voices = sorted({it["voice"] for it in items})
        splits[split] = {
            "utterances": len(items), "hours": round(secs / 3600, 3),
            "speakers": len({it["speaker"] for it in items}),
            "distinct_sentences": len({x for it in items for x in it["sentences"]}),
            "voices": voices,
        }
    train_voices = set(splits["train"]["voices"])
    splits["test"]["unseen_voices"] = sorted(set(splits["test"]["voices"]) - train_voices)
    return {
        "complete": True, "settings": settings, "sample_rate": SAMPLE_RATE,
        "layout": "LibriSpeech: <split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac "
                  "+ <speaker>-<chapter>.trans.txt",
        "sentence_source": dict(SOURCE, usable_sentences=num_sentences),
        "voices": [{"key": v.key, "speaker_ids": [speaker_id(v, k) for k in range(len(VARIANTS))],
                    "pitch_control": v.pitch_control,
                    "test_only": v.key in settings["test_voices"]}
                   for v in VOICES if v.key in settings["voices"]],
        "variants": [{"index": k, "duration_stretch": s, "pitch_factor": p}
                     for k, (s, p) in enumerate(VARIANTS)],
        "splits": splits,
        "total_hours": round(sum(seconds.values()) / 3600, 3),
    }


def _write_text_files(plan, root, seconds):
    chapters = {}
    for it in plan:
        chapters.setdefault(Path(it["path"]).parent, []).append(it)
    for folder, items in chapters.items():
        spk, chapter = items[0]["speaker"], items[0]["chapter"]
        lines = [f"{it['id']} {it['transcript']}" for it in sorted(items, key=lambda x: x["id"])]
        _write_text(Path(root) / folder / f"{spk}-{chapter}.trans.txt", "\n".join(lines) + "\n")
    rows = ["id\tsplit\tspeaker\tvoice\tvariant\tseconds\ttranscript"]
    rows += [f"{it['id']}\t{it['split']}\t{it['speaker']}\t{it['voice']}\t{it['variant']}\t"
             f"{seconds[it['id']]:.3f}\t{it['transcript']}" for it in plan]
    _write_text(Path(root) / "utterances.tsv", "\n".join(rows) + "\n")


def _write_json(path, data):
    _write_text(path, json.dumps(data, indent=1) + "\n")


def build_corpus(args, log=print):
    """Builds (or resumes) the corpus described by the parsed ``args``. Returns corpus.json."""
    import soundfile as sf

    root = Path(args.out)
    sentence_file = Path(args.sentences)
    sentences = read_sentences(sentence_file)
    for key in list(args.voices) + list(args.test_voices):
        if key not in VOICES_BY_KEY:
            raise CorpusError(f"unknown voice {key!r}; known: {', '.join(VOICES_BY_KEY)}")
    plan = plan_corpus(sentences, args.seed, args.num_utterances, args.num_validation,
                       args.num_test, args.voices, args.test_voices, args.min_words)
    settings = _settings(args, sentence_file, sentences)
    check_tools(args.voices)

    meta_path = root / "corpus.json"
    if root.is_dir() and any(root.iterdir()) and not meta_path.exists():
        # Resuming deletes temporaries and surplus files: never do that to other folders.
        raise CorpusError(f"{root} is not empty and holds no corpus.json: choose a new --out")
    if meta_path.exists():
        try:
            old = json.loads(meta_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise CorpusError(f"{meta_path}: unreadable ({err}); delete the folder") from None
        old_settings = dict(old.get("settings", {}), num_utterances=args.num_utterances)
        if old_settings != settings:  # only the size may change: see plan_corpus
            raise CorpusError(f"{root} holds a corpus built with other settings; "
                              "use another --out or delete it")
        if old.get("complete") and old["settings"] == settings:
            log(f"{root}: already complete ({old['total_hours']} h)")
            return old
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(root)
    planned = {it["path"] for it in plan}
    for split in SPLITS:  # a smaller --num-utterances than before: drop the surplus
        for path in sorted((root / split).rglob("*.flac")):
            if str(path.relative_to(root)) not in planned:
                path.unlink()
        for path in (root / split).rglob("*.trans.txt"):  # rewritten once all audio is done
            path.unlink()
    _write_json(meta_path, {"complete": False, "settings": settings})

    # Test and validation first: a build stopped early can then be finished smaller.
    todo = sorted((it for it in plan if not (root / it["path"]).exists()),
                  key=lambda it: it["split"] == "train")
    log(f"{root}: {len(plan)} utterances planned, {len(plan) - len(todo)} already done")
    deadline = time.monotonic() + args.max_minutes * 60 if args.max_minutes else None
    start, done = time.monotonic(), 0

    def progress():
        rate = done / max(time.monotonic() - start, 1e-6)
        eta = (len(todo) - done) / rate / 60 if rate else float("inf")
        log(f"  {done}/{len(todo)} synthesised ({rate:.2f} utt/s, ~{eta:.1f} min left)")

    def out_of_time():
        return deadline is not None and time.monotonic() > deadline

    if args.workers <= 1:
        for it in todo:
            if out_of_time():
                break
            synthesise(it, root)
            done += 1
            if done % 200 == 0:
                progress()
    else:
        with concurrent.futures.ProcessPoolExecutor(args.workers) as pool:
            pending = set()
            queue = iter(todo)
            for it in queue:
                pending.add(pool.submit(synthesise, it, root))
                if len(pending) >= 4 * args.workers:
                    finished, pending = concurrent.futures.wait(
                        pending, return_when=concurrent.futures.FIRST_COMPLETED)
                    for fut in finished:
                        fut.result()
                        done += 1
                        if done % 200 == 0:
                            progress()
                    if out_of_time():
                        break
            for fut in concurrent.futures.as_completed(pending):
                fut.result()
                done += 1
    missing = [it for it in plan if not (root / it["path"]).exists()]
    if missing:
        log(f"stopped with {len(missing)} of {len(plan)} utterances left; "
            "rerun the same command to resume")
        return None
    if done % 200:
        progress()
    seconds = {it["id"]: sf.info(str(root / it["path"])).frames / SAMPLE_RATE for it in plan}
    _write_text_files(plan, root, seconds)
    summary = _summary(plan, root, settings, seconds, len(sentences))
    _write_json(meta_path, summary)
    for split, info in summary["splits"].items():
        log(f"  {split:10s} {info['utterances']:6d} utterances {info['hours']:7.3f} h "
            f"{info['speakers']:3d} speakers {len(info['voices']):2d} voices")
    log(f"  test voices never heard in train: {summary['splits']['test']['unseen_voices']}")
    return summary


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m training.corpus", description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default="data/tts_corpus", help="corpus folder")
    parser.add_argument("--seed", type=int, default=0,
                        help="fixes sentence order, split and speaker of every utterance")
    parser.add_argument("--num-utterances", type=int, default=3000,
                        help="utterances in all splits together")
    parser.add_argument("--num-validation", type=int, default=100)
    parser.add_argument("--num-test", type=int, default=150)
    parser.add_argument("--min-words", type=int, default=15,
                        help="an utterance strings sentences together up to this many words")
    parser.add_argument("--voices", default=",".join(v.key for v in VOICES),
                        help="comma-separated engine:voice keys")
    parser.add_argument("--test-voices", default=",".join(DEFAULT_TEST_VOICES),
                        help="voices heard only in the test split")
    parser.add_argument("--sentences", default=str(DEFAULT_SENTENCES),
                        help="one sentence per line ('#' comments)")
    parser.add_argument("--workers", type=int, default=1, help="synthesis processes")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop cleanly after this long (rerun to resume)")
    parser.add_argument("--extract-wordnet", metavar="DIR", default=None,
                        help="instead of building: rewrite --sentences from WordNet's data "
                             "files in DIR (e.g. /usr/share/wordnet)")
    args = parser.parse_args(argv)
    args.voices = [k.strip() for k in args.voices.split(",") if k.strip()]
    args.test_voices = [k.strip() for k in args.test_voices.split(",") if k.strip()]
    return args


def main(argv=None):
    args = parse_args(argv)

    def stop(signum, frame):  # SIGTERM: unwind so atomic writes remove their temporaries
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    try:
        if args.extract_wordnet:
            sentences = extract_wordnet_examples(args.extract_wordnet)
            write_sentence_file(sentences, args.sentences)
            print(f"{args.sentences}: {len(sentences)} sentences")
            return 0
        summary = build_corpus(args, log=lambda msg: print(msg, flush=True))
    except CorpusError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0 if summary else 3


if __name__ == "__main__":
    sys.exit(main())
