"""Compiled inference functions whose time axis may take any length, per backend.

``DMCodec.encode``/``decode`` must not compile a new graph for every clip length. What
that takes differs by backend, so it is decided here, in one place:

- TensorFlow: one ``tf.function`` traced once with unknown batch and time sizes
  (``input_signature``), so every length runs the same graph. (Keras's own predict
  function traces the first shape concretely and retraces a relaxed graph later, and
  the two round differently: codes would depend on which lengths came first.)
- JAX: XLA compiles per static shape, so callers pad to a few bucketed lengths
  (``bucket_frames``) and run Keras's jitted predict function.
- torch: eager; any length runs without compiling, so no padding is needed.
"""

import math
import os
from pathlib import Path

import keras
import numpy as np

BUCKETS_PER_OCTAVE = 4
MIN_BUCKET_FRAMES = 16


def pads_to_buckets():
    """Whether this backend compiles per input shape (JAX), so inputs should be bucketed."""
    return keras.backend.backend() == "jax"


def bucket_frames(frames, per_octave=BUCKETS_PER_OCTAVE, minimum=MIN_BUCKET_FRAMES):
    """The padded size for ``frames``: at most ``1 + 1 / per_octave`` times larger, from a
    ladder with ``per_octave`` sizes per doubling (16, 20, 24, 28, 32, 40, ...)."""
    frames = int(frames)
    if frames <= minimum:
        return minimum
    octave = 2 ** int(math.floor(math.log2(frames - 1)))
    step = max(1, octave // per_octave)
    return -(-frames // step) * step


def bucket_batch(batch):
    """The padded batch size on bucketing backends: the next power of two."""
    return 1 << max(0, int(batch) - 1).bit_length()


def shape_agnostic_function(fn, signature):
    """``fn`` compiled once for inputs of any batch and time size, or None on backends
    that do not need it (see the module docstring).

    Args:
        fn: a function of backend tensors returning one tensor.
        signature: list of ``(shape, dtype)`` per argument, ``None`` for unknown sizes.

    Returns:
        A callable on numpy arrays returning a numpy array, or None.
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf  # deferred: backend-specific

    specs = [tf.TensorSpec(shape, dtype) for shape, dtype in signature]
    compiled = tf.function(fn, input_signature=specs, reduce_retracing=False)

    def run(*arrays):
        return np.asarray(compiled(*[tf.convert_to_tensor(a) for a in arrays]))

    run.traces = compiled.experimental_get_tracing_count  # 1 whatever the lengths
    return run


def compiled_step(fn):
    """``fn`` (a function of tensors, or nests of them, that only reads model variables)
    compiled for repeated calls, as the backend compiles best: ``jax.jit`` (one program per
    input shape; weights become constants of the program), ``tf.function`` (one graph for
    every time size), and on torch the eager function under ``torch.no_grad()`` (no
    autograd graph recorded per call). For streaming steps, called once per chunk.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax  # deferred: backend-specific

        return jax.jit(fn)
    if backend == "tensorflow":
        import tensorflow as tf  # deferred: backend-specific

        return tf.function(fn, reduce_retracing=True)
    if backend == "torch":
        import torch  # deferred: backend-specific

        def run(*args):
            with torch.no_grad():
                return fn(*args)

        return run
    return fn


def default_compilation_cache():
    """``$XDG_CACHE_HOME/keras_dmcodec/jax`` (``~/.cache/keras_dmcodec/jax`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "keras_dmcodec" / "jax"


def use_persistent_compilation_cache(directory=None):
    """On JAX, keeps compiled programs on disk, so that later processes (each ``dmcodec``
    command is one) read them back instead of compiling every bucket size again. Sets
    ``JAX_COMPILATION_CACHE_DIR`` too, so that the processes it starts (local Ray workers)
    share the cache, and keeps programs of any compile time (unless
    ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` is set).

    ``JAX_COMPILATION_CACHE_DIR``, when set, wins. Does nothing on other backends or when the
    directory cannot be created. Returns the directory in use, or None.

    Example:

    >>> use_persistent_compilation_cache("/tmp/cache")  # doctest: +SKIP
    PosixPath('/tmp/cache')
    """
    if keras.backend.backend() != "jax":
        return None
    import jax  # deferred: backend-specific

    if not os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"):
        # Keep small programs too (JAX's default keeps those that took >= 1 s to compile):
        # the ~100 eager weight initialisers of a model build compile in ~90 ms each, 9 s of
        # a 15 s model load on this CPU, in every process. Processes started from here
        # (tokenize-corpus's local Ray workers) inherit the environment, which JAX reads
        # when it is imported.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    directory = Path(directory or default_compilation_cache()).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(directory)
    return directory
