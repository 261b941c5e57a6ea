"""Gaussian mix-up (Kaldi's ``AmDiagGmm::SplitByCount``), seeded.

kaldi-hmm-gmm binds Kaldi's mix-up, but its ``DiagGmm::Split`` draws the perturbation of
each new mean from a ``std::mt19937`` seeded by ``std::random_device`` on every call: no
seed reaches it, so two runs of the same training never agree (the minimal demonstration
is ``tests/test_gmm_reproducible.py::test_kaldi_hmm_gmm_split_is_not_seedable``). This
module does the same computation with a numpy ``Generator`` the caller seeds:

* :func:`split_targets` (Kaldi's ``GetSplitTargets``): Gaussians per pdf in proportion to
  ``occupancy ** power``, one at least, none that would leave fewer than ``min_count``
  frames a Gaussian; ties broken by the lower pdf-id;
* :func:`split_gmm` (``DiagGmm::Split``): the heaviest component is split in two, each
  with half its weight, the same variances and means moved apart by
  ``+-perturb_factor * N(0, 1) * stddev`` per dimension, until the target is reached;
* :func:`mix_up` (``SplitByCount``): both, for every pdf of an ``AmDiagGmm``.
"""
from __future__ import annotations

import heapq
from typing import List

import numpy as np

from kdhybrid.kaldi_libs import kaldi_hmm_gmm as khg


def split_targets(occs: np.ndarray, target: int, power: float, min_count: float) -> np.ndarray:
    """Kaldi's GetSplitTargets.

    :param occs: (num_pdfs,) float, the occupancy (frames) of each pdf.
    :param target: total number of Gaussians wanted.
    :return: (num_pdfs,) int64, Gaussians per pdf (at least 1 each).
    """
    occs = np.asarray(occs, dtype=np.float64)
    score = np.power(occs, power)
    n = np.ones(len(occs), dtype=np.int64)
    # A max-heap on occupancy**power per Gaussian; (pdf-id) breaks ties deterministically.
    heap: List[tuple] = [(-s / (1 + 1e-10), p) for p, s in enumerate(score.tolist())]
    heapq.heapify(heap)
    num_gauss = len(occs)
    while num_gauss < target and heap:
        neg, p = heapq.heappop(heap)
        if neg == 0.0:
            break  # nothing left that may split (min-count, or no counts at all)
        if (n[p] + 1) * min_count >= occs[p]:
            continue  # min-count reached: this pdf splits no further
        n[p] += 1
        num_gauss += 1
        heapq.heappush(heap, (-score[p] / (n[p] + 1e-10), p))
    return n


def split_gmm(g: "khg.DiagGmm", target: int, perturb_factor: float, rng: np.random.Generator) -> None:
    """Kaldi's DiagGmm::Split in place: ``g`` grows to ``target`` components.

    Draws ``dim`` standard normals from ``rng`` per new component, in order.
    """
    m = g.num_gauss
    if target <= m:
        return
    w = np.zeros(target)
    mu = np.zeros((target, g.dim))
    var = np.zeros((target, g.dim))
    w[:m] = np.asarray(g.weights, dtype=np.float64)
    mu[:m] = np.asarray(g.means, dtype=np.float64)
    var[:m] = np.asarray(g.vars, dtype=np.float64)
    for k in range(m, target):
        j = int(np.argmax(w[:k]))  # the first of the heaviest, as Kaldi's scan
        w[j] /= 2.0
        w[k] = w[j]
        step = perturb_factor * rng.standard_normal(g.dim) * np.sqrt(var[j])
        var[k] = var[j]
        mu[k] = mu[j] + step
        mu[j] = mu[j] - step
    g.resize(target, g.dim)
    g.set_weights(w.astype(np.float32))
    g.set_means(mu.astype(np.float32))
    g.set_invvars((1.0 / var).astype(np.float32))
    g.compute_gconsts()


def mix_up(am: "khg.AmDiagGmm", occs: np.ndarray, target: int, perturb_factor: float, power: float, min_count: float, rng: np.random.Generator) -> None:
    """Kaldi's AmDiagGmm::SplitByCount: every pdf with fewer Gaussians than its
    :func:`split_targets` share is split up to it (pdfs in order, one ``rng`` for all)."""
    targets = split_targets(occs, target, power, min_count)
    for p in range(am.num_pdfs):
        g = am.get_pdf(p)
        if g.num_gauss < targets[p]:
            split_gmm(g, int(targets[p]), perturb_factor, rng)
