"""Helpers for tests that compare codes from two compiled paths (graph vs eager, Keras vs
an exported runtime, one backend vs another).

A nearest-codebook search is discontinuous: where a frame's two best codes are within
float32 rounding of each other, any change of kernel, thread count or instruction set (AVX2
vs AVX-512 oneDNN kernels) may pick either, and a flip at one RVQ layer changes every later
layer of that frame. Small random test models have such ties. Exact code equality is
therefore not a property two compiled paths can promise; "equal except at ties" is, and is
what these helpers check.
"""

import numpy as np
from keras import ops


def _as_numpy(x):
    return np.asarray(ops.convert_to_numpy(x), np.float64)


def _latents(model, audio):
    """``model``'s encoder output for ``audio`` (``[batch, samples]``), float64."""
    return _as_numpy(model.encoder(model._as_channels_last(ops.convert_to_tensor(audio))))


def untied_frames(model, audio, margin=1e-4):
    """Frames of one clip whose first-layer nearest code wins by more than float32 rounding.

    The distance ``|x|^2 - 2 x.c + |c|^2`` carries an error of about ``eps * (|x|^2 + |c|^2)``
    in float32, so a frame whose best and second-best distances are within ``margin`` times
    that scale is a tie that any compiled path may flip.

    Args:
        model: the ``DMCodec`` whose encoder and first codebook define the distances.
        audio: float array ``[samples]`` (one clip).
        margin: relative gap below which a frame counts as tied.

    Returns:
        bool array ``[frames]``, True where the first RVQ layer's code is not a tie.

    Example:
        >>> untied = untied_frames(model, audio)  # doctest: +SKIP
        >>> np.testing.assert_array_equal(a[:, untied], b[:, untied])  # doctest: +SKIP
    """
    latents = _latents(model, audio[None])
    codebook = _as_numpy(model.quantizer.quantizers[0].codebook)
    dist = ((latents[0][:, None] - codebook[None]) ** 2).sum(-1)
    nearest = codebook[np.argmin(dist, axis=1)]
    scale = (latents[0] ** 2).sum(-1) + (nearest**2).sum(-1)
    dist = np.sort(dist, axis=1)
    return (dist[:, 1] - dist[:, 0]) > margin * scale


def assert_codes_equal_up_to_ties(model, audio, codes, expected, margin=1e-3):
    """Asserts that ``codes`` equal ``expected`` except in frames whose first differing RVQ
    layer is a float32 tie for ``model``; returns the number of frames that differ.

    Args:
        model: the ``DMCodec`` whose encoder and codebooks define the distances.
        audio: float array ``[batch, samples]`` or ``[batch, 1, samples]`` that was encoded.
        codes, expected: int arrays ``[batch, n_q, frames]``.
        margin: a tie is a distance gap at most ``margin * (|r|^2 + |c|^2)`` (``r`` the
            residual, ``c`` the expected code's vector).

    Example:
        >>> differing = assert_codes_equal_up_to_ties(model, x, exported.encode(x),
        ...                                           model.encode(x))  # doctest: +SKIP
    """
    codes, expected = np.asarray(codes), np.asarray(expected)
    assert codes.shape == expected.shape, f"codes {codes.shape} != {expected.shape}"
    differing = np.argwhere(np.any(codes != expected, axis=1))  # (batch, frame) pairs
    if not len(differing):
        return 0
    latents = _latents(model, audio)
    books = [_as_numpy(q.codebook) for q in model.quantizer.quantizers]
    for item, frame in differing:
        got, want = codes[item, :, frame], expected[item, :, frame]
        layer = int(np.argmax(got != want))
        residual = latents[item, frame] - sum(books[q][want[q]] for q in range(layer))
        wanted_code, other_code = books[layer][want[layer]], books[layer][got[layer]]
        gap = abs(((residual - wanted_code) ** 2).sum() - ((residual - other_code) ** 2).sum())
        scale = (residual**2).sum() + (wanted_code**2).sum()
        assert gap <= margin * scale, (
            f"item {item}, frame {frame}, layer {layer}: code {got[layer]} instead of "
            f"{want[layer]}, and the distance gap {gap:.3g} is no tie (scale {scale:.3g})")
    return len(differing)
