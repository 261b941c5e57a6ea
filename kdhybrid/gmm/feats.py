"""Features for the GMM-HMM systems: fbank -> per-speaker CMVN -> cepstra -> deltas, or
spliced cepstra -> LDA+MLLT (``final.mat``) -> per-speaker fMLLR (``trans.*``).

Kaldi's GMM recipes use MFCCs with deltas. An MFCC is the DCT of the log-mel filterbank
(Kaldi's compute-mfcc-feats: DCT-II, orthonormal, liftering 22), so the cepstra here are
computed from the fbank features the neural models use, instead of extracting MFCCs a
second time. CMVN (mean normalisation, per speaker) is applied to the fbank first; as the
DCT is linear this equals mean-normalising the cepstra. ``cmvn_opts`` and the other
options are recorded in the exp dir, like Kaldi's ``cmvn_opts`` file.

Systems after tri1 follow Kaldi's train_lda_mllt.sh and train_sat.sh: the static cepstra of
+-``splice_context`` frames are spliced (Kaldi's splice-feats) and projected by the exp dir's
``final.mat`` (LDA then MLLT, Kaldi's binary matrix); a speaker-adapted system then applies
each speaker's fMLLR transform ``[A b]`` (Kaldi's ``trans.*`` archives). :class:`FeaturePipeline`
reads all of that from an exp dir, so training, alignment and decoding share one code path.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple, Union

import numpy as np

from kdhybrid.features.cmvn import apply_cmvn
from kdhybrid.io.datadir import iter_utterance_features

Pathlike = Union[str, Path]


@dataclass
class GmmFeatConfig:
    num_ceps: int = 13
    cepstral_lifter: float = 22.0
    delta_order: int = 2  # 0: static only; 2: + deltas + delta-deltas (train_deltas)
    delta_window: int = 2
    norm_vars: bool = False
    splice_context: int = 0  # > 0: +-c frames of static cepstra spliced, then final.mat (no deltas)


def dct_matrix(num_bins: int, num_ceps: int) -> np.ndarray:
    """(num_bins, num_ceps) orthonormal DCT-II, as Kaldi's ComputeDctMatrix."""
    n = np.arange(num_bins)
    k = np.arange(num_ceps)
    m = np.sqrt(2.0 / num_bins) * np.cos(np.pi / num_bins * (n[:, None] + 0.5) * k[None, :])
    m[:, 0] = np.sqrt(1.0 / num_bins)
    return m.astype(np.float32)


def lifter(num_ceps: int, q: float) -> np.ndarray:
    i = np.arange(num_ceps)
    return (1.0 + 0.5 * q * np.sin(np.pi * i / q)).astype(np.float32) if q else np.ones(num_ceps, np.float32)


def add_deltas(x: np.ndarray, order: int = 2, window: int = 2) -> np.ndarray:
    """Kaldi's add-deltas: (T, D) -> (T, D * (order + 1)), edges replicated."""
    outs = [x]
    cur = x
    denom = 2 * sum(i * i for i in range(1, window + 1))
    for _ in range(order):
        pad = np.pad(cur, ((window, window), (0, 0)), mode="edge")
        t = cur.shape[0]
        d = sum(i * (pad[window + i : window + i + t] - pad[window - i : window - i + t]) for i in range(1, window + 1)) / denom
        outs.append(d.astype(np.float32))
        cur = d
    return np.concatenate(outs, axis=1).astype(np.float32)


def cepstra(fbank: np.ndarray, cmvn_stats: Optional[np.ndarray], cfg: GmmFeatConfig) -> np.ndarray:
    """(T, num_bins) fbank -> (T, num_ceps) float32 mean-normalised static cepstra."""
    x = apply_cmvn(fbank, cmvn_stats, cfg.norm_vars) if cmvn_stats is not None else fbank
    return ((x @ dct_matrix(x.shape[1], cfg.num_ceps)) * lifter(cfg.num_ceps, cfg.cepstral_lifter)).astype(np.float32)


def gmm_features(fbank: np.ndarray, cmvn_stats: Optional[np.ndarray], cfg: GmmFeatConfig) -> np.ndarray:
    """(T, num_bins) fbank -> (T, num_ceps * (delta_order + 1)) float32 (deltas), or the
    (T, num_ceps * (2 c + 1)) spliced cepstra when ``cfg.splice_context`` = c > 0 (before
    ``final.mat``: use :class:`FeaturePipeline` for a model's features)."""
    c = cepstra(fbank, cmvn_stats, cfg)
    if cfg.splice_context:
        from kdhybrid.gmm.lda import splice_frames

        return splice_frames(c, cfg.splice_context)
    return add_deltas(c, cfg.delta_order, cfg.delta_window) if cfg.delta_order else c


def iter_gmm_features(data_dir: Pathlike, cfg: GmmFeatConfig) -> Iterator[Tuple[str, np.ndarray]]:
    """(utt, features) for every utterance of a data dir with feats.scp and cmvn.scp."""
    for utt, f, c in iter_utterance_features(data_dir, require_cmvn=True):
        yield utt, gmm_features(f, c, cfg)


class FeaturePipeline:
    """A GMM system's features: cepstra -> deltas, or spliced cepstra -> ``matrix`` (LDA+MLLT),
    then, when ``transforms`` are given, the speaker's fMLLR transform.

    :param matrix: (D, num_ceps * (2 c + 1)) float32 (``final.mat``), for spliced configs.
    :param transforms: speaker -> (D, D + 1) fMLLR ``[A b]``; ``utt2spk`` maps utterances to them.
    """

    def __init__(self, cfg: GmmFeatConfig, matrix: Optional[np.ndarray] = None,
                 transforms: Optional[Dict[str, np.ndarray]] = None, utt2spk: Optional[Dict[str, str]] = None):
        if cfg.splice_context and matrix is None:
            raise ValueError("a spliced feature config needs its matrix (final.mat)")
        self.cfg, self.matrix = cfg, matrix
        self.transforms, self.utt2spk = transforms, utt2spk

    @classmethod
    def from_model_dir(cls, model_dir: Pathlike, transform_dir: Optional[Pathlike] = None,
                       data_dir: Optional[Pathlike] = None, speaker_independent: bool = False) -> "FeaturePipeline":
        """The pipeline of the model in ``model_dir`` (``feat_opts.json``, ``final.mat``),
        with the fMLLR transforms ``trans.*`` of ``transform_dir`` for the speakers of
        ``data_dir`` when given.

        :param speaker_independent: the unadapted features are wanted (a SAT dir's first
            pass with ``final.alimdl``, or fMLLR estimation).
        :raises ValueError: naming the file when a speaker of ``data_dir`` has no transform,
            or when the dir holds a speaker-adapted model (``final.alimdl``) and neither
            transforms nor ``speaker_independent`` are given."""
        import json

        d = Path(model_dir)
        if transform_dir is None and not speaker_independent and (d / "final.alimdl.pkl").is_file():
            raise ValueError(f"{d}: a speaker-adapted (SAT) model needs the speakers' fMLLR transforms "
                             f"(steps/decode_fmllr.sh, steps/align_fmllr.sh, or --transform-dir), or its final.alimdl")
        cfg = GmmFeatConfig(**json.loads((d / "feat_opts.json").read_text()))
        matrix = None
        if cfg.splice_context:
            from kdhybrid.io.tables import read_kaldi_matrix

            matrix = read_kaldi_matrix(d / "final.mat").astype(np.float32)
        transforms = utt2spk = None
        if transform_dir is not None:
            from kdhybrid.io.tables import read_text_table

            transforms = read_transforms(transform_dir)
            utt2spk = dict(read_text_table(Path(data_dir) / "utt2spk"))
            missing = sorted(set(utt2spk.values()) - set(transforms))
            if missing:
                raise ValueError(f"{transform_dir}/trans.*: no fMLLR transform for speaker '{missing[0]}' of {data_dir} "
                                 f"({len(missing)} speakers missing)")
        return cls(cfg, matrix, transforms, utt2spk)

    def speaker_independent(self, fbank: np.ndarray, cmvn_stats: Optional[np.ndarray]) -> np.ndarray:
        """(T, num_bins) fbank -> (T, D) float32 features before fMLLR."""
        x = gmm_features(fbank, cmvn_stats, self.cfg)
        return (x @ self.matrix.T).astype(np.float32) if self.matrix is not None else x

    def __call__(self, utt: str, fbank: np.ndarray, cmvn_stats: Optional[np.ndarray]) -> np.ndarray:
        """(T, num_bins) fbank of ``utt`` -> (T, D) float32 features (fMLLR applied when set)."""
        x = self.speaker_independent(fbank, cmvn_stats)
        if self.transforms is not None:
            from kdhybrid.gmm.fmllr import apply_transform

            x = apply_transform(x, self.transforms[self.utt2spk[utt]])
        return x

    def iter_data_dir(self, data_dir: Pathlike) -> Iterator[Tuple[str, np.ndarray]]:
        """(utt, features) of every utterance of a data dir with feats.scp and cmvn.scp."""
        for utt, f, c in iter_utterance_features(data_dir, require_cmvn=True):
            yield utt, self(utt, f, c)


def write_pipeline_features(pipeline: FeaturePipeline, data_dir: Pathlike, ark: Pathlike, scp: Pathlike) -> Dict[str, int]:
    """The features ``pipeline`` makes of every utterance of ``data_dir`` (feats.scp, cmvn.scp),
    written as a binary Kaldi archive + scp (float32 (T, D) matrices; atomically: nothing is
    left half-written), for a neural model to train on and decode with (Kaldi's
    steps/nnet/make_fmllr_feats.sh).

    :return: utterance -> number of frames, in the data dir's order.
    :raises ValueError: naming the utterance when its features are not finite."""
    from kdhybrid.io.tables import MatrixWriter

    frames: Dict[str, int] = {}
    with MatrixWriter(str(ark), str(scp)) as w:
        for utt, x in pipeline.iter_data_dir(data_dir):
            if not np.isfinite(x).all():
                raise ValueError(f"{data_dir}: utterance '{utt}': the transformed features are not finite")
            w.write(utt, x.astype(np.float32))
            frames[utt] = int(x.shape[0])
    return frames


def read_transforms(transform_dir: Pathlike) -> Dict[str, np.ndarray]:
    """Every speaker's fMLLR transform in ``transform_dir/trans.*`` (Kaldi archives of
    (D, D + 1) matrices, ours or Kaldi's).

    :raises FileNotFoundError: naming the dir when it has no ``trans.*``;
        ValueError: when two archives hold the same speaker."""
    from kdhybrid.io.tables import read_transform_ark

    files = sorted(Path(transform_dir).glob("trans.*"), key=lambda p: p.name)
    files = [f for f in files if f.suffix.lstrip(".").isdigit() or f.name == "trans.ark"]
    if not files:
        raise FileNotFoundError(f"{transform_dir}: no trans.* (fMLLR transforms)")
    out: Dict[str, np.ndarray] = {}
    for f in files:
        for spk, w in read_transform_ark(f).items():
            if spk in out:
                raise ValueError(f"{f}: speaker '{spk}' has a transform in another trans.* file too")
            out[spk] = np.asarray(w, dtype=np.float64)
    return out
