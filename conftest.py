"""Shared pytest fixtures. The backend comes from KERAS_BACKEND (tools/run_tests.sh loops)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Test files that take longest (measured with tools/run_tests.sh --durations), slowest first.
# pytest-xdist (--dist loadfile --no-loadscope-reorder) hands out files in collection order,
# so starting these first keeps one long file from running alone at the end of the run. A
# file missing from this list only loses its place in the queue.
SLOWEST_FILES = (
    "keras_dmcodec/models/trainer_test.py",
    "training/train_test.py",
    "keras_dmcodec/pipelines/tokenize_test.py",
    "keras_dmcodec/models/dmcodec_test.py",
    "keras_dmcodec/convert/speechtokenizer_test.py",
    "keras_dmcodec/evaluation/runner_test.py",
    "tests/test_cli.py",
    "tests/test_export.py",
    "tests/test_distributed.py",
    "keras_dmcodec/inference_test.py",
    "tests/test_cross_backend.py",
    "keras_dmcodec/layers/discriminators_test.py",
    "tests/test_default_model.py",
)


def pytest_report_header(config):
    return f"keras backend: {keras.backend.backend()}"


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(SLOWEST_FILES)}
    root = str(config.rootpath) + os.sep

    def file_rank(item):
        path = str(item.path)
        path = path[len(root):] if path.startswith(root) else path
        return rank.get(path.replace(os.sep, "/"), len(rank))

    items.sort(key=file_rank)  # stable: the order within a file is unchanged


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace["keras"] = keras
    doctest_namespace["np"] = np


@pytest.fixture(autouse=True, scope="module")
def _seed_module():
    # Module fixtures are set up before the per-test seed below: seeding here keeps the
    # weights they draw independent of which files ran earlier in the same worker.
    keras.utils.set_random_seed(1234)
    yield


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
