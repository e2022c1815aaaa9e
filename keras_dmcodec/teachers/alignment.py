"""Text-token features to codec frames: the reference's positional pairing, or word alignment.

Both return ``(features float32 [num_frames, dim], mask float32 [num_frames])``
for one utterance; ``mask`` is 1 where the frame has a teacher target.

- ``positional`` (reference, DESIGN.md "Two defects" 2): token ``i`` <-> codec
  frame ``i``. In DM-Codec ``extract_rep.py`` the BERT input is padded with
  [PAD] to the number of wav2vec2 CTC frames (``max_length=logits.shape[1]``)
  and all those positions, [PAD] states included, become targets; the trainer
  (``trainer.py``, ``d_axis_distill_loss``) then pairs them with codec frames by
  index. ``reference_num_tokens`` gives that CTC frame count.
- ``aligned``: word timings (ASR word timestamps, CTC frames, or ground truth
  timed against them) map each codec frame to the word spoken at its centre;
  the frame takes the mean of that word's token features (``word_feature=
  "mean"``, default) or its first word piece's (``"first"``). Frames outside
  every word (silence, pauses, or words the tokenizer dropped) are masked out
  rather than given [CLS]/[SEP] features: nothing was said there, and a masked
  frame keeps the loss from teaching the codec a text state for silence.
"""

import numpy as np

HOP = 320
SAMPLE_RATE = 16000
MODES = ("positional", "aligned")


def codec_frames(num_samples, hop=HOP):
    """Codec frames for ``num_samples`` samples: ``ceil(num_samples / hop)``."""
    return -(-int(num_samples) // hop)


def reference_num_tokens(num_samples):
    """The reference's BERT length: wav2vec2-base CTC frames, ``floor((n - 400) / 320) + 1``.

    (The wav2vec2 convolution stack, kernels 10,3,3,3,3,2,2 and strides 5,2,2,2,2,2,2,
    has a 400-sample receptive field and a 320-sample hop.)

    Example:
    >>> reference_num_tokens(48000), codec_frames(48000)
    (149, 150)
    """
    return max((int(num_samples) - 400) // HOP + 1, 0)


def positional(token_features, num_frames, keep=None):
    """Token ``i`` -> frame ``i`` (the reference's pairing).

    Args:
        token_features: float ``[n_tokens, dim]``.
        num_frames: int. Codec frames of the utterance.
        keep: optional bool ``[n_tokens]``; tokens with False are masked out
            (e.g. ``[PAD]`` states, which the reference keeps as targets).

    Example:
    >>> f, m = positional(np.ones((3, 2)), 5)
    >>> f.shape, m.tolist()
    ((5, 2), [1.0, 1.0, 1.0, 0.0, 0.0])
    """
    token_features = np.asarray(token_features, np.float32)
    if token_features.ndim != 2:
        raise ValueError(f"token features must be [tokens, dim], got {token_features.shape}")
    n = min(len(token_features), int(num_frames))
    features = np.zeros((int(num_frames), token_features.shape[1]), np.float32)
    mask = np.zeros(int(num_frames), np.float32)
    features[:n] = token_features[:n]
    mask[:n] = 1.0
    if keep is not None:
        keep = np.asarray(keep, bool)[:n]
        mask[:n] *= keep
        features[:n][~keep] = 0.0
    return features, mask


def word_features(token_features, word_index, num_words, word_feature="mean"):
    """``[num_words, dim]`` features per word and a bool ``[num_words]`` "has tokens"."""
    token_features = np.asarray(token_features, np.float32)
    word_index = np.asarray(word_index)
    out = np.zeros((num_words, token_features.shape[1]), np.float32)
    present = np.zeros(num_words, bool)
    for w in range(num_words):
        rows = np.flatnonzero(word_index == w)
        if rows.size:
            present[w] = True
            out[w] = token_features[rows].mean(0) if word_feature == "mean" else token_features[
                rows[0]]
    return out, present


def aligned(token_features, word_index, words, num_frames, frame_rate=SAMPLE_RATE / HOP,
            word_feature="mean"):
    """Each frame takes the features of the word spoken at its centre; other frames masked.

    Frame ``j`` covers ``[j, j + 1) / frame_rate`` seconds; it belongs to the word
    whose ``[start, end)`` holds its centre. A word too short to hold any frame
    centre still gets the frame its midpoint falls in, if that frame is free, so
    that every timed word is distilled.

    Args:
        token_features: float ``[n_tokens, dim]`` (``TextTeacher.token_features``).
        word_index: int ``[n_tokens]``, the word of each token (-1: special tokens).
        words: list of ``Word`` with ``start``/``end`` seconds (untimed words are skipped).
        num_frames: int. Codec frames of the utterance.
        frame_rate: float. Codec frames per second (50).
        word_feature: "mean" (mean of the word's tokens) or "first" (first word piece).

    Example:
    >>> from keras_dmcodec.teachers.transcripts import Word
    >>> tokens = np.array([[0.0], [1.0], [2.0], [4.0], [0.0]])  # [CLS] a b ##c [SEP]
    >>> f, m = aligned(tokens, [-1, 0, 1, 1, -1], [Word("a", 0.0, 0.04), Word("bc", 0.06, 0.1)],
    ...                num_frames=6)
    >>> f[:, 0].tolist(), m.tolist()
    ([1.0, 1.0, 0.0, 3.0, 3.0, 0.0], [1.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    """
    if word_feature not in ("mean", "first"):
        raise ValueError(f"word_feature must be 'mean' or 'first', got {word_feature!r}")
    token_features = np.asarray(token_features, np.float32)
    if token_features.ndim != 2 or len(token_features) != len(word_index):
        raise ValueError(f"token features {token_features.shape} and word_index "
                         f"({len(word_index)}) disagree")
    num_frames = int(num_frames)
    per_word, present = word_features(token_features, word_index, len(words), word_feature)
    owner = np.full(num_frames, -1)
    centres = (np.arange(num_frames) + 0.5) / frame_rate
    for w, word in enumerate(words):
        if not (present[w] and word.timed) or word.end < word.start:
            continue
        inside = (centres >= word.start) & (centres < word.end)
        if not inside.any():
            j = int((word.start + word.end) / 2 * frame_rate)
            if 0 <= j < num_frames and owner[j] < 0:
                owner[j] = w
            continue
        owner[inside] = w
    mask = (owner >= 0).astype(np.float32)
    features = np.zeros((num_frames, token_features.shape[1]), np.float32)
    features[owner >= 0] = per_word[owner[owner >= 0]]
    return features, mask


def expand_to_frames(mode, token_features, tokens, word_index, transcript, num_frames,
                     word_feature="mean", keep_padding=True):
    """Dispatches ``positional`` / ``aligned``; returns ``(features, mask, mode_used)``.

    ``aligned`` on a transcript without any timed word falls back to
    ``positional`` (``mode_used`` says so, for the cache's report).
    ``keep_padding=False`` masks [PAD] positions in positional mode.
    """
    if mode not in MODES:
        raise ValueError(f"alignment must be one of {MODES}, got {mode!r}")
    if mode == "aligned" and transcript is not None and any(w.timed for w in transcript.words):
        features, mask = aligned(token_features, word_index, transcript.words, num_frames,
                                 word_feature=word_feature)
        return features, mask, "aligned"
    keep = None if keep_padding else np.array([t != "[PAD]" for t in tokens])
    features, mask = positional(token_features, num_frames, keep=keep)
    return features, mask, "positional" if mode == "positional" else "positional (no timings)"
