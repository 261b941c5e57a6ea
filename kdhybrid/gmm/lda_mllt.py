"""LDA+MLLT triphone systems (Kaldi's steps/train_lda_mllt.sh, "tri2b").

The static cepstra of +-``splice_context`` frames are spliced and projected to ``lda_dim``
dimensions by LDA on the pdf classes of the input alignments (silence frames excluded,
Kaldi's ``weight-silence-post 0.0``). A new tree is built in that space; during EM, on
``mllt_iters``, an MLLT (semi-tied covariance) transform is estimated from the current
model and alignments, the model's means are rotated by it and it is composed into the
feature matrix. ``final.mat`` (Kaldi's binary matrix) is LDA followed by every MLLT.

The features live in shared memory (:class:`kdhybrid.gmm.train.UttFeatures`): the driver
re-projects them in place after each MLLT update, and the alignment workers see the new
ones. Statistics are computed in the driver in the data dir's order, so the result is
byte-identical run after run and for any number of jobs.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from kdhybrid.gmm.align import Lang
from kdhybrid.gmm.feats import GmmFeatConfig
from kdhybrid.gmm.lda import LdaStats, estimate_lda_with_eigs
from kdhybrid.gmm.mllt import accumulate_mllt_stats, estimate_mllt, transform_means
from kdhybrid.gmm.model import GmmHmm
from kdhybrid.gmm.train import EmConfig, Jobs, SystemHooks, single_threaded_blas, UttFeatures, frame_pdfs, read_alignments, silence_tids, train_tree_system
from kdhybrid.io.tables import write_kaldi_matrix

Pathlike = Union[str, Path]
log = logging.getLogger("kdhybrid.gmm")

#: est-mllt's default number of row-by-row sweeps
MLLT_SWEEPS = 200


@dataclass
class LdaMlltConfig:
    num_leaves: int = 2500
    tot_gauss: int = 15000
    lda_dim: int = 40
    mllt_iters: Sequence[int] = (2, 4, 6, 12)
    mllt_sweeps: int = MLLT_SWEEPS
    min_count: float = 100.0  # frames on each side of a tree split
    em: EmConfig = field(default_factory=lambda: EmConfig(
        num_iters=35, max_iter_inc=25, realign_iters=(10, 20, 30), boost_silence=1.0))
    feats: GmmFeatConfig = field(default_factory=lambda: GmmFeatConfig(delta_order=0, splice_context=4))


def estimate_lda_from_alignments(feats: UttFeatures, model: GmmHmm, alis, lang: Lang, dim: int):
    """Kaldi's ``ali-to-post | weight-silence-post 0.0 | acc-lda`` then ``est-lda``: LDA of
    the spliced cepstra of ``feats`` on the pdf classes of ``alis`` under ``model``.

    :return: ((dim, num_ceps * (2 c + 1)) float64 matrix, eigenvalues (largest first))."""
    pdf = frame_pdfs(feats, alis, model.tid2pdf(), silence_tids(model, lang))
    st = LdaStats.zeros(model.num_pdfs, feats.source.shape[1] * (2 * feats.splice + 1))
    for i in range(len(feats.utts)):
        st.accumulate(feats.spliced(i), pdf[feats.offsets[i] : feats.offsets[i + 1]])
    m, eigs = estimate_lda_with_eigs(st, dim)
    return np.asarray(m, dtype=np.float64), np.asarray(eigs)


@single_threaded_blas
def train_lda_mllt(data_dir: Pathlike, lang_dir: Pathlike, ali_dir: Pathlike, exp_dir: Pathlike, nj: int,
                   cfg: Optional[LdaMlltConfig] = None) -> dict:
    """Train an LDA+MLLT system into ``exp_dir`` (final.mdl, tree, final.mat, 0.mat,
    ali.*.gz ...) from the alignments of ``ali_dir`` (e.g. tri1's)."""
    cfg = cfg or LdaMlltConfig()
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    lang = Lang(lang_dir)
    feats = UttFeatures.load(data_dir, cfg.feats)
    old = GmmHmm.load(ali_dir)
    lda, eigs = estimate_lda_from_alignments(feats, old, read_alignments(ali_dir), lang, cfg.lda_dim)
    write_kaldi_matrix(exp_dir / "0.mat", lda)
    feats.set_matrix(lda)
    matrix = {"m": lda}

    def iteration(it: int, model: GmmHmm, jobs: Jobs) -> Optional[dict]:
        if it not in cfg.mllt_iters:
            return None
        pdf = frame_pdfs(jobs.feats, jobs.alis, model.tid2pdf(), silence_tids(model, lang))
        st = accumulate_mllt_stats(model.am, jobs.feats.x, pdf)
        A, impr = estimate_mllt(st, cfg.mllt_sweeps)
        transform_means(model.am, A)
        matrix["m"] = A @ matrix["m"]
        jobs.feats.set_matrix(matrix["m"])
        log.info("iteration %d: MLLT on %.0f frames, auxiliary improvement %.4f per frame", it, st.beta, impr)
        return {"mllt_impr_per_frame": round(float(impr), 6)}

    def finish(model: GmmHmm, jobs: Jobs, out: Path) -> dict:
        write_kaldi_matrix(out / "final.mat", matrix["m"])
        kept = float(eigs[: cfg.lda_dim].sum() / max(eigs.sum(), 1e-30))
        return {"lda_dim": cfg.lda_dim, "lda_eigenvalue_share_kept": round(kept, 6)}

    return train_tree_system(data_dir, lang_dir, ali_dir, exp_dir, nj, cfg, feats, stage=2,
                             hooks=SystemHooks(iteration=iteration, finish=finish))
