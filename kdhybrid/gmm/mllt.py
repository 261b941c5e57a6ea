"""MLLT: Gales' semi-tied covariance transform, the second half of LDA+MLLT (Kaldi's
``gmm-acc-mllt``, ``est-mllt`` and ``gmm-transform-means`` in train_lda_mllt.sh).

One square matrix ``A`` (D, D) is shared by every Gaussian: a Gaussian with mean ``mu`` and
diagonal variance ``sigma^2`` in the transformed space ``A x`` models ``x`` with the full
covariance ``A^{-1} diag(sigma^2) A^{-T}``. With the variances held at the model's values,
the auxiliary function of ``A`` is

    Q(A) = beta log|det A| - 1/2 sum_i a_i G_i a_i^T,

``a_i`` the i-th row of ``A``, ``beta`` the frame count and
``G_i = sum_t sum_m gamma_m(t) / sigma^2_{m,i} (x_t - mu_m)(x_t - mu_m)^T`` (D, D).

Statistics: each pdf's frames are shared out among its Gaussians
(:mod:`kdhybrid.gmm.gauss_post`); each Gaussian's full scatter about its mean is computed from
its frames in data order (:func:`accumulate_gauss_scatters`), and all the ``G_i`` come from
one matrix product of the stacked scatters with the inverse variances
(:func:`mllt_stats_from_scatters`). So the statistics do not depend on how the frames or
pdfs are split among jobs, and cost two (n, D) x (D, D) products per frame and Gaussian,
not a D^3 update per frame.

Update (:func:`estimate_mllt`, Kaldi's ``MlltAccs::Update``): start from the identity; for
each row in turn, with ``c_i`` the i-th column of ``A^{-1}`` (the cofactor row up to a
constant), set ``a_i = sqrt(beta / (c_i G_i^{-1} c_i^T)) c_i G_i^{-1}``, which maximises Q
over ``a_i`` with the other rows fixed; repeat the sweep ``num_iters`` times (Kaldi: 200).
Kaldi goes on with too little data (it only warns below ``10 D`` frames); so does this.

After the update the features become ``A x`` (compose ``A`` with the LDA matrix) and the
model's means ``A mu`` (:func:`transform_means`); the variances are kept, and the next
re-estimation of the model makes them the diagonal variances in the new space.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from kdhybrid.gmm.gauss_post import AmLike, as_pdf_gaussians, check_frames, frames_by_pdf
from kdhybrid.kaldi_libs import kaldi_hmm_gmm as khg

log = logging.getLogger("kdhybrid.gmm")

#: Sweeps of Kaldi's est-mllt (fixed in MlltAccs::Update).
KALDI_MLLT_NUM_ITERS = 200


@dataclass
class MlltStats:
    """Kaldi's MlltAccs: ``beta`` (weighted frame count) and ``G`` (D, D, D) float64,
    ``G[i]`` the statistics of row i."""

    beta: float
    G: np.ndarray

    @classmethod
    def zeros(cls, dim: int) -> "MlltStats":
        return cls(0.0, np.zeros((dim, dim, dim)))

    @property
    def dim(self) -> int:
        return self.G.shape[0]

    def add(self, other: "MlltStats") -> None:
        if other.G.shape != self.G.shape:
            raise ValueError(f"MlltStats.add: shapes differ: {self.G.shape} vs {other.G.shape}")
        self.beta += other.beta
        self.G += other.G


def accumulate_gauss_scatters(
    am: AmLike,
    x: np.ndarray,
    pdf_of_frame: np.ndarray,
    pdfs: Optional[Sequence[int]] = None,
    weights: Optional[np.ndarray] = None,
) -> dict:
    """Occupancy and full scatter about the mean of every Gaussian of the pdfs ``pdfs``.

    Each pdf's numbers come from all its frames in the order they have in ``x``, in float64,
    whatever else one call covers (as :func:`kdhybrid.gmm.model.accumulate_pdf_stats`).

    :param am: the model (``khg.AmDiagGmm`` or :class:`~kdhybrid.gmm.gauss_post.PdfGaussians`)
        in the space of ``x``.
    :param x: (T, D) float32/float64 frames.
    :param pdf_of_frame: (T,) int, pdf of each frame, -1 for none.
    :param pdfs: the pdfs wanted (default: all); pdfs without frames get zeros.
    :param weights: optional (T,) per-frame weights (0: skip), e.g. 0 on silence.
    :return: ``{"pdfs": P ints (increasing), "occ": P arrays (M_p,), "scatter": P arrays
        (M_p, D, D)}``, float64; ``scatter[m] = sum_t w_t gamma_m(t) (x_t - mu_m)(x_t - mu_m)^T``.
    """
    gs = as_pdf_gaussians(am)
    d = gs.dim
    check_frames(np.asarray(x), pdf_of_frame, d)
    wanted = range(gs.num_pdfs) if pdfs is None else sorted(int(p) for p in pdfs)
    frames = dict(frames_by_pdf(pdf_of_frame, gs.num_pdfs, weights))
    out: dict = {"pdfs": [], "occ": [], "scatter": []}
    for p in wanted:
        m = int(gs.offsets[p + 1] - gs.offsets[p])
        occ, scatter = np.zeros(m), np.zeros((m, d, d))
        idx = frames.get(p)
        if idx is not None:
            xp = np.asarray(x[idx], dtype=np.float64)
            post = gs.posteriors(p, xp)
            if weights is not None:
                post *= np.asarray(weights, dtype=np.float64)[idx, None]
            occ = post.sum(axis=0)
            means = gs.means(p)
            for k in range(m):
                xc = xp - means[k]
                scatter[k] = (xc * post[:, k : k + 1]).T @ xc
        out["pdfs"].append(p)
        out["occ"].append(occ)
        out["scatter"].append(scatter)
    return out


def mllt_stats_from_scatters(am: AmLike, parts: Sequence[dict]) -> MlltStats:
    """Assemble :func:`accumulate_gauss_scatters` results (of disjoint pdf sets) into
    :class:`MlltStats`, in pdf order: ``G`` from one product (D, N) x (N, D*D) of the inverse
    variances and the scatters of the N Gaussians that have frames; ``beta`` an exact sum
    (``math.fsum``). The result is the same however the pdfs were split into parts."""
    gs = as_pdf_gaussians(am)
    d = gs.dim
    occ, scat = {}, {}
    for part in parts:
        for i, p in enumerate(part["pdfs"]):
            if p in occ:
                raise ValueError(f"mllt_stats_from_scatters: pdf {p} is in two parts")
            occ[p], scat[p] = part["occ"][i], part["scatter"][i]
    inv_vars, scatters, counts = [], [], []
    for p in sorted(occ):
        used = occ[p] > 0
        if used.any():
            inv_vars.append(gs.inv_vars[gs.gauss_of_pdf(p)][used])
            scatters.append(scat[p][used].reshape(-1, d * d))
            counts.append(occ[p][used])
    if not inv_vars:
        return MlltStats.zeros(d)
    G = (np.concatenate(inv_vars).T @ np.concatenate(scatters)).reshape(d, d, d)
    G = 0.5 * (G + G.transpose(0, 2, 1))
    return MlltStats(math.fsum(np.concatenate(counts).tolist()), G)


def accumulate_mllt_stats(
    am: AmLike, x: np.ndarray, pdf_of_frame: np.ndarray, weights: Optional[np.ndarray] = None
) -> MlltStats:
    """Kaldi's ``gmm-acc-mllt`` (without random pruning) over frames with known pdfs.

    :param am: the model, in the space of ``x``.
    :param x: (T, D) float32/float64 frames (all utterances, concatenated).
    :param pdf_of_frame: (T,) int, the pdf of each frame (-1: skip).
    :param weights: optional (T,) per-frame weights (0: skip; Kaldi's recipe gives silence 0).
    :return: :class:`MlltStats`, deterministic: the same for any order of the pdfs' work.
    """
    gs = as_pdf_gaussians(am)
    return mllt_stats_from_scatters(gs, [accumulate_gauss_scatters(gs, x, pdf_of_frame, None, weights)])


def mllt_objective(A: np.ndarray, stats: MlltStats) -> float:
    """``beta log|det A| - 1/2 sum_i a_i G_i a_i^T`` for ``A`` (D, D) (not per frame)."""
    A = np.asarray(A, dtype=np.float64)
    _, logdet = np.linalg.slogdet(A)
    quad = np.einsum("ij,ijk,ik->", A, stats.G, A)
    return float(stats.beta * logdet - 0.5 * quad)


def mllt_gradient(A: np.ndarray, stats: MlltStats) -> np.ndarray:
    """(D, D) gradient of :func:`mllt_objective`: ``beta A^{-T} - [G_i a_i]_i``."""
    A = np.asarray(A, dtype=np.float64)
    return stats.beta * np.linalg.inv(A).T - np.einsum("ijk,ik->ij", stats.G, A)


def estimate_mllt(
    stats: MlltStats, num_iters: int = 10, objf_trace: Optional[List[float]] = None
) -> Tuple[np.ndarray, float]:
    """Kaldi's ``est-mllt``: the row-by-row update of ``A`` from the identity.

    :param num_iters: sweeps over the rows. Kaldi's est-mllt does 200
        (``KALDI_MLLT_NUM_ITERS``); on synthetic 4-dimensional data with a large rotation, 10
        sweeps reach 96-97% of the converged improvement and some cases need hundreds of
        sweeps (coordinate ascent on a flat ridge), so pass 200 to do what Kaldi does. A
        sweep inverts D matrices of D x D: 200 sweeps at D = 40 take about a second.
    :param objf_trace: if a list, the objective per frame is appended before the first and
        after every row update (for checking that it never decreases).
    :return: ``(A, improvement)``: A (D, D) float64; the auxiliary-function improvement per
        frame (``(Q(A) - Q(I)) / beta``).
    :raises ValueError: no frames, or a singular ``G_i`` (a dimension without data).
    """
    d = stats.dim
    beta = float(stats.beta)
    if beta <= 0:
        raise ValueError("MLLT: no frames accumulated")
    if beta < 10 * d:
        log.warning("MLLT: only %.1f frames for dimension %d (Kaldi warns below 10 x dim)", beta, d)
    try:
        ginv = np.linalg.inv(stats.G)
    except np.linalg.LinAlgError as e:
        raise ValueError(f"MLLT: a G_i is singular ({beta:.0f} frames, dimension {d})") from e
    ginv = 0.5 * (ginv + ginv.transpose(0, 2, 1))
    A = np.eye(d)
    start = mllt_objective(A, stats)
    if objf_trace is not None:
        objf_trace.append(start / beta)
    for _ in range(num_iters):
        for i in range(d):
            cof = np.linalg.inv(A)[:, i]
            gc = ginv[i] @ cof
            A[i] = gc * math.sqrt(beta / float(cof @ gc))
            if objf_trace is not None:
                objf_trace.append(mllt_objective(A, stats) / beta)
    return A, (mllt_objective(A, stats) - start) / beta


def transform_means(am: "khg.AmDiagGmm", A: np.ndarray) -> None:
    """Kaldi's ``gmm-transform-means``, in place: every mean ``mu -> A mu`` (``A`` (D, D)) or
    ``A [mu; 1]`` (``A`` (D, D+1)); weights and variances are kept, gconsts recomputed."""
    A = np.asarray(A, dtype=np.float64)
    d = am.dim
    if A.shape not in ((d, d), (d, d + 1)):
        raise ValueError(f"transform_means: transform of shape {A.shape} for a model of dimension {d}")
    lin, off = A[:, :d], (A[:, d] if A.shape[1] == d + 1 else np.zeros(d))
    for p in range(am.num_pdfs):
        g = am.get_pdf(p)
        means = np.asarray(g.means, dtype=np.float64)
        g.set_means((means @ lin.T + off).astype(np.float32))
        g.compute_gconsts()
