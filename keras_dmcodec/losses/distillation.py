"""Distillation losses of the reference (SpeechTokenizer / DM-Codec ``loss.py``).

``features`` are the student's projected RVQ outputs ``[batch, frames, dim]``,
``targets`` the teacher's ``[batch, frames', dim]``; both are cropped to the
shorter length (the reference's defect of collating targets as
``[batch, 1, frames, dim]``, which crops to one frame, is not reproduced here).
"""

from keras import ops


def _crop(features, targets):
    n = min(features.shape[1], targets.shape[1])
    return features[:, :n], targets[:, :n]


def _cosine(a, b, axis):
    # torch.nn.functional.cosine_similarity: dot / max(|a| * |b|, eps), eps = 1e-8.
    dot = ops.sum(a * b, axis=axis)
    norms = ops.sqrt(ops.sum(a * a, axis=axis)) * ops.sqrt(ops.sum(b * b, axis=axis))
    return dot / ops.maximum(norms, 1e-8)


def d_axis_distill_loss(features, targets):
    """``-mean log sigmoid(cos)`` with the cosine taken over time, per feature dimension."""
    features, targets = _crop(features, targets)
    return -ops.mean(ops.log_sigmoid(_cosine(features, targets, axis=1)))


def t_axis_distill_loss(features, targets, lambda_sim=1.0):
    """``L1 + lambda_sim * -mean log sigmoid(cos)`` with the cosine over features, per frame."""
    features, targets = _crop(features, targets)
    l1 = ops.mean(ops.abs(features - targets))
    return l1 - lambda_sim * ops.mean(ops.log_sigmoid(_cosine(features, targets, axis=-1)))
