"""HubertEncoder serialization (its numerics are checked against transformers in convert_test)."""

import keras
import numpy as np

from keras_dmcodec.teachers.hubert import HubertEncoder
from keras_dmcodec.teachers.hubert.testing import TINY, VARIANTS


def test_encoder_saves_and_reloads(tmp_path):
    encoder = HubertEncoder(**TINY, **VARIANTS["stable"])
    encoder.build()
    path = tmp_path / "encoder.keras"
    encoder.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, HubertEncoder)
    assert restored.get_config() == encoder.get_config()
    # Same class, config and weights give the same outputs; the parity tests run the model.
    assert [w.path for w in restored.weights] == [w.path for w in encoder.weights]
    for ours, theirs in zip(restored.get_weights(), encoder.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
