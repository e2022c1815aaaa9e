"""Tiny random transformers HuBERT / wav2vec 2.0 checkpoints and their outputs, for parity tests.

Used by the tests beside this module and by ``keras_dmcodec/asr/ctc_test.py``. Each
model is saved as a Hugging Face directory, with the reference outputs that
transformers computes for ``random_audio()``.
"""

import json

import numpy as np

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            conv_dim=(8, 12, 12, 16, 16, 16, 16), num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2)
VARIANTS = {
    # Base models: GroupNorm on the first conv, post-LN transformer.
    "base": dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False),
    # Large / stable-layer-norm models: LayerNorm after every conv, pre-LN + final LayerNorm.
    "stable": dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True),
}
VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N"]
ATOL = 1e-4


def random_audio():
    """Two 0.5 s utterances of noise, float32 ``[2, 8000]``."""
    return (0.1 * np.random.default_rng(0).standard_normal((2, 8000))).astype("float32")


def _torch_outputs(model, audio):
    import torch  # heavy optional dependency: the reference implementation

    with torch.no_grad():
        return model(torch.from_numpy(audio), output_hidden_states=True)


def _save_bin_with_legacy_weight_norm(model, directory):
    """pytorch_model.bin with torch.nn.utils.weight_norm names (weight_g / weight_v), as in
    the original facebook/hubert-base-ls960 checkpoint."""
    import torch  # heavy optional dependency: the reference implementation

    state = {}
    for name, value in model.state_dict().items():
        name = name.replace("parametrizations.weight.original0", "weight_g")
        name = name.replace("parametrizations.weight.original1", "weight_v")
        state[name] = value.clone()
    directory.mkdir()
    torch.save(state, directory / "pytorch_model.bin")
    model.config.to_json_file(directory / "config.json")


def save_hubert_models(root):
    """``HubertModel`` directories ``hubert_base``, ``hubert_stable``, ``hubert_base_bin``.

    Returns ``{name: {"path", "hidden", "last", "input"}}``.
    """
    import torch  # heavy optional dependencies: the reference implementation
    import transformers

    audio = random_audio()
    models = {}
    for variant, options in VARIANTS.items():
        torch.manual_seed(0)
        model = transformers.HubertModel(transformers.HubertConfig(**TINY, **options)).eval()
        model.save_pretrained(root / f"hubert_{variant}")
        out = _torch_outputs(model, audio)
        models[f"hubert_{variant}"] = dict(
            path=root / f"hubert_{variant}", hidden=[h.numpy() for h in out.hidden_states],
            last=out.last_hidden_state.numpy(), input=audio)
        if variant == "base":
            _save_bin_with_legacy_weight_norm(model, root / "hubert_base_bin")
            models["hubert_base_bin"] = dict(models["hubert_base"], path=root / "hubert_base_bin")
    return models


def save_ctc_models(root):
    """``Wav2Vec2ForCTC`` directories ``w2v_ctc_base``, ``w2v_ctc_stable`` (+ vocab, extractor).

    Returns ``{name: {"path", "hidden", "logits", "input", "texts", "word_offsets"}}``:
    the greedy texts and word offsets (in frames) of ``Wav2Vec2CTCTokenizer.decode``.
    """
    import torch  # heavy optional dependencies: the reference implementation
    import transformers

    audio = random_audio()
    models = {}
    for variant, options in VARIANTS.items():
        torch.manual_seed(1)
        config = transformers.Wav2Vec2Config(**TINY, **options, vocab_size=len(VOCAB))
        ctc = transformers.Wav2Vec2ForCTC(config).eval()
        with torch.no_grad():  # confident logits, so greedy ids do not hinge on rounding
            ctc.lm_head.weight.mul_(30.0)
        path = root / f"w2v_ctc_{variant}"
        ctc.save_pretrained(path)
        (root / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
        tokenizer = transformers.Wav2Vec2CTCTokenizer(str(root / "vocab.json"))
        tokenizer.save_pretrained(path)
        extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=True)
        extractor.save_pretrained(path)
        normalized = extractor(list(audio), sampling_rate=16000,
                               return_tensors="np").input_values.astype("float32")
        out = _torch_outputs(ctc, normalized)
        ids = out.logits.numpy().argmax(-1)
        decoded = [tokenizer.decode(row, output_word_offsets=True) for row in ids]
        models[f"w2v_ctc_{variant}"] = dict(
            path=path, hidden=[h.numpy() for h in out.hidden_states], logits=out.logits.numpy(),
            input=normalized, texts=[d.text for d in decoded],
            word_offsets=[[(w["word"], int(w["start_offset"]), int(w["end_offset"]))
                           for w in d.word_offsets] for d in decoded])
    return models
