"""lhotse cuts for acoustic-model training: features from a Kaldi data dir, the speaker's
CMVN statistics and frame-level senone (pdf-id) labels as a TemporalArray custom field.

The labels come from an alignment dir (``ali.*.gz`` of transition-ids plus ``final.mdl``,
ours or real Kaldi's in text form) through the transition model's transition-id -> pdf
table, as Kaldi's ``ali-to-pdf``. A label sequence may differ from the feature frames by one
frame (padded/trimmed, counted); a larger mismatch is an error naming the utterance.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np

from kdhybrid.io.datadir import feature_kind, read_data_dir
from kdhybrid.io.tables import KaldiFormatError, atomic_write_text, read_matrix

Pathlike = Union[str, Path]
log = logging.getLogger("kdhybrid.data")

LABEL_FIELD = "pdf_ali"
CMVN_FIELD = "cmvn"


def pdf_alignments(ali_dir: Pathlike) -> Tuple[Dict[str, np.ndarray], int]:
    """(utt -> (T,) int32 pdf-ids, number of pdfs) from an alignment dir."""
    from kdhybrid.gmm.kaldi_model import read_transition_model
    from kdhybrid.gmm.train import read_alignments

    tables = read_transition_model(Path(ali_dir) / "final.mdl")
    out = {}
    for u, a in read_alignments(ali_dir).items():
        if a.size and (a.min() < 1 or a.max() >= len(tables.tid2pdf)):
            raise KaldiFormatError(f"{ali_dir}: utterance '{u}' has transition-ids outside [1, {len(tables.tid2pdf) - 1}]")
        out[u] = tables.tid2pdf[a]
    return out, tables.num_pdfs


def read_cuts_info(cuts_file: Pathlike) -> Dict:
    """What made a cuts file: the ``make_cuts.json`` beside it (num_pdfs, feat_dim, cmvn,
    counts, data and alignment dirs), or {} when it has none."""
    import json

    info = Path(cuts_file).parent / "make_cuts.json"
    return json.loads(info.read_text()) if info.is_file() else {}


def make_cuts(data_dir: Pathlike, out_dir: Pathlike, ali_dir: Optional[Pathlike] = None, frame_shift: float = 0.01) -> Dict[str, int]:
    """Write ``<out_dir>/cuts.jsonl.gz`` (and the arrays under ``<out_dir>/arrays``).

    Utterances without an alignment (when ``ali_dir`` is given) are left out and counted.
    Without cmvn.scp (speaker-adapted features of steps/make_fmllr_feats.sh) the cuts carry no
    CMVN stats and the features are used as they are.
    :return: counts (cuts, frames, without_alignment, length_fixed, num_pdfs, feat_dim, cmvn,
        features: :func:`kdhybrid.io.datadir.feature_kind`).
    """
    from lhotse import CutSet
    from lhotse.features.io import NumpyFilesWriter
    from lhotse.kaldi import load_kaldi_data_dir
    from lhotse.utils import fastcopy

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dd = read_data_dir(data_dir)
    if not dd.feats_scp:
        raise KaldiFormatError(f"{data_dir}: feats.scp is needed (steps/make_fbank.sh, steps/make_fmllr_feats.sh)")
    if not dd.cmvn_scp and not (data_dir / "feats_origin.json").is_file():
        raise KaldiFormatError(f"{data_dir}: cmvn.scp is needed for fbank features (steps/compute_cmvn_stats.sh); "
                               f"only speaker-adapted features (steps/make_fmllr_feats.sh) are used without it")
    recs, sups, feats = load_kaldi_data_dir(data_dir, sampling_rate=16000, frame_shift=frame_shift)
    sups = sups.to_eager() if sups is not None else None
    if feats is None or len(feats) != len(dd.feats_scp):
        raise KaldiFormatError(f"{data_dir}/feats.scp: lhotse imported {0 if feats is None else len(feats)} of {len(dd.feats_scp)} feature entries")
    cuts = CutSet.from_manifests(recordings=recs, supervisions=sups, features=feats).sort_by_recording_id()
    alis, num_pdfs = pdf_alignments(ali_dir) if ali_dir else ({}, 0)
    counts = {"cuts": 0, "frames": 0, "without_alignment": 0, "length_fixed": 0, "num_pdfs": num_pdfs,
              "feat_dim": int(next(iter(feats)).num_features), "cmvn": bool(dd.cmvn_scp), "features": feature_kind(data_dir)}
    cmvn = {s: read_matrix(dd.cmvn_scp[s]) for s in dd.spk2utt} if dd.cmvn_scp else {}
    out, left_out = [], []
    with NumpyFilesWriter(out_dir / "arrays") as w:
        cmvn_arrays = {s: w.store_array(f"cmvn_{s}", m.astype(np.float64)) for s, m in cmvn.items()}
        for cut in cuts:
            utt = cut.supervisions[0].id if cut.supervisions else cut.recording_id
            cut.id = utt  # the Kaldi utterance id, as in every other table
            if not cut.supervisions and sups is not None:
                sup = sups[utt] if utt in sups else None
                if sup is not None:  # lhotse drops it when the audio is a few ms longer than the features
                    cut.supervisions = [fastcopy(sup, start=0.0, duration=min(sup.duration, cut.duration))]
            nf = cut.num_frames
            if cmvn_arrays:
                cut = cut.with_custom(CMVN_FIELD, cmvn_arrays[dd.utt2spk[utt]])
            if ali_dir:
                if utt not in alis:
                    counts["without_alignment"] += 1
                    left_out.append(utt)
                    continue
                lab = alis[utt]
                if abs(len(lab) - nf) > 1:
                    raise KaldiFormatError(f"{ali_dir}: utterance '{utt}' has {len(lab)} alignment frames but {nf} feature frames")
                if len(lab) != nf:
                    lab = np.concatenate([lab, lab[-1:]])[:nf] if len(lab) < nf else lab[:nf]
                    counts["length_fixed"] += 1
                cut = cut.with_custom(LABEL_FIELD, w.store_array(utt, lab.astype(np.int32), frame_shift=frame_shift, temporal_dim=0))
            out.append(cut)
            counts["cuts"] += 1
            counts["frames"] += nf
    CutSet.from_cuts(out).to_file(out_dir / "cuts.jsonl.gz")
    if ali_dir:  # the utterances that failed to align, by name (never trained on with wrong labels)
        atomic_write_text(out_dir / "without_alignment.txt", "".join(u + "\n" for u in left_out))
        counts["without_alignment_first"] = left_out[:5]
    return counts
