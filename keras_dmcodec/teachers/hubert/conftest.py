import pytest

from keras_dmcodec.teachers.hubert.testing import save_ctc_models, save_hubert_models


@pytest.fixture(scope="session")
def hf_models(tmp_path_factory):
    """Tiny random transformers models saved as HF directories, with their reference outputs."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("hf")
    return {**save_hubert_models(root), **save_ctc_models(root)}
