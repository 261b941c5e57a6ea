"""fMLLR (constrained MLLR): one affine feature transform per speaker, for speaker-adapted
training (Kaldi's train_sat.sh: ``gmm-est-fmllr --fmllr-update-type=full``).

A speaker's frames ``x`` become ``W [x; 1] = A x + b``, ``W = [A b]`` (D, D+1), chosen to
maximise the likelihood of the adapted frames under the diagonal-covariance model plus the
Jacobian ``log|det A|`` per frame. With Gaussian posteriors ``gamma_m(t)`` (frames shared
out among the Gaussians of their aligned pdf, :mod:`kdhybrid.gmm.gauss_post`) and the
extended frames ``xi_t = [x_t; 1]``, the auxiliary function is (Kaldi's
``FmllrAuxFuncDiagGmm``)

    Q(W) = beta log|det A| + tr(W K^T) - 1/2 sum_i w_i G_i w_i^T

with ``beta = sum_t sum_m gamma_m(t)``, ``K = sum_t sum_m gamma_m(t) (mu_m / sigma^2_m) xi_t^T``
(D, D+1) and ``G_i = sum_t (sum_m gamma_m(t) / sigma^2_{m,i}) xi_t xi_t^T`` (D+1, D+1):
:class:`FmllrStats`, Kaldi's FmllrDiagGmmAccs.

Update (:func:`estimate_fmllr`, Kaldi's ``ComputeFmllrMatrixDiagGmmFull``; Gales 1998):
from ``W = [I 0]``, row by row: with ``c`` the i-th column of ``A^{-1}`` extended by a 0
(the cofactor row up to a constant) the optimal row is ``w_i = (alpha c + k_i) G_i^{-1}``,
where ``alpha`` solves ``e1 alpha^2 + e2 alpha - beta = 0`` (``e1 = c G_i^{-1} c^T``,
``e2 = c G_i^{-1} k_i^T``); of the two roots the one with the larger
``beta log|alpha e1 + e2| - alpha^2 e1 / 2`` is taken. Kaldi's FmllrOptions: a speaker with
``beta <= min_count`` (500 frames) keeps ``[I 0]``; Kaldi sweeps 40 times.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from kdhybrid.gmm.gauss_post import AmLike, as_pdf_gaussians, check_frames

#: Kaldi's FmllrOptions defaults (fmllr-diag-gmm.h): --fmllr-min-count, --fmllr-num-iters.
KALDI_FMLLR_MIN_COUNT = 500.0
KALDI_FMLLR_NUM_ITERS = 40

_CHUNK = 4096  # frames per block of extended outer products in the G accumulation


@dataclass
class FmllrStats:
    """Kaldi's FmllrDiagGmmAccs (AffineXformStats), float64: ``beta`` the weighted frame
    count, ``K`` (D, D+1), ``G`` (D, D+1, D+1) (each ``G[i]`` symmetric)."""

    beta: float
    K: np.ndarray
    G: np.ndarray

    @classmethod
    def zeros(cls, dim: int) -> "FmllrStats":
        return cls(0.0, np.zeros((dim, dim + 1)), np.zeros((dim, dim + 1, dim + 1)))

    @property
    def dim(self) -> int:
        return self.K.shape[0]

    def add(self, other: "FmllrStats") -> None:
        if other.G.shape != self.G.shape:
            raise ValueError(f"FmllrStats.add: shapes differ: {self.G.shape} vs {other.G.shape}")
        self.beta += other.beta
        self.K += other.K
        self.G += other.G


def accumulate_fmllr_stats(
    am: AmLike,
    x: np.ndarray,
    pdf_of_frame: np.ndarray,
    weights: Optional[np.ndarray] = None,
    stats: Optional[FmllrStats] = None,
) -> FmllrStats:
    """Kaldi's ``gmm-est-fmllr`` accumulation (``AccumulateForGmm`` per frame) for one
    speaker's frames with known pdfs.

    Per frame, ``a_t = sum_m gamma_m(t) mu_m / sigma^2_m`` and ``b_t = sum_m gamma_m(t) /
    sigma^2_m`` (D,) (posteriors of all frames at once, no loop over pdfs); then
    ``K += sum_t a_t xi_t^T`` and ``G_i += sum_t b_{t,i} xi_t xi_t^T``, the latter as one
    product of ``b`` (D, n) with the (n, (D+1)(D+2)/2) upper triangles of the outer products
    ``xi_t xi_t^T``, a block of n frames at a time, in frame order.

    :param am: the model (``khg.AmDiagGmm`` or a :class:`~kdhybrid.gmm.gauss_post.PdfGaussians`
        read once for many speakers), in the space of ``x``.
    :param x: (T, D) float32/float64 frames.
    :param pdf_of_frame: (T,) int, pdf of each frame (-1: skip).
    :param weights: optional (T,) per-frame weights (0: skip; Kaldi's recipe gives silence 0).
    :param stats: add to these (in place) instead of new zeros.
    :return: the statistics (``stats`` itself when given).
    """
    gs = as_pdf_gaussians(am)
    d = gs.dim
    x = np.asarray(x)
    check_frames(x, pdf_of_frame, d)
    st = FmllrStats.zeros(d) if stats is None else stats
    if st.dim != d:
        raise ValueError(f"accumulate_fmllr_stats: stats of dimension {st.dim}, model {d}")
    pdf_of_frame = np.asarray(pdf_of_frame)
    keep = pdf_of_frame >= 0
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != pdf_of_frame.shape:
            raise ValueError(f"accumulate_fmllr_stats: weights {weights.shape} for {x.shape[0]} frames")
        keep &= weights != 0
    frames = np.flatnonzero(keep)
    if frames.size and int(pdf_of_frame[frames].max()) >= gs.num_pdfs:
        raise ValueError(f"pdf id {int(pdf_of_frame[frames].max())} out of range: the model has {gs.num_pdfs} pdfs")
    iu, ju = np.triu_indices(d + 1)
    g_tri = np.zeros((d, iu.size))
    outer = np.empty((iu.size, min(_CHUNK, max(frames.size, 1))))
    counts = []
    for s in range(0, frames.size, _CHUNK):
        idx = frames[s : s + _CHUNK]
        n = idx.size
        xi = np.empty((n, d + 1))
        xi[:, :d] = x[idx]
        xi[:, d] = 1.0
        starts, gauss, post = gs.frame_posteriors(xi[:, :d], pdf_of_frame[idx])
        if weights is not None:
            post *= np.repeat(weights[idx], np.diff(starts))
        a = np.add.reduceat(post[:, None] * gs.means_invvars[gauss], starts[:-1])  # (n, D)
        b = np.add.reduceat(post[:, None] * gs.inv_vars[gauss], starts[:-1])  # (n, D)
        counts.append(np.add.reduceat(post, starts[:-1]))
        st.K += a.T @ xi
        # Upper triangles of xi_t xi_t^T, (P, n), one row block per row of the triangle.
        xt = xi.T
        pos = 0
        for i in range(d + 1):
            np.multiply(xt[i : i + 1], xt[i:], out=outer[pos : pos + d + 1 - i, :n])
            pos += d + 1 - i
        g_tri += b.T @ outer[:, :n].T
    if not counts:
        return st
    st.beta += math.fsum(np.concatenate(counts).tolist())
    G = np.zeros((d, d + 1, d + 1))
    G[:, iu, ju] = g_tri
    G[:, ju, iu] = g_tri
    st.G += G
    return st


def fmllr_objective(W: np.ndarray, stats: FmllrStats) -> float:
    """Kaldi's ``FmllrAuxFuncDiagGmm``: ``beta log|det A| + tr(W K^T) - 1/2 sum_i w_i G_i
    w_i^T`` for ``W = [A b]`` (D, D+1) (not per frame)."""
    W = np.asarray(W, dtype=np.float64)
    d = stats.dim
    _, logdet = np.linalg.slogdet(W[:, :d])
    return float(stats.beta * logdet + np.sum(W * stats.K) - 0.5 * np.einsum("ij,ijk,ik->", W, stats.G, W))


def fmllr_gradient(W: np.ndarray, stats: FmllrStats) -> np.ndarray:
    """(D, D+1) gradient of :func:`fmllr_objective` (Kaldi's ``FmllrAuxfGradient``):
    ``beta [A^{-T} 0] + K - [G_i w_i]_i``."""
    W = np.asarray(W, dtype=np.float64)
    d = stats.dim
    grad = stats.K - np.einsum("ijk,ik->ij", stats.G, W)
    grad[:, :d] += stats.beta * np.linalg.inv(W[:, :d]).T
    return grad


def _row_update(W: np.ndarray, i: int, ginv: np.ndarray, k: np.ndarray, beta: float) -> None:
    """Gales' optimal row ``i`` of ``W`` (in place), the other rows fixed."""
    d = W.shape[0]
    cof = np.zeros(d + 1)
    cof[:d] = np.linalg.inv(W[:, :d])[:, i]
    cof_g = ginv @ cof
    e1 = float(cof @ cof_g)
    e2 = float(k @ cof_g)
    root = math.sqrt(e2 * e2 + 4.0 * e1 * beta)
    best, best_aux = 0.0, -math.inf
    for alpha in ((-e2 + root) / (2.0 * e1), (-e2 - root) / (2.0 * e1)):
        aux = beta * math.log(abs(alpha * e1 + e2)) - 0.5 * alpha * alpha * e1
        if aux > best_aux:
            best, best_aux = alpha, aux
    W[i] = ginv @ (best * cof + k)


def identity_transform(dim: int) -> np.ndarray:
    """``[I 0]`` (dim, dim+1) float64, the unadapted fMLLR transform (Kaldi's InitFmllr)."""
    return np.hstack([np.eye(dim), np.zeros((dim, 1))])


def estimate_fmllr(
    stats: FmllrStats,
    num_iters: int = 10,
    min_count: float = KALDI_FMLLR_MIN_COUNT,
    objf_trace: Optional[List[float]] = None,
) -> Tuple[np.ndarray, dict]:
    """Kaldi's full fMLLR update (``FmllrDiagGmmAccs::Update`` with update type "full").

    :param num_iters: sweeps over the rows (Kaldi's default: 40, ``KALDI_FMLLR_NUM_ITERS``).
    :param min_count: below or at this many frames the transform stays ``[I 0]`` (Kaldi's
        ``--fmllr-min-count``, default 500).
    :param objf_trace: if a list, the objective per frame is appended before the first and
        after every row update.
    :return: ``(W, info)``: W (D, D+1) float64; info has ``frames`` (beta),
        ``objf_impr_per_frame``, ``objf_impr`` (total), ``logdet`` (log|det A|, to add to
        each frame's log-likelihood) and ``objf_per_iter`` (per frame, start then after each
        sweep). When no transform is estimated, W is ``[I 0]``, the improvement 0 and
        ``info["fallback"]`` says why: ``"too few frames"``, ``"singular statistics"`` (a
        ``G_i`` that cannot be inverted) or ``"objective decreased"``; a successful estimate
        has no ``"fallback"`` key.
    """
    d = stats.dim
    beta = float(stats.beta)

    def unchanged(why: str) -> Tuple[np.ndarray, dict]:
        return identity_transform(d), {"fallback": why, "frames": beta, "objf_impr_per_frame": 0.0, "objf_impr": 0.0, "logdet": 0.0}

    if not beta > min_count:
        return unchanged("too few frames")
    try:
        ginv = np.linalg.inv(stats.G)
    except np.linalg.LinAlgError:
        return unchanged("singular statistics")
    if not np.all(np.isfinite(ginv)):
        return unchanged("singular statistics")
    ginv = 0.5 * (ginv + ginv.transpose(0, 2, 1))
    W = identity_transform(d)
    start = fmllr_objective(W, stats)
    per_iter = [start / beta]
    if objf_trace is not None:
        objf_trace.append(start / beta)
    for _ in range(num_iters):
        for i in range(d):
            _row_update(W, i, ginv[i], stats.K[i], beta)
            if objf_trace is not None:
                objf_trace.append(fmllr_objective(W, stats) / beta)
        per_iter.append(fmllr_objective(W, stats) / beta)
    impr = fmllr_objective(W, stats) - start
    if impr < 0 and not math.isclose(impr + start, start, rel_tol=1e-3):  # Kaldi's ApproxEqual
        return unchanged("objective decreased")
    _, logdet = np.linalg.slogdet(W[:, :d])
    return W, {
        "frames": beta,
        "objf_impr_per_frame": impr / beta,
        "objf_impr": impr,
        "logdet": float(logdet),
        "objf_per_iter": per_iter,
    }


def apply_transform(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Kaldi's ``transform-feats``: ``x A^T`` for a linear ``W = A`` (R, D), ``x A^T + b`` for
    an affine ``W = [A b]`` (R, D+1) (LDA, MLLT, fMLLR alike).

    :param x: (T, D) frames.
    :return: (T, R) float32 (computed in float64).
    """
    x = np.asarray(x)
    W = np.asarray(W, dtype=np.float64)
    if x.ndim != 2 or W.ndim != 2:
        raise ValueError(f"apply_transform: expected (T, D) frames and a matrix, got {x.shape} and {W.shape}")
    d = x.shape[1]
    if W.shape[1] == d:
        y = x.astype(np.float64) @ W.T
    elif W.shape[1] == d + 1:
        y = x.astype(np.float64) @ W[:, :d].T + W[:, d]
    else:
        raise ValueError(f"apply_transform: a ({W.shape[0]}, {W.shape[1]}) transform for {d}-dimensional features")
    return y.astype(np.float32)


def compose_affine(A: np.ndarray, B: np.ndarray, b_is_affine: Optional[bool] = None) -> np.ndarray:
    """Kaldi's ``compose-transforms A B``: the transform that applies ``B`` first, then ``A``.

    ``A`` is (R, E) linear or (R, E+1) affine on the E-dimensional output of ``B``; ``B`` is
    (E, D) linear or (E, D+1) affine (``b_is_affine``; by default affine when ``B`` has one
    more column than rows, e.g. a previous fMLLR transform, linear otherwise, e.g. an LDA
    matrix). The result is affine, (R, D+1), if either is, else linear (R, D); float64.
    E.g. the new features of SAT: ``compose_affine(W_new, W_old)``; LDA+MLLT:
    ``compose_affine(mllt, lda)``.
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    e = B.shape[0]
    if b_is_affine is None:
        b_is_affine = B.shape[1] == e + 1
    b_lin = B[:, :-1] if b_is_affine else B
    b_off = B[:, -1] if b_is_affine else np.zeros(e)
    if A.shape[1] == e:
        a_lin, a_off, a_affine = A, np.zeros(A.shape[0]), False
    elif A.shape[1] == e + 1:
        a_lin, a_off, a_affine = A[:, :e], A[:, e], True
    else:
        raise ValueError(f"compose_affine: A {A.shape} does not follow B {B.shape}")
    lin = a_lin @ b_lin
    if not (a_affine or b_is_affine):
        return lin
    return np.hstack([lin, (a_lin @ b_off + a_off)[:, None]])
