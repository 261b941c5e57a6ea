"""Acoustic scorers: per-frame, per-pdf log-likelihoods of an utterance, for any model.

A decode dir's model is found Kaldi's way, in its parent dir (the exp dir):

* ``final.pt``: a neural model (:mod:`kdhybrid.nnet`); log-likelihood = log posterior -
  log prior (the hybrid "pseudo-likelihood"), priors from the training labels;
* ``final.pkl``: a GMM-HMM (:mod:`kdhybrid.gmm`); log-likelihood of each pdf's GMM;
* ``ensemble.json``: an ensemble of neural models (:mod:`kdhybrid.distill.ensemble`).

Every scorer takes the data dir's raw features (fbank) with the speaker's CMVN stats and
applies its own feature pipeline, so all models decode one data dir through one code path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from kdhybrid.io.datadir import iter_utterance_features

Pathlike = Union[str, Path]


class AcousticScorer:
    """Base class. ``num_pdfs``; :meth:`loglikes` on a batch of utterances."""

    num_pdfs: int = 0
    description: str = ""

    def loglikes(self, feats: Sequence[np.ndarray], cmvn: Sequence[Optional[np.ndarray]],
                 utts: Optional[Sequence[str]] = None) -> List[torch.Tensor]:
        """:param feats: per utterance (T_i, F) float32 fbank. :param cmvn: per utterance the
        speaker's (2, F+1) CMVN stats or None. :param utts: the utterance ids (needed by
        speaker-adapted GMMs, whose fMLLR transform is the speaker's).
        :return: per utterance (T_i, num_pdfs) float32 log-likelihoods (unscaled)."""
        raise NotImplementedError


class GmmScorer(AcousticScorer):
    """Log-likelihoods of a GMM-HMM's pdfs on its features (:class:`kdhybrid.gmm.feats.FeaturePipeline`:
    cepstra + deltas, or spliced cepstra through ``final.mat``, then fMLLR).

    :param model: ``final`` or, for the first pass of a speaker-adapted system, ``final.alimdl``.
    :param transform_dir: dir with the speakers' ``trans.*`` (fMLLR) for ``data_dir``; a
        speaker-adapted model (one with ``final.alimdl``) decoded without them raises."""

    def __init__(self, model_dir: Pathlike, model: str = "final", transform_dir: Optional[Pathlike] = None,
                 data_dir: Optional[Pathlike] = None):
        from kdhybrid.gmm.feats import FeaturePipeline
        from kdhybrid.gmm.gauss_post import PdfGaussians
        from kdhybrid.gmm.model import GmmHmm

        d = Path(model_dir)
        self.pipeline = FeaturePipeline.from_model_dir(d, transform_dir, data_dir, speaker_independent=model != "final")
        self.model = GmmHmm.load(d, name=model)
        self.num_pdfs = self.model.num_pdfs
        g = PdfGaussians.from_am(self.model.am)
        # (1 + 2 D, G) float32: a frame's [1, x, x^2] times this is every Gaussian's log-likelihood
        # (gconst + means_invvars . x - 0.5 inv_vars . x^2, Kaldi's DiagGmm::LogLikelihoods)
        self.weights = np.ascontiguousarray(np.concatenate(
            [g.gconsts[:, None], g.means_invvars, -0.5 * g.inv_vars], axis=1).T, dtype=np.float32)
        self.starts = g.offsets[:-1]  # first Gaussian of each pdf
        self.owner = np.repeat(np.arange(g.num_pdfs), np.diff(g.offsets))  # (G,) the pdf of each Gaussian
        self.description = (f"GMM-HMM {d}/{model} ({self.num_pdfs} pdfs, {len(self.owner)} Gaussians"
                            f"{', fMLLR from ' + str(transform_dir) if transform_dir else ''})")

    def pdf_loglikes(self, x: np.ndarray) -> np.ndarray:
        """(T, D) features -> (T, num_pdfs) float32: log sum over each pdf's Gaussians, in float32
        as Kaldi's decodable (DiagGmm::LogLikelihoods, then a log-sum-exp from each pdf's max)."""
        x = np.asarray(x, dtype=np.float32)
        if not len(x):
            return np.zeros((0, self.num_pdfs), np.float32)
        ll = np.concatenate([np.ones((len(x), 1), np.float32), x, x * x], axis=1) @ self.weights  # (T, G)
        mx = np.maximum.reduceat(ll, self.starts, axis=1)  # (T, P)
        ll -= mx[:, self.owner]
        np.exp(ll, out=ll)
        return mx + np.log(np.add.reduceat(ll, self.starts, axis=1))

    def loglikes(self, feats, cmvn, utts=None):
        if self.pipeline.transforms is not None and utts is None:
            raise ValueError("GmmScorer: fMLLR needs the utterance ids")
        utts = utts if utts is not None else [""] * len(feats)
        return [torch.from_numpy(self.pdf_loglikes(self.pipeline(u, f, c))) for u, f, c in zip(utts, feats, cmvn)]


def nnet_inputs(feats: Sequence[np.ndarray], cmvn: Sequence[Optional[np.ndarray]]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Padded (N, T, F) float32 network inputs (per-speaker mean normalisation, as the
    training cuts apply it) and (N,) int64 lengths."""
    from kdhybrid.features.cmvn import apply_cmvn

    xs = [apply_cmvn(f, c, False) if c is not None else f for f, c in zip(feats, cmvn)]
    lengths = torch.tensor([len(x) for x in xs], dtype=torch.int64)
    # padded in numpy: the features may be read-only (memory-mapped archives), which
    # torch.from_numpy warns about; the padded copy is writable
    out = np.zeros((len(xs), int(lengths.max()), xs[0].shape[1]), dtype=np.float32)
    for i, x in enumerate(xs):
        out[i, : len(x)] = x
    return torch.from_numpy(out), lengths


class NnetScorer(AcousticScorer):
    """Log posterior - log prior of a hybrid network (``final.pt``)."""

    def __init__(self, final_pt: Pathlike, head: str = "main"):
        from kdhybrid.train.trainer import load_final

        self.model, self.log_priors, ck = load_final(final_pt)
        self.num_pdfs = int(ck["num_pdfs"])
        self.head = head
        self.input_features = self.model.cfg.input_features
        self.description = f"{self.model.cfg.arch} {final_pt} ({self.num_pdfs} pdfs, {self.model.num_params()} parameters)"

    @classmethod
    def from_model(cls, model, log_priors: torch.Tensor, head: str = "main") -> "NnetScorer":
        """A scorer of a network in memory (e.g. during training), with ``log_priors`` (num_pdfs,)."""
        self = cls.__new__(cls)
        self.model, self.log_priors, self.head = model, log_priors, head
        self.num_pdfs = int(model.cfg.num_pdfs)
        self.input_features = model.cfg.input_features
        self.description = f"{model.cfg.arch} in memory ({self.num_pdfs} pdfs, {model.num_params()} parameters)"
        return self

    @torch.no_grad()
    def log_posteriors(self, feats, cmvn) -> List[torch.Tensor]:
        """Per utterance (T_i, num_pdfs) log posteriors at the input frame rate."""
        x, lengths = nnet_inputs(feats, cmvn)
        lp = self.model.log_posteriors(x, lengths, self.head)
        return [lp[i, : int(n)] for i, n in enumerate(lengths)]

    def loglikes(self, feats, cmvn, utts=None):
        return [lp - self.log_priors[None, :] for lp in self.log_posteriors(feats, cmvn)]


def check_input_features(scorer: AcousticScorer, data_dir: Pathlike, have: Optional[str] = None) -> None:
    """Refuse a data dir (or cuts) whose features are not those the network was trained on
    (both are 40-dimensional in the recipes, so nothing else would notice).

    :param have: the features of ``data_dir`` when known otherwise (cuts record them:
        :func:`kdhybrid.data.cuts.read_cuts_info`; "" when unrecorded, not checked); default
        :func:`kdhybrid.io.datadir.feature_kind` of the data dir.
    :raises ValueError: naming the data dir, its features, the model and its features."""
    from kdhybrid.io.datadir import feature_kind

    want = getattr(scorer, "input_features", "")
    have = feature_kind(data_dir) if have is None else have
    if want and have and want != have:
        raise ValueError(f"{data_dir}: its features are {have}, but {scorer.description} was trained on {want} "
                         f"features: give it the data dir made for it (e.g. data-fmllr-tri3/<set> from steps/make_fmllr_feats.sh)")


def load_scorer(model_dir: Pathlike, gmm_model: str = "final", transform_dir: Optional[Pathlike] = None,
                data_dir: Optional[Pathlike] = None) -> AcousticScorer:
    """The scorer of an exp dir: ``ensemble.json``, ``final.pt`` or ``final.pkl`` (first found);
    a GMM's ``gmm_model``, ``transform_dir`` and ``data_dir`` go to :class:`GmmScorer`; a
    network's inputs are checked against ``data_dir`` (:func:`check_input_features`)."""
    d = Path(model_dir)
    if (d / "ensemble.json").is_file():
        from kdhybrid.distill.ensemble import EnsembleScorer

        scorer: AcousticScorer = EnsembleScorer.load(d)
    elif (d / "final.pt").is_file():
        scorer = NnetScorer(d / "final.pt")
    elif (d / "final.pkl").is_file():
        return GmmScorer(d, gmm_model, transform_dir, data_dir)
    else:
        raise FileNotFoundError(f"{d}: no model (ensemble.json, final.pt or final.pkl)")
    if data_dir is not None:
        check_input_features(scorer, data_dir)
    return scorer


# Frames per acoustic-model batch at inference (decode, dump, ensemble weight search). Above
# ~32 MB (glibc's largest dynamic mmap threshold) every activation tensor is a fresh mmap that
# the kernel zero-fills page by page: at 20,000 frames a third of the teacher dump's time was
# system time. 2,500 frames keep the tensors on the heap; the forward runs 1.6x faster and
# peaks at half the memory, with outputs equal to within float rounding (padding is replicated
# edges, so an utterance's outputs do not depend on its batch).
BATCH_FRAMES = 2500


def iter_feature_batches(data_dir: Pathlike, max_frames: int = BATCH_FRAMES) -> Iterator[Tuple[List[str], List[np.ndarray], List[Optional[np.ndarray]]]]:
    """Batches (utts, fbank (T, F) float32, speaker CMVN stats) of a data dir, in its order,
    each with at most ``max_frames`` frames (or one utterance). Errors name the data dir and
    the utterance (:func:`kdhybrid.io.datadir.iter_utterance_features`)."""
    utts, feats, cmvns, frames = [], [], [], 0
    for utt, f, c in iter_utterance_features(data_dir):
        if utts and frames + len(f) > max_frames:
            yield utts, feats, cmvns
            utts, feats, cmvns, frames = [], [], [], 0
        utts.append(utt)
        feats.append(np.asarray(f, dtype=np.float32))
        cmvns.append(c)
        frames += len(f)
    if utts:
        yield utts, feats, cmvns
