"""GMM-HMM acoustic models: kaldi-hmm-gmm objects, Kaldi's file formats, numpy EM.

A model is Kaldi's trio: a ``ContextDependency`` (the tree), a ``TransitionModel`` and an
``AmDiagGmm`` (one diagonal GMM per pdf). On disk an exp dir holds what Kaldi writes:

* ``final.mdl``: Kaldi's text model (``<TransitionModel> ... </TransitionModel>`` followed by
  ``<DIMENSION> D <NUMPDFS> N <DiagGMM> ...``), readable by Kaldi's ``gmm-copy``;
* ``tree``: Kaldi's binary ContextDependency;
* ``final.pkl``: the same objects pickled, which is how kdhybrid reloads them (kaldi-hmm-gmm
  has no reader for Kaldi's model files).

EM statistics are computed with numpy (vectorised over the frames of each pdf); the M-step
follows Kaldi's ``MleDiagGmmUpdate`` (variance floor, minimum occupancy and weight) and
mixing up uses Kaldi's own ``AmDiagGmm.split_by_count``.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from kdhybrid.kaldi_libs import kaldi_hmm_gmm as khg

Pathlike = Union[str, Path]


@dataclass
class GmmHmm:
    """A GMM-HMM system: topology, tree, transition model and GMMs."""

    topo: "khg.HmmTopology"
    tree: "khg.ContextDependency"
    tm: "khg.TransitionModel"
    am: "khg.AmDiagGmm"

    @property
    def num_pdfs(self) -> int:
        return self.am.num_pdfs

    @property
    def num_gauss(self) -> int:
        return self.am.num_gauss

    def tid2pdf(self) -> np.ndarray:
        """(num_transition_ids + 1,) int32: pdf of each transition-id (index 0 unused: -1)."""
        arr = np.asarray(self.tm.transition_id_to_pdf_array(), dtype=np.int32)
        if arr.shape[0] == self.tm.num_transition_ids:
            arr = np.concatenate([[-1], arr]).astype(np.int32)
        return arr

    def tid2phone(self) -> np.ndarray:
        out = np.zeros(self.tm.num_transition_ids + 1, dtype=np.int32)
        for t in range(1, self.tm.num_transition_ids + 1):
            out[t] = self.tm.transition_id_to_phone(t)
        return out

    # -------------------------------------------------------------- persistence
    def save(self, exp_dir: Pathlike, name: str = "final", mdl_file: Optional[str] = None) -> None:
        """Write ``<name>.mdl`` (Kaldi text; or ``mdl_file``, e.g. ``final.alimdl``),
        ``<name>.pkl`` and ``tree``."""
        exp_dir = Path(exp_dir)
        exp_dir.mkdir(parents=True, exist_ok=True)
        tmp = exp_dir / f"{name}.pkl.tmp"
        with open(tmp, "wb") as f:
            pickle.dump({"topo": str(self.topo), "tree": self.tree, "tm": self.tm, "am": self.am}, f)
        tmp.replace(exp_dir / f"{name}.pkl")
        mdl = exp_dir / (mdl_file or f"{name}.mdl")
        tmp = mdl.with_name(mdl.name + ".tmp")
        tmp.write_text(kaldi_text_model(self.tm, self.am))
        tmp.replace(mdl)
        self.tree.write(binary=True, filename=str(exp_dir / "tree.tmp"))
        (exp_dir / "tree.tmp").replace(exp_dir / "tree")

    @classmethod
    def load(cls, exp_dir: Pathlike, name: str = "final") -> "GmmHmm":
        p = Path(exp_dir) / f"{name}.pkl"
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no model (train it first, or give a kdhybrid exp dir)")
        with open(p, "rb") as f:
            d = pickle.load(f)
        topo = khg.HmmTopology()
        topo.read(d["topo"])
        return cls(topo, d["tree"], d["tm"], d["am"])


def _vec(v: np.ndarray) -> str:
    return " [ " + " ".join(f"{x:.8g}" for x in np.asarray(v).ravel()) + " ]"


def _mat(m: np.ndarray) -> str:
    rows = ["  " + " ".join(f"{x:.8g}" for x in r) for r in np.atleast_2d(m)]
    return " [\n" + "\n".join(rows) + " ]"


def kaldi_text_model(tm: "khg.TransitionModel", am: "khg.AmDiagGmm") -> str:
    """Kaldi's text ``final.mdl``: the transition model, then the AmDiagGmm."""
    out = [str(tm).rstrip() + "\n"]
    out.append(f"<DIMENSION> {am.dim} <NUMPDFS> {am.num_pdfs} ")
    for p in range(am.num_pdfs):
        g = am.get_pdf(p)
        out.append("<DiagGMM> \n")
        out.append("<GCONSTS> " + _vec(g.gconsts) + " \n")
        out.append("<WEIGHTS> " + _vec(g.weights) + " \n")
        out.append("<MEANS_INVVARS> " + _mat(g.means_invvars) + " \n")
        out.append("<INV_VARS> " + _mat(g.inv_vars) + " \n")
        out.append("</DiagGMM> ")
    return "".join(out) + "\n"


# ----------------------------------------------------------------------- EM


@dataclass
class GmmStats:
    """Sufficient statistics of every Gaussian of every pdf (float64)."""

    occ: List[np.ndarray]  # per pdf (M,)
    x: List[np.ndarray]  # per pdf (M, D)
    xx: List[np.ndarray]  # per pdf (M, D)
    loglike: float = 0.0
    frames: int = 0

    @classmethod
    def zeros(cls, am: "khg.AmDiagGmm") -> "GmmStats":
        occ, x, xx = [], [], []
        d = am.dim
        for p in range(am.num_pdfs):
            m = am.get_pdf(p).num_gauss
            occ.append(np.zeros(m))
            x.append(np.zeros((m, d)))
            xx.append(np.zeros((m, d)))
        return cls(occ, x, xx)

    @classmethod
    def from_pdf_stats(cls, am: "khg.AmDiagGmm", parts: Sequence[dict], frames: int) -> "GmmStats":
        """Assemble the :func:`accumulate_pdf_stats` results of disjoint pdf sets; pdfs no
        part covers get zeros. The total log-likelihood is summed exactly (math.fsum), in
        pdf order."""
        import math

        st = cls.zeros(am)
        loglike = {}
        for part in parts:
            for i, p in enumerate(part["pdfs"]):
                st.occ[p], st.x[p], st.xx[p] = part["occ"][i], part["x"][i], part["xx"][i]
                loglike[p] = part["loglike"][i]
        st.loglike = math.fsum(loglike[p] for p in sorted(loglike))
        st.frames = int(frames)
        return st

    def pdf_occupancy(self) -> np.ndarray:
        return np.array([o.sum() for o in self.occ])


def gmm_loglikes(g: "khg.DiagGmm", x: np.ndarray) -> np.ndarray:
    """(T, M) per-component log-likelihoods (log weight included) of frames (T, D)."""
    return np.asarray(g.gconsts)[None, :] + x @ np.asarray(g.means_invvars).T - 0.5 * (x * x) @ np.asarray(g.inv_vars).T


def accumulate_pdf_stats(
    am: "khg.AmDiagGmm", feats: np.ndarray, pdf_of_frame: np.ndarray, pdfs: np.ndarray, stats_feats: Optional[np.ndarray] = None
) -> dict:
    """E-step for frames with known pdfs, for the pdfs ``pdfs`` only.

    Each pdf's statistics are computed from all of its frames in the order they have in
    ``feats``, in float64, whatever else is asked for: the numbers of a pdf do not depend on
    which other pdfs one call covers, so a job split over pdfs gives the same model.

    :param feats: (T, D) float32, all frames (any number of utterances, concatenated).
    :param pdf_of_frame: (T,) int, the pdf of each frame (from the alignment), -1 for none.
    :param pdfs: (P,) int, the pdfs wanted.
    :param stats_feats: (T, D) float32 or None: when given, the Gaussian posteriors come from
        ``feats`` and the statistics from ``stats_feats`` (Kaldi's gmm-acc-stats-twofeats, which
        train_sat.sh uses for the speaker-independent alignment model).
    :return: {"pdfs": list of P ints, "occ": P arrays (M,), "x" and "xx": P arrays (M, D),
        "loglike": P floats (each pdf's total frame log-likelihood)}, float64.
    """
    order = np.argsort(pdf_of_frame, kind="stable")
    sp = pdf_of_frame[order]
    out: dict = {"pdfs": [], "occ": [], "x": [], "xx": [], "loglike": []}
    for p in np.asarray(pdfs).tolist():
        s, e = np.searchsorted(sp, p, side="left"), np.searchsorted(sp, p, side="right")
        g = am.get_pdf(p)
        m, d = g.num_gauss, am.dim
        occ, sx, sxx, ll_tot = np.zeros(m), np.zeros((m, d)), np.zeros((m, d)), 0.0
        if e > s:
            x = feats[order[s:e]].astype(np.float64)
            ll = gmm_loglikes(g, x)
            mx = ll.max(axis=1, keepdims=True)
            post = np.exp(ll - mx)
            tot = post.sum(axis=1, keepdims=True)
            post /= tot
            ll_tot = float((mx[:, 0] + np.log(tot[:, 0])).sum())
            if stats_feats is not None:
                x = stats_feats[order[s:e]].astype(np.float64)
            occ, sx, sxx = post.sum(axis=0), post.T @ x, post.T @ (x * x)
        out["pdfs"].append(p)
        out["occ"].append(occ)
        out["x"].append(sx)
        out["xx"].append(sxx)
        out["loglike"].append(ll_tot)
    return out


@dataclass
class MleConfig:
    """Kaldi's MleDiagGmmOptions defaults."""

    min_variance: float = 0.001
    min_gaussian_occupancy: float = 10.0
    min_gaussian_weight: float = 1.0e-5
    update_weights: bool = True  # False: means and variances only (gmm-est --update-flags=mv)
    remove_low_count: bool = True  # False: keep every Gaussian (--remove-low-count-gaussians=false)


def mle_update(am: "khg.AmDiagGmm", st: GmmStats, cfg: Optional[MleConfig] = None) -> int:
    """M-step for every pdf. A Gaussian with too little occupancy keeps its mean and variance
    (and is removed if its weight falls below the floor, as long as one remains).

    :return: the number of Gaussians removed.
    """
    cfg = cfg or MleConfig()
    removed = 0
    for p in range(am.num_pdfs):
        g = am.get_pdf(p)
        occ = st.occ[p]
        tot = occ.sum()
        if tot <= 0:
            continue
        means = np.asarray(g.means, dtype=np.float64).copy()
        vars_ = np.asarray(g.vars, dtype=np.float64).copy()
        ok = occ >= cfg.min_gaussian_occupancy
        if ok.any():
            means[ok] = st.x[p][ok] / occ[ok, None]
            vars_[ok] = np.maximum(st.xx[p][ok] / occ[ok, None] - means[ok] ** 2, cfg.min_variance)
        if not cfg.update_weights:
            g.set_means(means.astype(np.float32))
            g.set_invvars((1.0 / vars_).astype(np.float32))
            g.compute_gconsts()
            continue
        weights = occ / tot
        keep = weights >= cfg.min_gaussian_weight if cfg.remove_low_count else np.ones(len(occ), bool)
        if not keep.any():
            keep[np.argmax(weights)] = True
        if not keep.all():
            removed += int((~keep).sum())
            means, vars_, weights = means[keep], vars_[keep], weights[keep]
            weights = weights / weights.sum()
            g.resize(int(keep.sum()), means.shape[1])
        g.set_weights(weights.astype(np.float32))
        g.set_means(means.astype(np.float32))
        g.set_invvars((1.0 / vars_).astype(np.float32))
        g.compute_gconsts()
    return removed


def single_gaussian(mean: np.ndarray, var: np.ndarray) -> "khg.DiagGmm":
    """A one-component DiagGmm: ``mean`` and ``var`` (D,) (variance already floored)."""
    g = khg.DiagGmm(nmix=1, dim=len(mean))
    g.set_weights(np.ones(1, np.float32))
    g.set_means(np.asarray(mean, dtype=np.float32)[None])
    g.set_invvars((1.0 / np.asarray(var, dtype=np.float64)).astype(np.float32)[None])
    g.compute_gconsts()
    return g


def boost_silence(am: "khg.AmDiagGmm", silence_pdfs: Sequence[int], boost: float) -> "khg.AmDiagGmm":
    """A copy of ``am`` with the weights of the silence pdfs scaled by ``boost`` (Kaldi's
    gmm-boost-silence: the GMM likelihood of silence frames rises by log(boost))."""
    out = khg.AmDiagGmm()
    out.copy_from_am_diag_gmm(am)
    if boost != 1.0:
        for p in silence_pdfs:
            g = out.get_pdf(int(p))
            g.set_weights((np.asarray(g.weights) * boost).astype(np.float32))
            g.compute_gconsts()
    return out
