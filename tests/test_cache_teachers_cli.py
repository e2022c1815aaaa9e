"""``dmcodec cache-teachers`` end to end (the cache: keras_dmcodec/teachers/cache_test.py)."""

import shutil

import keras
import numpy as np
import pytest

from keras_dmcodec import cli
from keras_dmcodec.teachers.alignment import reference_num_tokens
from keras_dmcodec.teachers.cache import TeacherCache
from keras_dmcodec.teachers.cache_test import SPEECH, TEXTS, tiny_teachers

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="backend-independent; runs once")


def test_cache_teachers_command_with_a_keras_hub_preset(tmp_path, capsys):
    """The command end to end, with ``--lm bert:DIR`` on a keras-hub preset directory."""
    _, lm = tiny_teachers()
    preset = tmp_path / "tiny_bert_preset"
    lm.backbone.save_to_preset(preset)
    lm.tokenizer.save_to_preset(preset)
    data = tmp_path / "speech"
    shutil.copytree(SPEECH / "101", data / "101")
    args = ["cache-teachers", "--data", str(data), "--out", str(tmp_path / "c"), "--lm",
            f"bert:{preset}", "--alignment", "positional", "--layer", "avg"]
    assert cli.main(args) == 0
    assert "cached 1 utterance(s)" in capsys.readouterr().out
    assert cli.main(args) == 0
    assert "0 utterance(s), 1 already cached" in capsys.readouterr().out
    got = TeacherCache(tmp_path / "c").load(data / "101" / "1" / "101-1-0000.flac")
    n = reference_num_tokens(got["num_samples"])
    expected = lm.token_features([TEXTS["101-1-0000"]], pad_to=n)[0][0]
    np.testing.assert_allclose(got["lm_features"][:n], expected, atol=5e-3)  # float16 cache
    assert got["lm_features"].shape[1] == 12 and "sm_features" not in got
    assert cli.main(args[:-2] + ["--layer", "x"]) == 1
    assert "layer must be" in capsys.readouterr().err
