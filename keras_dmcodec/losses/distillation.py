"""Distillation losses of the reference (SpeechTokenizer / DM-Codec ``loss.py``).

``features`` are the student's projected RVQ outputs ``[batch, frames, dim]``,
``targets`` the teacher's ``[batch, frames', dim]``; both are cropped to the
shorter length ``n = min(frames, frames')``. ``mask`` (``[batch, frames'']``,
1 = a real teacher frame) keeps padded or missing teacher frames out of the
loss; it is cropped to ``n`` too.

Where we differ from the released reference: it saves teacher features as
``(1, T, D)`` and collates them to ``(B, 1, T, D)``, so ``n = min(T, 1) = 1`` and
only frame 0 is distilled. We crop squeezed ``(B, T, D)`` targets, so every
frame is; ``frame0_only=True`` reproduces the reference's behaviour.
"""

from keras import ops


def _crop(features, targets, mask, frame0_only):
    features, targets = ops.convert_to_tensor(features), ops.convert_to_tensor(targets)
    n = 1 if frame0_only else min(features.shape[1], targets.shape[1])
    features, targets = features[:, :n], targets[:, :n]
    if mask is not None:
        mask = ops.cast(mask[:, :n], features.dtype)[..., None]
    return features, targets, mask


def _cosine(a, b, axis):
    # torch.nn.functional.cosine_similarity: dot / max(|a| * |b|, eps), eps = 1e-8.
    # Each squared norm is clamped *before* the square root: sqrt's gradient at 0 is
    # infinite, and an all-zero series (a crop whose frames are all masked out, e.g.
    # silence under word alignment) would otherwise give 0 * inf = NaN gradients even
    # though the loss itself is finite. Same values as torch for non-degenerate inputs.
    dot = ops.sum(a * b, axis=axis)
    norm_a = ops.sqrt(ops.maximum(ops.sum(a * a, axis=axis), 1e-16))
    norm_b = ops.sqrt(ops.maximum(ops.sum(b * b, axis=axis), 1e-16))
    return dot / ops.maximum(norm_a * norm_b, 1e-8)


def d_axis_distill_loss(features, targets, mask=None, frame0_only=False):
    """``-mean log sigmoid(cos)``, the cosine taken over time for each feature dimension.

    The reference's default (``D_axis`` in DM-Codec / SpeechTokenizer): for
    every feature dimension ``d`` the student's time series ``F[:, :n, d]`` is
    compared with the teacher's by cosine similarity; the loss is the mean
    over batch and dimensions of ``-log sigmoid(cos)``. Masked frames are set
    to zero in both series, so they add nothing to the dot product or norms.
    An utterance whose mask is all zero contributes ``log 2`` (cos = 0) and no
    gradient.

    Args:
        features: float ``[batch, frames, dim]`` student features.
        targets: float ``[batch, frames', dim]`` teacher features.
        mask: optional float/bool ``[batch, frames'']``, 1 for valid frames.
        frame0_only: reproduce the reference's one-frame defect.
    """
    features, targets, mask = _crop(features, targets, mask, frame0_only)
    if mask is not None:
        features, targets = features * mask, targets * mask
    return -ops.mean(ops.log_sigmoid(_cosine(features, targets, axis=1)))


def t_axis_distill_loss(features, targets, lambda_sim=1.0, mask=None, frame0_only=False):
    """``L1 + lambda_sim * -mean log sigmoid(cos)``, the cosine over features for each frame.

    The reference's ``T_axis`` variant. With a mask, both terms are averaged
    over valid frames only.

    Args:
        features: float ``[batch, frames, dim]`` student features.
        targets: float ``[batch, frames', dim]`` teacher features.
        lambda_sim: float. Weight of the cosine term.
        mask: optional float/bool ``[batch, frames'']``, 1 for valid frames.
        frame0_only: reproduce the reference's one-frame defect.
    """
    features, targets, mask = _crop(features, targets, mask, frame0_only)
    if mask is None:
        l1 = ops.mean(ops.abs(features - targets))
        return l1 - lambda_sim * ops.mean(ops.log_sigmoid(_cosine(features, targets, axis=-1)))
    frame_mask = mask[..., 0]
    count = ops.maximum(ops.sum(frame_mask), 1.0)
    l1 = ops.sum(ops.mean(ops.abs(features - targets), axis=-1) * frame_mask) / count
    sim = ops.sum(ops.log_sigmoid(_cosine(features, targets, axis=-1)) * frame_mask) / count
    return l1 - lambda_sim * sim
