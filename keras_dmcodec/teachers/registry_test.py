import keras
import pytest

from keras_dmcodec.teachers.registry import load_speech_teacher, load_text_teacher

once = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                          reason="loaders are tested per backend by their modules; runs once")


@once
def test_unknown_and_malformed_specs(tmp_path):
    with pytest.raises(ValueError, match="unknown speech teacher"):
        load_speech_teacher("wavlm")
    with pytest.raises(ValueError, match="a directory is needed"):
        load_speech_teacher("hubert:")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_speech_teacher(f"hubert:{tmp_path / 'nope'}")
    with pytest.raises(ValueError, match="unknown text teacher"):
        load_text_teacher("gpt2")
