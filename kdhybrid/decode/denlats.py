"""Denominator lattices: the competing hypotheses of sequence-discriminative training.

A denominator lattice is a k2 lattice of one training utterance, searched once with the
source model over a weak (unigram) HCLG, and rescored with the current network at every
training step instead of being searched again. Per arc it keeps

* ``labels``: pdf-id + 1 (-1 on the arcs into the final state, as every k2 lattice);
* ``frame`` (int32): the frame the arc consumes (the utterance's frame count on final arcs);
* ``tid`` (int32): its transition-id (phone, HMM state and pdf through the transition model);
* ``graph_scores`` (float32): its graph score (LM, pronunciation, transition log-probabilities);
* ``scores``: graph score + acwt * acoustic log-likelihood of the model that made it.

Lattices from :func:`kdhybrid.decode.k2_backend.search` are epsilon-free (every arc but the
final ones consumes one frame), so an arc's frame is the number of arcs on any path from the
start state to its source state; :func:`arc_frames` computes it from the topology (and refuses
a lattice where two paths reach a state after different numbers of frames).

A denominator-lattice dir (``steps/make_denlats.sh``) holds ``lat.JOB.pt`` per job (the decode
dirs' format, :func:`kdhybrid.decode.lattice.save_lattices`, words left out), ``denlats.JOB.json``
(what the job did; a job with both is done) and ``denlats.json``: the source model, its pdf
and transition-id counts, the silence phones, acwt and beams.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

Pathlike = Union[str, Path]
log = logging.getLogger("kdhybrid.denlats")


def arc_frames(lat) -> torch.Tensor:
    """(num_arcs,) int32: the frame each arc of a k2 FsaVec of lattices consumes.

    Counted with tropical forward scores of a copy whose arcs all score 1 (the longest
    path from the start) and -1 (the shortest); they must agree.

    :raises ValueError: when a state is reached after different numbers of frames (not a
        frame-synchronous lattice)."""
    import k2

    if lat.num_arcs == 0:
        return torch.zeros(0, dtype=torch.int32)
    tmp = k2.Fsa(lat.arcs.clone())
    if not tmp.properties & k2.fsa_properties.TOPSORTED:
        raise ValueError("lattice is not topologically sorted (k2.top_sort it first)")
    tmp.scores = torch.ones(tmp.num_arcs)
    longest = tmp.get_forward_scores(use_double_scores=True, log_semiring=False)
    tmp.scores = -torch.ones(tmp.num_arcs)
    shortest = -tmp.get_forward_scores(use_double_scores=True, log_semiring=False)
    src = lat.arcs.shape().row_ids(2).long()  # (num_arcs,) global index of each arc's source state
    lo, hi = shortest[src], longest[src]
    if not torch.equal(lo, hi):
        bad = int((lo != hi).nonzero()[0, 0])
        raise ValueError(f"arc {bad} of the lattices is reached after {int(lo[bad])} to {int(hi[bad])} frames: "
                         f"not a frame-synchronous (epsilon-free) lattice")
    return hi.to(torch.int32)


def add_frames(lat):
    """``lat`` with the ``frame`` attribute (:func:`arc_frames`) set when it has none."""
    if not hasattr(lat, "frame"):
        lat.frame = arc_frames(lat)
    return lat


def arc_utterances(lat) -> torch.Tensor:
    """(num_arcs,) int64: the index of the FSA (utterance) of each arc of an FsaVec."""
    shape = lat.arcs.shape()
    return shape.row_ids(1).long()[shape.row_ids(2).long()]


def lattice_frames(lat) -> List[int]:
    """Frames of each lattice of a vector (the frame of its final arcs; 0 for an empty one)."""
    add_frames(lat)
    out = torch.zeros(lat.shape[0], dtype=torch.int64)
    final = lat.labels == -1
    out.index_put_((arc_utterances(lat)[final],), lat.frame[final].long(), accumulate=False)
    return out.tolist()


@dataclass
class ArcIndex:
    """Where each arc of a vector of lattices reads its acoustic score.

    ``utt``, ``frame``, ``pdf``: (num_acoustic_arcs,) int64 for the arcs that consume a frame,
    ``acoustic``: (num_acoustic_arcs,) int64, their positions among all arcs."""

    utt: torch.Tensor
    frame: torch.Tensor
    pdf: torch.Tensor
    acoustic: torch.Tensor

    @classmethod
    def of(cls, lat) -> "ArcIndex":
        add_frames(lat)
        acoustic = (lat.labels > 0).nonzero().squeeze(1)
        return cls(arc_utterances(lat)[acoustic], lat.frame.long()[acoustic], lat.labels.long()[acoustic] - 1, acoustic)

    def gather(self, scaled_loglikes: torch.Tensor, num_arcs: int) -> torch.Tensor:
        """(num_arcs,) the acoustic score of each arc (0 on final arcs), same dtype as the input.

        :param scaled_loglikes: (N, T, P) acwt * log-likelihoods, padded; N = number of lattices."""
        out = scaled_loglikes.new_zeros(num_arcs)
        return out.index_put((self.acoustic,), scaled_loglikes[self.utt, self.frame, self.pdf])


def rescore(lat, scaled_loglikes: torch.Tensor, index: Optional[ArcIndex] = None):
    """``lat`` with every arc's score = graph score + the new acoustic score (in place; returns it).

    :param scaled_loglikes: (N, T, P) float acwt * log-likelihoods of the N utterances, padded.
    """
    index = index or ArcIndex.of(lat)
    scores = lat.graph_scores.to(scaled_loglikes.dtype) + index.gather(scaled_loglikes, lat.num_arcs)
    lat.scores = scores.to(torch.float32)
    return lat


def check_lattice_model(info: Dict[str, object], num_pdfs: int, num_tids: int, what: str = "the model") -> None:
    """Refuse lattices made with another model or tree.

    :param info: the lattice file's record (``num_pdfs``, ``num_transition_ids``, ``model``).
    :raises ValueError: naming both counts."""
    src = info.get("model", "?")
    if int(info["num_pdfs"]) != num_pdfs:
        raise ValueError(f"the lattices were made by {src} with {info['num_pdfs']} pdfs, but {what} has {num_pdfs} pdfs "
                         f"(another tree: make the lattices again with this model)")
    if int(info["num_transition_ids"]) != num_tids:
        raise ValueError(f"the lattices were made by {src} with {info['num_transition_ids']} transition-ids, but {what} has "
                         f"{num_tids} transition-ids (another tree or topology: make the lattices again with this model)")


def check_arcs(lat, tid2pdf: np.ndarray) -> None:
    """Every acoustic arc's transition-id is in the transition model and maps to its pdf.

    :param tid2pdf: (num_tids + 1,) int, the pdf of each transition-id (index 0 unused).
    :raises ValueError: naming the number of bad arcs and the first one."""
    real = lat.labels > 0
    tids = lat.tid.long()[real]
    pdfs = lat.labels.long()[real] - 1
    num_tids = len(tid2pdf) - 1
    out = (tids < 1) | (tids > num_tids)
    if bool(out.any()):
        raise ValueError(f"{int(out.sum())} lattice arcs have transition-ids outside [1, {num_tids}] "
                         f"(first: {int(tids[out][0])}): lattices of another model")
    t2p = torch.from_numpy(np.asarray(tid2pdf, dtype=np.int64))
    bad = t2p[tids] != pdfs
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(f"{int(bad.sum())} lattice arcs carry a pdf that their transition-id does not map to (first: "
                         f"transition-id {int(tids[i])} -> pdf {int(t2p[tids[i]])}, arc pdf {int(pdfs[i])}): lattices of another tree")


def select(lat, keep: Sequence[int]):
    """The lattices ``keep`` (indexes) of a vector, attributes included."""
    import k2

    return k2.index_fsa(lat, torch.tensor(list(keep), dtype=torch.int32))


def make_den_lattices(scorer, graph, data_dir: Pathlike, acwt: float, beam: float, lattice_beam: float, min_active: int,
                      max_active: int, batch_frames: int, search_frames: int = 1500) -> Tuple[List[str], object, Dict[str, float]]:
    """Denominator lattices of a data dir's utterances, searched as a decoder would
    (:func:`kdhybrid.decode.k2_backend.search`: Kaldi's beam, lattice beam, max-active) and kept
    with each arc's frame, pdf, transition-id and graph score (words are dropped).

    :param scorer: a :class:`kdhybrid.decode.acoustic.AcousticScorer` (the source model).
    :param graph: the k2 HCLG (:func:`kdhybrid.decode.k2_backend.hclg_to_k2`), usually of a
        unigram LM of the training transcripts.
    :return: (utterances, FsaVec of their lattices, counts: utts, frames, no_path, arcs per
        frame, seconds of acoustic scoring and of search)."""
    import k2

    from kdhybrid.decode.acoustic import iter_feature_batches
    from kdhybrid.decode.k2_backend import search

    all_utts, lats = [], []
    frames = no_path = 0
    t_am = t_search = 0.0
    for utts, feats, cmvn in iter_feature_batches(data_dir, batch_frames):
        t0 = time.time()
        scores = [acwt * ll for ll in scorer.loglikes(feats, cmvn)]
        t1 = time.time()
        lat, failed = search(graph, scores, beam, lattice_beam, min_active, max_active, search_frames, utts=utts, log=log)
        t_search += time.time() - t1
        t_am += t1 - t0
        no_path += failed
        if hasattr(lat, "aux_labels"):
            del lat.aux_labels
        lats.append(add_frames(lat))
        frames += sum(len(f) for f in feats)
        all_utts += utts
    if not lats:
        raise ValueError(f"{data_dir}: no utterances")
    lat = k2.cat(lats) if len(lats) > 1 else lats[0]
    stats = {"utts": len(all_utts), "frames": frames, "no_path": no_path, "arcs_per_frame": round(lat.num_arcs / max(frames, 1), 1),
             "seconds_acoustic": round(t_am, 2), "seconds_search": round(t_search, 2)}
    return all_utts, lat, stats


def read_denlats_info(den_dir: Pathlike) -> Dict[str, object]:
    """``<den_dir>/denlats.json``, with a clear error when the dir is not a finished one."""
    p = Path(den_dir) / "denlats.json"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: missing (make the lattices with steps/make_denlats.sh)")
    return json.loads(p.read_text())


class DenLatticeStore:
    """Every ``lat.*.pt`` of a denominator-lattice dir, in memory; lattices by utterance."""

    def __init__(self, den_dir: Pathlike):
        import k2

        from kdhybrid.decode.lattice import load_lattices

        self.dir = Path(den_dir)
        self.info = read_denlats_info(den_dir)
        files = sorted(self.dir.glob("lat.*.pt"), key=lambda p: int(p.name.split(".")[1]))
        if len(files) != int(self.info["num_jobs"]):
            raise FileNotFoundError(f"{self.dir}: {len(files)} lat.*.pt files for {self.info['num_jobs']} jobs (an unfinished make_denlats.sh?)")
        self.parts, self.where = [], {}
        for f in files:
            utts, lat, _ = load_lattices(f)
            for i, u in enumerate(utts):
                self.where[u] = (len(self.parts), i)
            self.parts.append(add_frames(lat))
        self._k2 = k2

    def __contains__(self, utt: str) -> bool:
        return utt in self.where

    def __len__(self) -> int:
        return len(self.where)

    def lattices(self, utts: Sequence[str]):
        """FsaVec of the lattices of ``utts`` (all of which must be in the store), in order."""
        return self._k2.create_fsa_vec([self.parts[j][i] for j, i in (self.where[u] for u in utts)])
