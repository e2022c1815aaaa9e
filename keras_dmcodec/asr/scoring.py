"""WER / WIL of ASR hypotheses, with the Whisper English text normaliser.

The paper (DM-Codec, arXiv 2410.15017) reports WER and WIL of an ASR system's
transcript of the reconstructed speech. Both the transcript and the hypothesis go
through Whisper's ``EnglishTextNormalizer`` (the normaliser of OpenAI's Whisper
evaluation, ``whisper/normalizers/english.py``, as packaged in
``transformers.models.whisper.english_normalizer``): lower case, punctuation and
fillers removed, numbers and contractions standardised. Its British-to-American
spelling table (``english.json``) is not installed here, so that one step is
skipped (it changes words such as "colour" -> "color", identically on both sides
for a corpus in one spelling). WER and WIL are then computed by ``jiwer`` over
the whole corpus (errors summed over utterances, as jiwer does for lists).
"""

import functools


@functools.lru_cache(maxsize=1)
def _normalizer():
    # Heavy optional dependency (transformers), only for its text normaliser.
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer({})


def normalize_text(text):
    """Whisper's English normalisation (module docstring): ``"Mr. Smith!"`` -> ``"mister smith"``.

    >>> normalize_text("THE QUICK, brown fox; it's twenty-one.")
    'the quick brown fox it is 21'
    """
    return " ".join(_normalizer()(str(text)).split())


def error_rates(references, hypotheses):
    """Corpus WER and WIL (jiwer) of normalised ``hypotheses`` against normalised ``references``.

    Args:
        references: list of transcripts (or one string).
        hypotheses: list of ASR outputs, same length.

    Returns:
        dict with ``wer``, ``wil`` (fractions, 0 = perfect), ``hits``,
        ``substitutions``, ``deletions``, ``insertions`` and ``words`` (reference words).

    Raises:
        ValueError: different lengths, or a reference that is empty after normalisation.

    >>> rates = error_rates(["The cat sat."], ["the cat sat on"])
    >>> round(rates["wer"], 3), rates["insertions"]
    (0.333, 1)
    """
    # Optional dependency of the eval extra, needed only to score.
    import jiwer

    if isinstance(references, str):
        references, hypotheses = [references], [hypotheses]
    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        raise ValueError("no transcripts to score")
    refs = [normalize_text(r) for r in references]
    hyps = [normalize_text(h) for h in hypotheses]
    for raw, ref in zip(references, refs, strict=True):
        if not ref:
            raise ValueError(f"reference transcript {raw!r} is empty after normalisation")
    out = jiwer.process_words(refs, hyps)
    return {
        "wer": float(out.wer),
        "wil": float(out.wil),
        "hits": int(out.hits),
        "substitutions": int(out.substitutions),
        "deletions": int(out.deletions),
        "insertions": int(out.insertions),
        "words": int(out.hits + out.substitutions + out.deletions),
    }


def align_words(reference, hypothesis):
    """Word-level alignment of one normalised hypothesis against its reference.

    The alignment is jiwer's (the one ``error_rates`` counts), so the marks a report
    draws add up to the WER it prints.

    Args:
        reference: transcript (str).
        hypothesis: ASR output (str).

    Returns:
        list of ``(op, reference_word, hypothesis_word)``; ``op`` is ``"equal"``,
        ``"substitute"``, ``"delete"`` (``hypothesis_word`` None) or ``"insert"``
        (``reference_word`` None).

    >>> align_words("the cat sat", "the hat sat down")
    [('equal', 'the', 'the'), ('substitute', 'cat', 'hat'), ('equal', 'sat', 'sat'), \
('insert', None, 'down')]
    """
    # Optional dependency of the eval extra, needed only to score.
    import jiwer

    ref = normalize_text(reference).split()
    hyp = normalize_text(hypothesis).split()
    if not ref:
        return [("insert", None, word) for word in hyp]
    if not hyp:
        return [("delete", word, None) for word in ref]
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    ops = []
    for chunk in out.alignments[0]:
        r = ref[chunk.ref_start_idx:chunk.ref_end_idx]
        h = hyp[chunk.hyp_start_idx:chunk.hyp_end_idx]
        if chunk.type == "insert":
            ops += [("insert", None, w) for w in h]
        elif chunk.type == "delete":
            ops += [("delete", w, None) for w in r]
        else:  # equal / substitute: the same number of words on both sides
            ops += [(chunk.type, a, b) for a, b in zip(r, h, strict=True)]
    return ops
