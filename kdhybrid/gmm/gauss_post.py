"""Gaussian posteriors of aligned frames within their pdf: the E-step the transform
estimators (MLLT, fMLLR) share.

A frame aligned to pdf ``p`` is shared out among the Gaussians of ``p`` only, in proportion
to their weighted likelihoods, exactly as :func:`kdhybrid.gmm.model.accumulate_pdf_stats`
does for the model's own statistics (float64, max-subtracted softmax). Kaldi's
``gmm-acc-mllt`` and ``gmm-est-fmllr`` do the same with ``DiagGmm::ComponentPosteriors``.

Reading the GMMs out of kaldi-hmm-gmm costs a few microseconds per pdf, so a caller that
accumulates many small batches (fMLLR: one speaker at a time) reads the model once into
:class:`PdfGaussians` and passes that instead of the ``AmDiagGmm``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Tuple, Union

import numpy as np

from kdhybrid.kaldi_libs import kaldi_hmm_gmm as khg


@dataclass
class PdfGaussians:
    """Every pdf's diagonal Gaussians as float64 arrays (Kaldi's stored form), all Gaussians
    of all pdfs in one list: pdf ``p`` owns Gaussians ``offsets[p] .. offsets[p+1] - 1``.

    ``offsets`` (P + 1,) int64; ``gconsts`` (N,); ``means_invvars`` and ``inv_vars`` (N, D);
    ``dim`` is D.
    """

    offsets: np.ndarray
    gconsts: np.ndarray
    means_invvars: np.ndarray
    inv_vars: np.ndarray
    dim: int

    @classmethod
    def from_am(cls, am: "khg.AmDiagGmm") -> "PdfGaussians":
        """Read every pdf of ``am`` (its gconsts must be valid: ``compute_gconsts``)."""
        gc, miv, iv = [], [], []
        for p in range(am.num_pdfs):
            g = am.get_pdf(p)
            gc.append(np.asarray(g.gconsts, dtype=np.float64))
            miv.append(np.asarray(g.means_invvars, dtype=np.float64))
            iv.append(np.asarray(g.inv_vars, dtype=np.float64))
        offsets = np.zeros(len(gc) + 1, dtype=np.int64)
        np.cumsum([len(c) for c in gc], out=offsets[1:])
        d = int(am.dim)
        if not gc:
            return cls(offsets, np.zeros(0), np.zeros((0, d)), np.zeros((0, d)), d)
        return cls(offsets, np.concatenate(gc), np.concatenate(miv), np.concatenate(iv), d)

    @property
    def num_pdfs(self) -> int:
        return self.offsets.shape[0] - 1

    def gauss_of_pdf(self, p: int) -> slice:
        """The Gaussians of pdf ``p``, as a slice of the flat arrays."""
        return slice(int(self.offsets[p]), int(self.offsets[p + 1]))

    def means(self, p: int) -> np.ndarray:
        """(M_p, D) float64 means of pdf ``p``."""
        g = self.gauss_of_pdf(p)
        return self.means_invvars[g] / self.inv_vars[g]

    def posteriors(self, p: int, x: np.ndarray) -> np.ndarray:
        """(n, M_p) float64 Gaussian posteriors of frames ``x`` (n, D) float64 under pdf ``p``
        (each row sums to 1), computed as :func:`kdhybrid.gmm.model.accumulate_pdf_stats`
        does."""
        g = self.gauss_of_pdf(p)
        ll = self.gconsts[g][None, :] + x @ self.means_invvars[g].T - 0.5 * (x * x) @ self.inv_vars[g].T
        post = np.exp(ll - ll.max(axis=1, keepdims=True))
        post /= post.sum(axis=1, keepdims=True)
        return post

    def frame_posteriors(self, x: np.ndarray, pdfs: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gaussian posteriors of frames with mixed pdfs, without a loop over pdfs.

        :param x: (n, D) float64 frames.
        :param pdfs: (n,) int, each frame's pdf (all valid).
        :return: ``(starts, gauss, post)``: the Gaussians of frame t are
            ``gauss[starts[t]:starts[t+1]]`` (those of its pdf, in order), with posteriors
            ``post[starts[t]:starts[t+1]]`` (summing to 1); starts (n + 1,) int64,
            gauss (N,) int64, post (N,) float64.
        """
        first = self.offsets[pdfs]
        sizes = self.offsets[pdfs + 1] - first
        starts = np.zeros(pdfs.shape[0] + 1, dtype=np.int64)
        np.cumsum(sizes, out=starts[1:])
        frame = np.repeat(np.arange(pdfs.shape[0]), sizes)
        gauss = first[frame] + (np.arange(starts[-1]) - starts[frame])
        xf = x[frame]
        ll = self.gconsts[gauss] + np.einsum("nd,nd->n", xf, self.means_invvars[gauss])
        ll -= 0.5 * np.einsum("nd,nd->n", xf * xf, self.inv_vars[gauss])
        post = np.exp(ll - np.maximum.reduceat(ll, starts[:-1])[frame])
        post /= np.add.reduceat(post, starts[:-1])[frame]
        return starts, gauss, post


AmLike = Union["khg.AmDiagGmm", PdfGaussians]


def as_pdf_gaussians(am: AmLike) -> PdfGaussians:
    """``am`` itself if already read, else :meth:`PdfGaussians.from_am`."""
    return am if isinstance(am, PdfGaussians) else PdfGaussians.from_am(am)


def frames_by_pdf(
    pdf_of_frame: np.ndarray, num_pdfs: int, weights: Optional[np.ndarray] = None
) -> Iterator[Tuple[int, np.ndarray]]:
    """(pdf, frame indices) for every pdf that has frames, in increasing pdf order; the
    indices of one pdf are increasing. Frames with pdf -1 (or any negative) or weight 0 are
    left out.

    :param pdf_of_frame: (T,) int, the pdf of each frame.
    :param weights: optional (T,) float, per-frame weights (0: skip).
    :raises ValueError: a pdf id >= ``num_pdfs`` or a length mismatch.
    """
    pdf_of_frame = np.asarray(pdf_of_frame)
    keep = pdf_of_frame >= 0
    if weights is not None:
        weights = np.asarray(weights)
        if weights.shape != pdf_of_frame.shape:
            raise ValueError(f"weights {weights.shape} and pdf_of_frame {pdf_of_frame.shape} differ in shape")
        keep &= weights != 0
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        return
    pdfs = pdf_of_frame[idx]
    if int(pdfs.max()) >= num_pdfs:
        raise ValueError(f"pdf id {int(pdfs.max())} out of range: the model has {num_pdfs} pdfs")
    order = np.argsort(pdfs, kind="stable")
    idx, pdfs = idx[order], pdfs[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(pdfs)) + 1, [idx.size]])
    for s, e in zip(starts[:-1], starts[1:]):
        yield int(pdfs[s]), idx[s:e]


def check_frames(x: np.ndarray, pdf_of_frame: np.ndarray, dim: int) -> None:
    """Raise ValueError unless ``x`` is (T, dim) and ``pdf_of_frame`` is (T,)."""
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"features of shape {x.shape}, the model has dimension {dim}")
    if np.shape(pdf_of_frame) != (x.shape[0],):
        raise ValueError(f"pdf_of_frame of shape {np.shape(pdf_of_frame)} for {x.shape[0]} frames")
