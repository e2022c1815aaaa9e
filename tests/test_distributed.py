"""Multi-device training on existing engines, with two virtual CPU devices.

JAX: ``keras.distribution.DataParallel`` (``XLA_FLAGS=--xla_force_host_platform_device_count=2``).
TensorFlow: ``tf.distribute.MirroredStrategy`` over two logical CPUs. Each runs the real entry
point in a subprocess (device counts are fixed when the backend starts).
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import soundfile as sf

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from training.train import train
    config = json.loads(sys.argv[1])
    result = train(config, sys.argv[2], verbose=0)
    print("STEP", result["step"], "LOSS", result["history"]["loss"][-1])
    """
)

CONFIG = {
    "model": {"n_filters": 2, "dimension": 8, "semantic_dimension": 0, "n_q": 2,
              "codebook_size": 8, "lstm_layers": 1, "kmeans_iters": 2},
    "discriminators": {"msd": {"num_scales": 1, "channels": [4] * 7}},
    "loss": {"mel_weights": [45.0, 1.0]},
    "data": {"segment_seconds": 0.2, "batch_size": 2},
    "optimizer": {"learning_rate": 1e-3},
    "train": {"steps": 2, "steps_per_epoch": 1, "checkpoint_every": 1, "seed": 7},
}


def test_two_device_data_parallel_training(tmp_path):
    backend = keras.backend.backend()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(2):
        sf.write(corpus / f"u{i}.wav", np.random.default_rng(i).normal(size=4000) * 0.1, 16000)
    config = dict(CONFIG, data=dict(CONFIG["data"], train=str(corpus)))
    env = dict(os.environ)
    if backend == "jax":
        config["distribution"] = "data_parallel"
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        expected = "data parallel over 2 devices"
    elif backend == "tensorflow":
        config["distribution"] = "mirrored"
        config["devices"] = ["/cpu:0", "/cpu:1"]
        expected = "mirrored: 2 replicas"
    else:
        from training.train import _distribution_scope

        with pytest.raises(ValueError, match="needs the JAX backend"):
            _distribution_scope({"distribution": "data_parallel"})
        return
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(config), str(tmp_path / "run")],
        env=env, capture_output=True, text=True, timeout=600,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected in result.stdout
    step_line = [line for line in result.stdout.splitlines() if line.startswith("STEP")][-1]
    assert step_line.split()[1] == "2" and np.isfinite(float(step_line.split()[3]))
    assert (tmp_path / "run" / "checkpoints" / "step-2").is_dir()
