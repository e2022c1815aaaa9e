import keras
import numpy as np
import pytest

from keras_dmcodec.teachers.alignment import (
    aligned,
    codec_frames,
    expand_to_frames,
    positional,
    reference_num_tokens,
)
from keras_dmcodec.teachers.transcripts import Transcript, Word

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="backend-independent; runs once")


def _tokens():
    # [CLS] the fox jump ##s [SEP] [PAD] [PAD]; feature = its position, 2 channels
    feats = np.stack([np.arange(8.0), -np.arange(8.0)], axis=1)
    toks = ["[CLS]", "the", "fox", "jump", "##s", "[SEP]", "[PAD]", "[PAD]"]
    return feats, toks, np.array([-1, 0, 1, 2, 2, -1, -1, -1])


def test_frame_counts():
    assert codec_frames(48000) == 150 and codec_frames(48001) == 151 and codec_frames(0) == 0
    # wav2vec2-base logits for 3 s: 149 frames (what extract_rep.py pads BERT to)
    assert reference_num_tokens(48000) == 149 and reference_num_tokens(399) == 0


def test_positional_pairs_token_i_with_frame_i():
    feats, toks, _ = _tokens()
    f, m = positional(feats, 10)
    np.testing.assert_array_equal(f[:8], feats)
    assert m.tolist() == [1] * 8 + [0] * 2 and not f[8:].any()
    f, m = positional(feats, 5)  # more tokens than frames: truncated
    np.testing.assert_array_equal(f, feats[:5])
    f, m = positional(feats, 10, keep=[t != "[PAD]" for t in toks])
    assert m.tolist() == [1] * 6 + [0] * 4 and not f[6:].any()
    with pytest.raises(ValueError, match="tokens, dim"):
        positional(np.zeros(3), 4)


def test_aligned_frames_take_their_words_features():
    feats, _, word_index = _tokens()
    words = [Word("the", 0.0, 0.04), Word("fox", 0.1, 0.16), Word("jumps", 0.16, 0.2)]
    f, m = aligned(feats, word_index, words, num_frames=12)
    # frames 0-1: "the" (token 1); 2-4 silence; 5-7 "fox" (2); 8-9 "jumps" mean(3, 4)
    assert m.tolist() == [1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0]
    assert f[:, 0].tolist() == [1, 1, 0, 0, 0, 2, 2, 2, 3.5, 3.5, 0, 0]
    f, _ = aligned(feats, word_index, words, num_frames=12, word_feature="first")
    assert f[8, 0] == 3
    # a word shorter than a frame still gets the frame of its midpoint; untimed words none
    f, m = aligned(feats, word_index, [Word("the", 0.021, 0.029), Word("fox")], num_frames=3)
    assert m.tolist() == [0, 1, 0] and f[1, 0] == 1
    # words past the end of the audio are clipped
    f, m = aligned(feats, word_index, [Word("the", 0.0, 5.0)], num_frames=4)
    assert m.tolist() == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="word_feature"):
        aligned(feats, word_index, words, 4, word_feature="last")
    with pytest.raises(ValueError, match="disagree"):
        aligned(feats, word_index[:3], words, 4)


def test_expand_to_frames_dispatch_and_fallback():
    feats, toks, word_index = _tokens()
    timed = Transcript("the fox jumps", [Word("the", 0.0, 0.04), Word("fox", 0.1, 0.16),
                                         Word("jumps", 0.16, 0.2)])
    f, m, used = expand_to_frames("aligned", feats, toks, word_index, timed, 12)
    assert used == "aligned" and m.sum() == 7
    f, m, used = expand_to_frames("aligned", feats, toks, word_index,
                                  Transcript.from_text("the fox jumps"), 12)
    assert used == "positional (no timings)" and m.sum() == 8
    f, m, used = expand_to_frames("positional", feats, toks, word_index, timed, 12,
                                  keep_padding=False)
    assert used == "positional" and m.sum() == 6
    with pytest.raises(ValueError, match="alignment must be one of"):
        expand_to_frames("nearest", feats, toks, word_index, timed, 12)
