"""Spliced frames and LDA: the first half of Kaldi's LDA+MLLT features (train_lda_mllt.sh).

The static cepstra of ``2c + 1`` neighbouring frames are stacked (Kaldi's ``splice-feats``,
default ``c = 4``: 13 x 9 = 117 dimensions) and projected to ``dim`` (usually 40) by linear
discriminant analysis with the pdfs as classes (``acc-lda`` then ``est-lda``):

* statistics (:class:`LdaStats`): per class the weighted count and sum of its frames, and
  one total scatter ``sum_t w_t x_t x_t^T`` over all frames;
* estimate (:func:`estimate_lda`, Kaldi's ``LdaEstimate::Estimate``): with total covariance
  ``T``, between-class covariance ``B = sum_c (n_c / n) mu_c mu_c^T - mu mu^T`` and
  within-class covariance ``W = T - B``, take the Cholesky factor ``W = L L^T``, diagonalise
  ``L^{-1} B L^{-T} = U diag(d) U^T`` with ``d`` decreasing, and keep the first ``dim`` rows
  of ``U^T L^{-1}``. The projected within-class covariance is then the identity and the
  projected between-class covariance ``diag(d)``: the rows solve ``B v = d W v``.

Kaldi's default options throughout: no offset column (``remove_offset=false``), within-class
factor 1, ``dim < num_classes``. The sign of each row (arbitrary in the eigenproblem) is fixed
so that its largest-magnitude element is positive, which makes the matrix the same whatever
LAPACK computed it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np


def splice_frames(x: np.ndarray, context: int = 4) -> np.ndarray:
    """Kaldi's ``splice-feats --left-context=c --right-context=c``.

    :param x: (T, D) frames.
    :param context: ``c``, frames each side; the first and last frame are repeated at the
        edges.
    :return: (T, D * (2c + 1)) float32, row t = [x_{t-c}, ..., x_t, ..., x_{t+c}].
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"splice_frames: expected (T, D), got shape {x.shape}")
    if context < 0:
        raise ValueError(f"splice_frames: context must be >= 0, got {context}")
    t, d = x.shape
    if t == 0:
        return np.zeros((0, d * (2 * context + 1)), np.float32)
    pad = np.pad(x.astype(np.float32, copy=False), ((context, context), (0, 0)), mode="edge")
    return np.concatenate([pad[k : k + t] for k in range(2 * context + 1)], axis=1)


@dataclass
class LdaStats:
    """Kaldi's LdaEstimate accumulators, float64.

    ``count`` (C,): weighted frames per class; ``sum`` (C, D): weighted sum of each class's
    frames; ``scatter`` (D, D): ``sum_t w_t x_t x_t^T`` over all frames (not centred).
    """

    count: np.ndarray
    sum: np.ndarray
    scatter: np.ndarray

    @classmethod
    def zeros(cls, num_classes: int, dim: int) -> "LdaStats":
        return cls(np.zeros(num_classes), np.zeros((num_classes, dim)), np.zeros((dim, dim)))

    @property
    def num_classes(self) -> int:
        return self.count.shape[0]

    @property
    def dim(self) -> int:
        return self.scatter.shape[0]

    def accumulate(self, x: np.ndarray, classes: np.ndarray, weights: Optional[np.ndarray] = None) -> None:
        """Add frames ``x`` (T, D) float32/float64 of classes ``classes`` (T,) int (the pdf of
        each frame), each with weight ``weights`` (T,) (default 1). Frames of class < 0 or
        weight 0 are skipped (Kaldi: silence frames weighted 0 by ``weight-silence-post``)."""
        x = np.asarray(x)
        classes = np.asarray(classes)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"LdaStats.accumulate: features of shape {x.shape}, stats of dimension {self.dim}")
        if classes.shape != (x.shape[0],):
            raise ValueError(f"LdaStats.accumulate: classes of shape {classes.shape} for {x.shape[0]} frames")
        w = np.ones(x.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != classes.shape:
            raise ValueError(f"LdaStats.accumulate: weights of shape {w.shape} for {x.shape[0]} frames")
        keep = np.flatnonzero((classes >= 0) & (w != 0))
        if keep.size == 0:
            return
        c = classes[keep]
        if int(c.max()) >= self.num_classes:
            raise ValueError(f"LdaStats.accumulate: class {int(c.max())} out of range ({self.num_classes} classes)")
        order = keep[np.argsort(c, kind="stable")]
        xs = x[order].astype(np.float64)
        ws = w[order]
        cs = classes[order]
        starts = np.concatenate([[0], np.flatnonzero(np.diff(cs)) + 1])
        wx = xs * ws[:, None]
        self.count[cs[starts]] += np.add.reduceat(ws, starts)
        self.sum[cs[starts]] += np.add.reduceat(wx, starts, axis=0)
        self.scatter += wx.T @ xs

    def add(self, other: "LdaStats") -> None:
        """Add another accumulator (same classes and dimension) into this one."""
        if other.sum.shape != self.sum.shape:
            raise ValueError(f"LdaStats.add: shapes differ: {self.sum.shape} vs {other.sum.shape}")
        self.count += other.count
        self.sum += other.sum
        self.scatter += other.scatter

    def covariances(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(total, between-class, within-class) covariances, each (D, D) float64, as Kaldi's
        LdaEstimate computes them (classes with no frames contribute nothing)."""
        n = self.count.sum()
        if n <= 0:
            raise ValueError("LDA: no frames accumulated")
        mean = self.sum.sum(axis=0) / n
        total = self.scatter / n - np.outer(mean, mean)
        seen = self.count > 0
        cmeans = self.sum[seen] / self.count[seen, None]
        between = (cmeans * (self.count[seen] / n)[:, None]).T @ cmeans - np.outer(mean, mean)
        within = total - between
        return total, between, within


def estimate_lda_with_eigs(stats: LdaStats, dim: int) -> Tuple[np.ndarray, np.ndarray]:
    """LDA projection and the eigenvalues of the whitened between-class covariance.

    :param dim: output dimension; Kaldi requires ``0 < dim <= D`` and ``dim < C``.
    :return: ``(lda, eigs)``: lda (dim, D) float32, rows by decreasing eigenvalue;
        eigs (D,) float64, all eigenvalues, decreasing (Kaldi's "LDA singular values").
    :raises ValueError: bad ``dim``, no frames, or a singular within-class covariance.
    """
    if not (0 < dim <= stats.dim and dim < stats.num_classes):
        raise ValueError(
            f"LDA: dim {dim} must be in 1..{stats.dim} (feature dim) and below the {stats.num_classes} classes"
        )
    _, between, within = stats.covariances()
    try:
        chol = np.linalg.cholesky(within)
    except np.linalg.LinAlgError as e:
        raise ValueError(
            "LDA: the within-class covariance is not positive definite "
            f"({stats.count.sum():.0f} frames, dimension {stats.dim}): too little data or constant features"
        ) from e
    linv = np.linalg.inv(chol)
    whitened_between = linv @ between @ linv.T
    whitened_between = 0.5 * (whitened_between + whitened_between.T)
    eigs, vecs = np.linalg.eigh(whitened_between)
    order = np.argsort(-eigs, kind="stable")
    eigs, vecs = eigs[order], vecs[:, order]
    full = vecs.T @ linv
    big = np.argmax(np.abs(full), axis=1)
    full *= np.where(full[np.arange(full.shape[0]), big] < 0, -1.0, 1.0)[:, None]
    return full[:dim].astype(np.float32), eigs


def estimate_lda(stats: LdaStats, dim: int) -> np.ndarray:
    """Kaldi's ``est-lda --dim=dim``: the (dim, D) float32 LDA matrix (no offset column).
    See :func:`estimate_lda_with_eigs`."""
    return estimate_lda_with_eigs(stats, dim)[0]
