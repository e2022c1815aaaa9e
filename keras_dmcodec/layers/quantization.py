"""Vector quantisation with EMA codebooks, and the residual vector quantiser (RVQ)."""

import keras
from keras import ops


def squared_distances(x, codebook):
    """Squared Euclidean distances ``[n, codebook_size]`` of rows ``x`` ``[n, d]`` to each
    codebook row, by the expansion the reference uses (||x||^2 - 2 x.c + ||c||^2), so
    exporters that pick the nearest code with their own argmin get the same codes."""
    return (
        ops.sum(ops.square(x), axis=1, keepdims=True)
        - 2.0 * ops.matmul(x, ops.transpose(codebook))
        + ops.expand_dims(ops.sum(ops.square(codebook), axis=1), 0)
    )


def nearest_code(x, codebook):
    """Index of the nearest (Euclidean) codebook row for each row of ``x`` ``[n, d]``."""
    return ops.cast(ops.argmin(squared_distances(x, codebook), axis=-1), "int32")


def sample_rows(samples, num, seed):
    """``num`` rows of ``samples``, without replacement while there are enough rows.

    A random permutation of the rows, cycled when ``num`` exceeds their count;
    works with dynamic row counts.
    """
    n = ops.shape(samples)[0]
    order = ops.argsort(keras.random.uniform((n,), seed=seed))
    picks = ops.mod(ops.arange(num, dtype="int32"), ops.cast(n, "int32"))
    return ops.take(samples, ops.take(order, picks, axis=0), axis=0)


def kmeans(samples, num_clusters, num_iters, initial_means):
    """Lloyd's k-means from ``initial_means``; empty clusters keep their previous mean.

    Returns ``(means, cluster_sizes)`` like the reference's ``kmeans``.
    """

    def step(_, state):
        means, _bins = state
        buckets = nearest_code(samples, means)
        onehot = ops.one_hot(buckets, num_clusters, dtype=samples.dtype)
        bins = ops.sum(onehot, axis=0)
        sums = ops.matmul(ops.transpose(onehot), samples)
        new_means = sums / ops.expand_dims(ops.maximum(bins, 1.0), 1)
        means = ops.where(ops.expand_dims(bins == 0, 1), means, new_means)
        return means, bins

    bins0 = ops.zeros((num_clusters,), dtype=samples.dtype)
    return ops.fori_loop(0, num_iters, step, (initial_means, bins0))


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class VectorQuantizer(keras.layers.Layer):
    """One codebook with Euclidean lookup and EMA updates (EnCodec / SpeechTokenizer).

    In training (``training=True``) the layer, once per call:
    1. initialises the codebook with k-means (``kmeans_iters`` iterations) on
       the first batch it sees, when ``kmeans_init``;
    2. assigns each vector its nearest code;
    3. updates ``cluster_size`` and ``embed_avg`` by EMA (``decay``) and sets
       the codebook to ``embed_avg`` divided by the Laplace-smoothed sizes;
    4. replaces codes whose EMA cluster size is below ``threshold_ema_dead_code``
       with random vectors of the batch.
    The codebook is non-trainable; the output passes gradients straight through
    (``x + stop_gradient(q - x)``) and the commitment loss is
    ``mean((stop_gradient(q) - x)**2)``.

    Differs from the reference in two training-only details (inference and
    converted checkpoints are unaffected):
    - there, replaced dead codes are overwritten in the same step by the EMA
      renormalisation, so replacement has no effect. Here a replaced code also
      gets ``embed_avg = v * t`` and ``cluster_size = t`` (``t`` the
      threshold), so the replacement persists;
    - there, k-means sets ``embed_avg`` to the bare means, so the first EMA
      step divides each code by roughly its cluster size. Here ``embed_avg``
      starts at ``means * cluster_size``, consistent with the EMA invariant.

    Args:
        codebook_size: int. Number of codes.
        decay: float. EMA decay.
        epsilon: float. Laplace smoothing constant.
        kmeans_init: bool. k-means initialisation on the first training batch
            (otherwise a uniform random codebook).
        kmeans_iters: int. k-means iterations.
        threshold_ema_dead_code: float. Dead-code threshold (0 disables).
        seed: int or None. Seed of the layer's random draws.

    Example:
    >>> vq = VectorQuantizer(codebook_size=16, kmeans_iters=5)
    >>> x = keras.random.normal((2, 10, 8))
    >>> q, codes, loss = vq(x, training=True)
    >>> tuple(codes.shape)
    (2, 10)
    """

    def __init__(
        self,
        codebook_size=1024,
        decay=0.99,
        epsilon=1e-5,
        kmeans_init=True,
        kmeans_iters=50,
        threshold_ema_dead_code=2.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.codebook_size = int(codebook_size)
        self.decay = float(decay)
        self.epsilon = float(epsilon)
        self.kmeans_init = bool(kmeans_init)
        self.kmeans_iters = int(kmeans_iters)
        self.threshold_ema_dead_code = float(threshold_ema_dead_code)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.dim = dim
        if self.kmeans_init:
            init = "zeros"
        else:
            init = keras.initializers.HeUniform(seed=self.seed)  # torch's kaiming_uniform_
        self.codebook = self.add_weight(
            name="codebook", shape=(self.codebook_size, dim), initializer=init, trainable=False,
            dtype="float32",
        )
        self.embed_avg = self.add_weight(
            name="embed_avg", shape=(self.codebook_size, dim), trainable=False, dtype="float32",
            initializer=keras.initializers.Constant(ops.convert_to_numpy(self.codebook)),
        )
        self.cluster_size = self.add_weight(
            name="cluster_size", shape=(self.codebook_size,), initializer="zeros",
            trainable=False, dtype="float32",
        )
        self.initialized = self.add_weight(
            name="initialized", shape=(), trainable=False, dtype="float32",
            initializer=keras.initializers.Constant(0.0 if self.kmeans_init else 1.0),
        )

    def encode(self, x):
        """Codes ``[...]`` (int32) of vectors ``x`` ``[..., dim]``."""
        flat = ops.reshape(x, (-1, self.dim))
        codes = nearest_code(ops.cast(flat, "float32"), self.codebook)
        return ops.reshape(codes, ops.shape(x)[:-1])

    def decode(self, codes):
        """Vectors ``[..., dim]`` of codes ``[...]``."""
        return ops.take(self.codebook, ops.cast(codes, "int32"), axis=0)

    def _ema_update(self, flat, active):
        """One EMA step on ``flat`` ``[n, dim]``; returns ``(quantized, codes)`` of this step."""
        k = self.codebook_size
        init_draw = sample_rows(flat, k, self.seed_generator)
        dead_draw = sample_rows(flat, k, self.seed_generator)
        state = (self.codebook.value, self.embed_avg.value, self.cluster_size.value,
                 self.initialized.value)

        if self.kmeans_init:
            def run_kmeans():
                means, bins = kmeans(flat, k, self.kmeans_iters, init_draw)
                # embed_avg = means * sizes keeps codebook == embed_avg / cluster_size.
                # The reference stores the bare means, which shrinks every code by
                # about its cluster size at the first EMA step.
                return means, means * ops.expand_dims(bins, 1), bins, ops.ones_like(state[3])

            def keep():
                return state

            codebook, embed_avg, cluster_size, initialized = ops.cond(
                state[3] > 0.5, keep, run_kmeans
            )
        else:
            codebook, embed_avg, cluster_size, initialized = state

        codes = nearest_code(flat, codebook)
        # Gather before any assign: on TF and torch, variable reads alias live storage.
        quantized = ops.take(codebook, codes, axis=0)
        onehot = ops.one_hot(codes, k, dtype=flat.dtype)
        cluster_size = cluster_size * self.decay + ops.sum(onehot, axis=0) * (1.0 - self.decay)
        embed_sum = ops.matmul(ops.transpose(onehot), flat)
        embed_avg = embed_avg * self.decay + embed_sum * (1.0 - self.decay)
        total = ops.sum(cluster_size)
        smoothed = (cluster_size + self.epsilon) / (total + k * self.epsilon) * total
        new_codebook = embed_avg / ops.expand_dims(smoothed, 1)

        if self.threshold_ema_dead_code > 0:
            t = self.threshold_ema_dead_code
            dead = ops.expand_dims(cluster_size < t, 1)
            new_codebook = ops.where(dead, dead_draw, new_codebook)
            embed_avg = ops.where(dead, dead_draw * t, embed_avg)
            cluster_size = ops.where(dead[:, 0], t, cluster_size)

        keep_old = ops.logical_not(active)
        self.codebook.assign(ops.where(keep_old, state[0], new_codebook))
        self.embed_avg.assign(ops.where(keep_old, state[1], embed_avg))
        self.cluster_size.assign(ops.where(keep_old, state[2], cluster_size))
        self.initialized.assign(ops.where(keep_old, state[3], initialized))
        return quantized, codes

    def call(self, inputs, training=False, active=None):
        """Quantises ``inputs`` ``[..., dim]``.

        Args:
            inputs: tensor ``[..., dim]``.
            training: bool. Update the codebook (EMA, k-means, dead codes).
            active: optional boolean scalar tensor; when False the codebook
                state is left unchanged (quantiser dropout).

        Returns:
            ``(quantized, codes, commitment_loss)``: straight-through quantised
            vectors, int32 codes ``[...]`` and a scalar loss.
        """
        x = ops.cast(inputs, "float32")
        if training:
            flat = ops.stop_gradient(ops.reshape(x, (-1, self.dim)))
            if active is None:
                active = ops.convert_to_tensor(True)
            quantized, codes = self._ema_update(flat, active)
            codes = ops.reshape(codes, ops.shape(x)[:-1])
            quantized = ops.reshape(quantized, ops.shape(x))
        else:
            codes = self.encode(x)
            quantized = self.decode(codes)
        commitment = ops.mean(ops.square(ops.stop_gradient(quantized) - x))
        quantized = x + ops.stop_gradient(quantized - x)
        return ops.cast(quantized, inputs.dtype), codes, commitment

    def compute_output_spec(self, inputs, training=False, active=None):
        return (
            keras.KerasTensor(inputs.shape, inputs.dtype),
            keras.KerasTensor(inputs.shape[:-1], "int32"),
            keras.KerasTensor((), "float32"),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            codebook_size=self.codebook_size,
            decay=self.decay,
            epsilon=self.epsilon,
            kmeans_init=self.kmeans_init,
            kmeans_iters=self.kmeans_iters,
            threshold_ema_dead_code=self.threshold_ema_dead_code,
            seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_dmcodec")
class ResidualVectorQuantizer(keras.layers.Layer):
    """Residual vector quantiser: ``n_q`` codebooks, each quantising the previous residual.

    ``encode`` / ``decode`` work with codes ``[batch, n_q, frames]``; any
    ``n_q`` from 1 to the layer's ``n_q`` may be used at inference (the first
    layers are the coarse ones), giving ``n_q * log2(codebook_size) * frame_rate``
    bit/s. In training, ``quantizer_dropout`` is the probability that a batch
    uses a random number of layers, uniform in ``[1, n_q]`` (SoundStream style,
    for variable bitrate; the reference trains without it): inactive layers
    contribute nothing to the output or the loss and their codebooks are left
    unchanged.

    Args:
        n_q: int. Number of codebooks.
        codebook_size: int. Codes per codebook.
        decay: float. EMA decay.
        epsilon: float. Laplace smoothing constant.
        kmeans_init: bool. k-means initialisation on the first training batch.
        kmeans_iters: int. k-means iterations.
        threshold_ema_dead_code: float. Dead-code threshold.
        quantizer_dropout: float. Probability of a random ``n_q`` per training batch.
        seed: int or None. Seed of the random draws.

    Example:
    >>> rvq = ResidualVectorQuantizer(n_q=4, codebook_size=32, kmeans_iters=2)
    >>> out = rvq(keras.random.normal((2, 10, 8)), training=True)
    >>> tuple(out["codes"].shape)
    (2, 4, 10)
    >>> tuple(rvq.encode(keras.random.normal((2, 10, 8)), n_q=2).shape)
    (2, 2, 10)
    """

    def __init__(
        self,
        n_q=8,
        codebook_size=1024,
        decay=0.99,
        epsilon=1e-5,
        kmeans_init=True,
        kmeans_iters=50,
        threshold_ema_dead_code=2.0,
        quantizer_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if n_q < 1:
            raise ValueError(f"n_q must be >= 1, got {n_q}")
        if not 0.0 <= quantizer_dropout <= 1.0:
            raise ValueError(f"quantizer_dropout must be in [0, 1], got {quantizer_dropout}")
        self.n_q = int(n_q)
        self.codebook_size = int(codebook_size)
        self.decay = float(decay)
        self.epsilon = float(epsilon)
        self.kmeans_init = bool(kmeans_init)
        self.kmeans_iters = int(kmeans_iters)
        self.threshold_ema_dead_code = float(threshold_ema_dead_code)
        self.quantizer_dropout = float(quantizer_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.quantizers = [
            VectorQuantizer(
                codebook_size=self.codebook_size,
                decay=self.decay,
                epsilon=self.epsilon,
                kmeans_init=self.kmeans_init,
                kmeans_iters=self.kmeans_iters,
                threshold_ema_dead_code=self.threshold_ema_dead_code,
                seed=None if seed is None else seed + 1 + i,
                name=f"vq_{i}",
            )
            for i in range(self.n_q)
        ]

    def build(self, input_shape):
        for vq in self.quantizers:
            if not vq.built:
                vq.build(input_shape)

    def check_n_q(self, n_q):
        """``n_q`` as an int in ``[1, self.n_q]`` (None: all codebooks); ``ValueError`` else."""
        if n_q is None:
            return self.n_q
        if isinstance(n_q, bool) or int(n_q) != n_q or not 1 <= int(n_q) <= self.n_q:
            raise ValueError(f"n_q must be an integer in [1, {self.n_q}], got {n_q!r}")
        return int(n_q)

    def encode(self, x, n_q=None):
        """Codes ``[batch, n_q, frames]`` (int32) of latents ``x`` ``[batch, frames, dim]``."""
        n_q = self.check_n_q(n_q)
        residual = ops.cast(x, "float32")
        codes = []
        for vq in self.quantizers[:n_q]:
            c = vq.encode(residual)
            residual = residual - vq.decode(c)
            codes.append(c)
        return ops.stack(codes, axis=1)

    def decode(self, codes):
        """Latents ``[batch, frames, dim]``: the sum of the codebook vectors of ``codes``."""
        n_q = codes.shape[1]
        self.check_n_q(n_q)
        out = 0.0
        for i in range(n_q):
            out = out + self.quantizers[i].decode(codes[:, i])
        return out

    def call(self, inputs, n_q=None, training=False):
        """Quantises latents ``[batch, frames, dim]``.

        Returns a dict: ``quantized`` (sum over the used layers, straight-through),
        ``codes`` ``[batch, n_q, frames]``, ``layer_outputs`` (list of each
        layer's quantised output), ``commitment_loss`` (mean over used layers)
        and ``n_q_used`` (scalar; random under quantiser dropout).
        """
        n_q = self.check_n_q(n_q)
        residual = inputs
        quantized_out = 0.0
        losses, codes, outputs = [], [], []
        if training and self.quantizer_dropout > 0 and n_q > 1:
            draw = keras.random.uniform((2,), seed=self.seed_generator)
            random_n = ops.minimum(ops.floor(draw[1] * n_q) + 1.0, float(n_q))
            n_used = ops.where(draw[0] < self.quantizer_dropout, random_n, float(n_q))
        else:
            n_used = ops.convert_to_tensor(float(n_q))
        for i, vq in enumerate(self.quantizers[:n_q]):
            active = n_used > float(i)
            q, c, loss = vq(residual, training=training, active=active)
            residual = residual - q
            mask = ops.cast(active, q.dtype)
            quantized_out = quantized_out + q * mask
            losses.append(loss * ops.cast(active, "float32"))
            codes.append(c)
            outputs.append(q)
        commitment = ops.sum(ops.stack(losses)) / n_used
        return {
            "quantized": quantized_out,
            "codes": ops.stack(codes, axis=1),
            "layer_outputs": outputs,
            "commitment_loss": commitment,
            "n_q_used": n_used,
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            n_q=self.n_q,
            codebook_size=self.codebook_size,
            decay=self.decay,
            epsilon=self.epsilon,
            kmeans_init=self.kmeans_init,
            kmeans_iters=self.kmeans_iters,
            threshold_ema_dead_code=self.threshold_ema_dead_code,
            quantizer_dropout=self.quantizer_dropout,
            seed=self.seed,
        )
        return config
