"""Speaker-adapted training with fMLLR (Kaldi's steps/train_sat.sh, "tri3b"), and the
per-speaker transform estimation that alignment and decoding share.

Features are the input system's (spliced cepstra through its ``final.mat``); every speaker
gets an fMLLR transform ``[A b]`` (:mod:`kdhybrid.gmm.fmllr`). Training starts from the
input dir's ``trans.*`` when it has them, else estimates them with the input model and
alignments; it builds a tree on the adapted features, and on ``fmllr_iters`` re-estimates
each speaker's transform with the current model and composes it with the old one. At the
end ``final.alimdl`` is the speaker-independent alignment model: the final model's
Gaussian posteriors on the adapted features, with means and variances re-estimated on the
unadapted ones (Kaldi's gmm-acc-stats-twofeats, gmm-est --update-flags=mv); alignment and
decoding use it for their first pass.

A speaker with too few frames (Kaldi's --fmllr-min-count, 500) keeps the identity; it is
named in the log and counted in ``train.json``.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from kdhybrid.gmm.align import Lang
from kdhybrid.gmm.feats import GmmFeatConfig, read_transforms
from kdhybrid.gmm.fmllr import KALDI_FMLLR_NUM_ITERS, accumulate_fmllr_stats, compose_affine, estimate_fmllr, identity_transform
from kdhybrid.gmm.gauss_post import PdfGaussians
from kdhybrid.gmm.model import GmmHmm, MleConfig, mle_update
from kdhybrid.gmm.train import EmConfig, Jobs, SystemHooks, UttFeatures, frame_pdfs, share_by_size, silence_tids, single_threaded_blas, train_tree_system
from kdhybrid.io.tables import read_kaldi_matrix, write_transform_ark
from kdhybrid.kaldi_libs import kaldi_hmm_gmm as khg

Pathlike = Union[str, Path]
log = logging.getLogger("kdhybrid.gmm")


@dataclass
class SatConfig:
    num_leaves: int = 2500
    tot_gauss: int = 15000
    fmllr_iters: Sequence[int] = (2, 4, 6, 12)
    fmllr_sweeps: int = 10  # Kaldi sweeps 40; 10 reach the same objective to 1e-8 per frame (tests), 4x faster
    silence_weight: float = 0.0  # of silence frames in the fMLLR statistics
    min_count: float = 100.0  # frames on each side of a tree split
    em: EmConfig = field(default_factory=lambda: EmConfig(
        num_iters=35, max_iter_inc=25, realign_iters=(10, 20, 30), boost_silence=1.0))
    feats: GmmFeatConfig = field(default_factory=GmmFeatConfig)  # replaced by the input dir's


def estimate_speaker_transforms(
    am: "khg.AmDiagGmm", x: np.ndarray, pdf_of_frame: np.ndarray, speaker_rows: Dict[str, np.ndarray],
    sweeps: int = KALDI_FMLLR_NUM_ITERS, weights: Optional[np.ndarray] = None,
) -> Tuple[Dict[str, np.ndarray], dict]:
    """gmm-est-fmllr for every speaker: statistics of the speaker's frames ``x[rows]`` (T, D)
    with known pdfs (-1: not counted, e.g. silence) under ``am``, then the full update.
    ``weights`` (T,) optionally weights the frames (e.g. silence 0.01 in decoding).

    :return: (speaker -> (D, D + 1) float64 ``[A b]``, :func:`summarize_transforms` of them)."""
    w, infos = _speaker_transforms(am, x, pdf_of_frame, speaker_rows, sweeps, weights)
    return w, summarize_transforms(infos)


def _speaker_transforms(am, x, pdf_of_frame, speaker_rows, sweeps, weights=None):
    """(speaker -> W, speaker -> the estimate's info) for the speakers of ``speaker_rows``."""
    gs = PdfGaussians.from_am(am)
    out: Dict[str, np.ndarray] = {}
    infos: Dict[str, dict] = {}
    for spk in sorted(speaker_rows):
        rows = speaker_rows[spk]
        st = accumulate_fmllr_stats(gs, x[rows], pdf_of_frame[rows], None if weights is None else weights[rows])
        W, info = estimate_fmllr(st, sweeps)
        out[spk] = W
        infos[spk] = {k: info[k] for k in ("frames", "objf_impr") if k in info} | ({"fallback": info["fallback"]} if "fallback" in info else {})
    return out, infos


def summarize_transforms(infos: Dict[str, dict]) -> dict:
    """``speakers``; ``fallback`` {speaker: why} for those left at the identity (each named in
    the log); ``objf_impr_per_frame`` over all frames (summed exactly, in speaker order)."""
    import math

    fallback = {}
    for spk in sorted(infos):
        if "fallback" in infos[spk]:
            fallback[spk] = f"{infos[spk]['fallback']} ({infos[spk]['frames']:.0f} frames)"
            log.warning("fMLLR: speaker %s keeps the identity: %s", spk, fallback[spk])
    impr = math.fsum(infos[s]["objf_impr"] for s in sorted(infos))
    frames = math.fsum(infos[s]["frames"] for s in sorted(infos))
    return {"speakers": len(infos), "fallback": fallback, "objf_impr_per_frame": round(impr / max(frames, 1.0), 6)}


def _job_transforms(feats: UttFeatures, model: GmmHmm, pdf_of_frame: np.ndarray, speaker_rows: Dict[str, np.ndarray], sweeps: int):
    """One worker's share (run by :meth:`kdhybrid.gmm.train.Jobs.call_each`)."""
    return _speaker_transforms(model.am, feats.x, pdf_of_frame, speaker_rows, sweeps)


def parallel_speaker_transforms(jobs: Jobs, pdf_of_frame: np.ndarray, speaker_rows: Dict[str, np.ndarray],
                                sweeps: int) -> Tuple[Dict[str, np.ndarray], dict]:
    """:func:`estimate_speaker_transforms` on the workers' current model and features, the
    speakers shared out by frame count; each speaker's transform is computed by one worker
    from its own frames, so the result does not depend on the number of jobs."""
    spks = sorted(speaker_rows)
    shares = share_by_size(spks, [len(speaker_rows[s]) for s in spks], len(jobs.conns))
    w: Dict[str, np.ndarray] = {}
    infos: Dict[str, dict] = {}
    args = [(_job_transforms, pdf_of_frame, {s: speaker_rows[s] for s in sh}, sweeps) for sh in shares]
    for ws, inf in jobs.call_each("run", args):
        w.update(ws)
        infos.update(inf)
    return w, summarize_transforms(infos)


def estimate_transforms_for_data(
    model: GmmHmm, pipeline, data_dir: Pathlike, pdfs_by_utt: Dict[str, np.ndarray], silence_pdfs: Sequence[int],
    silence_weight: float, sweeps: int = KALDI_FMLLR_NUM_ITERS,
) -> Tuple[Dict[str, np.ndarray], dict]:
    """fMLLR for every speaker of ``data_dir`` from per-frame pdfs (an alignment's, or a first
    decoding pass's best path), as Kaldi's align_fmllr.sh and decode_fmllr.sh do.

    :param pipeline: the speaker-independent :class:`~kdhybrid.gmm.feats.FeaturePipeline`.
    :param pdfs_by_utt: utt -> (T,) int pdfs; utterances without one do not count (a speaker
        with none keeps the identity, named in the summary).
    :param silence_pdfs: their frames are weighted by ``silence_weight``."""
    from kdhybrid.io.datadir import iter_utterance_features, read_data_dir

    spk_of = read_data_dir(data_dir).utt2spk
    xs, ps, spks = [], [], []
    for utt, f, c in iter_utterance_features(data_dir, require_cmvn=True):
        x = pipeline.speaker_independent(f, c)
        p = pdfs_by_utt.get(utt)
        if p is None or len(p) != len(x):
            p = np.full(len(x), -1, dtype=np.int32)
        xs.append(x)
        ps.append(np.asarray(p, dtype=np.int32))
        spks += [spk_of[utt]] * len(x)
    x, pdf = np.concatenate(xs), np.concatenate(ps)
    weights = np.where(np.isin(pdf, np.asarray(list(silence_pdfs), dtype=np.int64)), silence_weight, 1.0)
    spk_arr = np.asarray(spks)
    rows = {s: np.flatnonzero(spk_arr == s) for s in sorted(set(spks))}
    return estimate_speaker_transforms(model.am, x, pdf, rows, sweeps, weights)


def write_speaker_transforms(out_dir: Pathlike, transforms: Dict[str, np.ndarray], data_dir: Pathlike, nj: int) -> List[Path]:
    """``trans.<job>`` (Kaldi binary archives) for the per-speaker split of ``data_dir`` into
    ``nj`` jobs (Kaldi's split_data.sh without --per-utt): each speaker in one file."""
    from kdhybrid.io.datadir import split_data
    from kdhybrid.io.tables import read_text_table

    nj = min(nj, len(set(transforms)))
    files = []
    for j, d in enumerate(split_data(data_dir, nj, per_speaker=True), 1):
        spks = sorted(set(read_text_table(d / "utt2spk").values()))
        write_transform_ark(Path(out_dir) / f"trans.{j}", {s: transforms[s] for s in spks})
        files.append(Path(out_dir) / f"trans.{j}")
    return files


@single_threaded_blas
def train_sat(data_dir: Pathlike, lang_dir: Pathlike, ali_dir: Pathlike, exp_dir: Pathlike, nj: int,
              cfg: Optional[SatConfig] = None) -> dict:
    """Train a SAT system into ``exp_dir`` (final.mdl, final.alimdl, tree, final.mat, trans.*,
    ali.*.gz ...) from an LDA+MLLT alignment dir ``ali_dir`` (its final.mat and, if present,
    its trans.*)."""
    import json

    cfg = cfg or SatConfig()
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    ali_dir = Path(ali_dir)
    lang = Lang(lang_dir)
    cfg.feats = GmmFeatConfig(**json.loads((ali_dir / "feat_opts.json").read_text()))
    matrix = read_kaldi_matrix(ali_dir / "final.mat") if cfg.feats.splice_context else None
    feats = UttFeatures.load(data_dir, cfg.feats, matrix)
    spk_rows = feats.speaker_rows()
    feats.set_transforms({s: identity_transform(feats.x.shape[1]) for s in spk_rows})  # makes the shared si copy
    trans: Dict[str, np.ndarray] = {}
    record: dict = {}

    def pdfs(model: GmmHmm, jobs: Jobs) -> np.ndarray:
        return frame_pdfs(jobs.feats, jobs.alis, model.tid2pdf(), silence_tids(model, lang) if cfg.silence_weight == 0 else None)

    def before_tree(jobs: Jobs, old: GmmHmm) -> dict:
        if list(ali_dir.glob("trans.*")):
            trans.update(read_transforms(ali_dir))
            missing = sorted(set(spk_rows) - set(trans))
            if missing:
                raise ValueError(f"{ali_dir}/trans.*: no transform for speaker '{missing[0]}' ({len(missing)} missing)")
            info = {"source": str(ali_dir)}
        else:
            jobs.call("set_model", old, False)  # features are still unadapted (identity transforms)
            w, info = parallel_speaker_transforms(jobs, pdfs(old, jobs), spk_rows, cfg.fmllr_sweeps)
            trans.update(w)
        jobs.feats.set_transforms(trans)
        record["fmllr_initial"] = info
        return {}

    def iteration(it: int, model: GmmHmm, jobs: Jobs) -> Optional[dict]:
        if it not in cfg.fmllr_iters:
            return None
        w, info = parallel_speaker_transforms(jobs, pdfs(model, jobs), spk_rows, cfg.fmllr_sweeps)
        for s in trans:
            trans[s] = compose_affine(w[s], trans[s])
        jobs.feats.set_transforms(trans)
        log.info("iteration %d: fMLLR for %d speakers, auxiliary improvement %.4f per frame (%d kept the identity)",
                 it, info["speakers"], info["objf_impr_per_frame"], len(info["fallback"]))
        return {"fmllr_impr_per_frame": info["objf_impr_per_frame"], "fmllr_fallback": len(info["fallback"])}

    def finish(model: GmmHmm, jobs: Jobs, out: Path) -> dict:
        # final.alimdl: the adapted model's posteriors, statistics of the unadapted features
        st, _ = jobs.accumulate(model, si_stats=True)
        am = khg.AmDiagGmm()
        am.copy_from_am_diag_gmm(model.am)
        mle_update(am, st, MleConfig(update_weights=False, remove_low_count=False))
        GmmHmm(model.topo, model.tree, model.tm, am).save(out, name="final.alimdl", mdl_file="final.alimdl")
        if matrix is not None:
            shutil.copy(ali_dir / "final.mat", out / "final.mat")
        write_speaker_transforms(out, trans, data_dir, nj)
        return {"fmllr_initial": record.get("fmllr_initial", {}), "speakers": len(trans)}

    return train_tree_system(data_dir, lang_dir, ali_dir, exp_dir, nj, cfg, feats, stage=3,
                             hooks=SystemHooks(before_tree=before_tree, iteration=iteration, finish=finish))
