"""Shared pytest fixtures. The backend comes from KERAS_BACKEND (tools/run_tests.sh loops)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_report_header(config):
    return f"keras backend: {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace["keras"] = keras
    doctest_namespace["np"] = np


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield


TINY_CODEC = dict(
    n_filters=4,
    dimension=16,
    semantic_dimension=8,
    n_q=4,
    codebook_size=32,
    lstm_layers=1,
    kmeans_iters=3,
)


@pytest.fixture
def tiny_config():
    return dict(TINY_CODEC)
