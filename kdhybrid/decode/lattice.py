"""Decoding results on disk and their re-weighting: k2 lattices and n-best lists.

A decode dir holds, per job, either

* ``lat.JOB.pt``: k2 lattices (``torch.save`` of ``{"utts", "lattice": Fsa.as_dict(), "acwt"}``)
  from the k2 backend, with per-arc ``scores`` (graph + acwt * acoustic) and ``graph_scores``; or
* ``nbest.JOB.json.gz``: per utterance a list of hypotheses ``[word ids, acoustic, graph]``
  (acoustic already scaled by acwt), from the Kaldi backend (its best path) or from n-best
  LM rescoring.

Both are scored the same way (Kaldi's score.sh): for LM weight ``LMWT`` and word insertion
penalty ``wip``, a hypothesis scores ``graph - wip * words + acoustic / (acwt * LMWT)``, the
weighting of ``lattice-scale --inv-acoustic-scale=LMWT | lattice-add-penalty``; LMWT = 1/acwt
reproduces the decoding's own weighting.
"""
from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import torch

Pathlike = Union[str, Path]
Hyp = Tuple[List[int], float, float]  # (word ids, scaled acoustic score, graph score)


def save_lattices(path: Pathlike, utts: Sequence[str], lat, acwt: float) -> None:
    """Write ``lat`` (k2 FsaVec, one lattice per utterance of ``utts``) atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    # k2's as_dict lists the attributes in an order that varies from process to process
    # (two decodes of the same scores wrote the same tensors in another order): sorted, the
    # file is the same bytes every run.
    d = lat.as_dict()
    torch.save({"utts": list(utts), "lattice": {k: d[k] for k in sorted(d)}, "acwt": acwt}, tmp)
    os.replace(tmp, path)


def load_lattices(path: Pathlike):
    """(utts, k2 FsaVec, acwt) from :func:`save_lattices`."""
    import k2

    d = torch.load(path)
    return d["utts"], k2.Fsa.from_dict(d["lattice"]), float(d["acwt"])


def prune_lattice(lat, beam: float, sharpness: float = 10.0):
    """Keep the arcs on paths within ``beam`` of each lattice's best path (Kaldi's lattice
    beam; k2's ``output_beam`` prunes per frame and leaves far more).

    k2 prunes on arc posteriors in the log semiring; with the scores multiplied by
    ``sharpness`` those approach the tropical ones, so an arc is kept when its best path
    scores at least (best - beam), up to the log-sum's slack of ``log(paths) / sharpness``."""
    import math

    import k2

    from kdhybrid.decode.k2_backend import empty_lattices

    tmp = lat.clone()
    tmp.scores = lat.scores * sharpness
    out = k2.prune_on_arc_post(tmp, math.exp(-sharpness * beam), True)
    out.scores = out.scores / sharpness
    out = k2.connect(out)
    empty = empty_lattices(out)
    if empty:  # nothing survived (very many near-best paths): keep the best path itself
        best = k2.shortest_path(k2.index_fsa(lat, torch.tensor(empty, dtype=torch.int32)), use_double_scores=True)
        idx = {i: j for j, i in enumerate(empty)}
        out = k2.create_fsa_vec([best[idx[i]] if i in idx else out[i] for i in range(out.shape[0])])
    return out


def words_per_arc(lat) -> torch.Tensor:
    """(num_arcs,) float32: number of words (aux labels > 0) on each arc."""
    import k2

    aux = lat.aux_labels
    if isinstance(aux, k2.RaggedTensor):
        return aux.remove_values_leq(0).shape.row_splits(1).diff().to(torch.float32)
    return (aux > 0).to(torch.float32)


class LatticeWeighting:
    """Best paths of a k2 FsaVec of lattices under Kaldi's scoring weights, for many weights.

    Under LM weight ``lmwt`` and word insertion penalty ``penalty`` an arc scores
    ``graph - penalty * words + acoustic / (acwt * lmwt)``. One working copy of the lattices
    is re-scored in place for each weighting, so k2's topology caches (state batches,
    incoming arcs) are computed once for a whole sweep rather than once per weighting."""

    def __init__(self, lat, acwt: float):
        self.acwt = acwt
        self.graph = lat.graph_scores.detach().clone()  # (num_arcs,) float32
        self.am = (lat.scores - lat.graph_scores).detach()  # (num_arcs,) acwt * acoustic
        self.words = words_per_arc(lat)  # (num_arcs,) float32
        self.work = lat.clone()

    def weighted(self, lmwt: float, penalty: float):
        """The lattices with every arc's score under ``lmwt`` and ``penalty`` (shared object)."""
        self.work.scores = self.graph - penalty * self.words + self.am / (self.acwt * lmwt)
        return self.work

    def best_paths(self, lmwt: float, penalty: float):
        import k2

        return k2.shortest_path(self.weighted(lmwt, penalty), use_double_scores=True)

    def best_words(self, lmwt: float, penalty: float) -> List[List[int]]:
        """Word ids of each lattice's best path."""
        from kdhybrid.decode.k2_backend import path_words

        return path_words(self.best_paths(lmwt, penalty))

    def best_scores(self, lmwt: float, penalty: float) -> List[float]:
        """Each lattice's best-path score under the weighting."""
        return self.best_paths(lmwt, penalty).get_tot_scores(use_double_scores=True, log_semiring=False).tolist()


def hyp_score(h: Hyp, acwt: float, lmwt: float, penalty: float) -> float:
    """An n-best hypothesis' score under the weighting of :class:`LatticeWeighting`."""
    return h[2] - penalty * len(h[0]) + h[1] / (acwt * lmwt)


def nbest_best_words(nbest: Dict[str, List[Hyp]], utts: Sequence[str], acwt: float, lmwt: float, penalty: float) -> List[List[int]]:
    """Word ids of the best hypothesis of each utterance's n-best list."""
    out = []
    for u in utts:
        hyps = nbest.get(u) or [([], float("-inf"), 0.0)]
        out.append(max(hyps, key=lambda h: hyp_score(h, acwt, lmwt, penalty))[0])
    return out


def save_nbest(path: Pathlike, nbest: Dict[str, List[Hyp]], acwt: float) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    data = json.dumps({"acwt": acwt, "nbest": {u: [[list(map(int, w)), float(a), float(g)] for w, a, g in h] for u, h in nbest.items()}})
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:  # no time stamp: same bytes each run
        f.write(data.encode("utf-8"))
    os.replace(tmp, path)


def load_nbest(path: Pathlike) -> Tuple[Dict[str, List[Hyp]], float]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        d = json.load(f)
    return {u: [(w, a, g) for w, a, g in h] for u, h in d["nbest"].items()}, float(d["acwt"])


class DecodeResults:
    """All jobs' lattices or n-best lists of a decode dir, re-weighted on demand."""

    def __init__(self, decode_dir: Pathlike):
        d = Path(decode_dir)
        self.dir = d
        lats = sorted(d.glob("lat.*.pt"), key=_job_number)
        nbests = sorted(d.glob("nbest.*.json.gz"), key=_job_number)
        if not lats and not nbests:
            raise FileNotFoundError(f"{d}: no lat.*.pt or nbest.*.json.gz (decoding did not run or failed; see {d}/log)")
        self.parts = []
        self.acwt = None
        for p in lats:
            utts, lat, acwt = load_lattices(p)
            self.parts.append(("lat", utts, LatticeWeighting(lat, acwt)))
            self.acwt = acwt
        for p in nbests:
            nb, acwt = load_nbest(p)
            self.parts.append(("nbest", list(nb), nb))
            self.acwt = acwt

    @property
    def utts(self) -> List[str]:
        return [u for _, utts, _ in self.parts for u in utts]

    def best_words(self, lmwt: float, penalty: float) -> Dict[str, List[int]]:
        out: Dict[str, List[int]] = {}
        for kind, utts, obj in self.parts:
            if kind == "lat":
                words = obj.best_words(lmwt, penalty)
            else:
                words = nbest_best_words(obj, utts, self.acwt, lmwt, penalty)
            out.update(zip(utts, words))
        return out

    def best_scores(self, lmwt: float, penalty: float) -> Dict[str, float]:
        """Score of each utterance's best path under ``lmwt`` and ``penalty`` (the weighting of
        :class:`LatticeWeighting`; at LMWT = 1/acwt and penalty 0 the decoder's own total score,
        graph + acwt * acoustic, so that two searches of the same scores can be compared)."""
        out: Dict[str, float] = {}
        for kind, utts, obj in self.parts:
            if kind == "lat":
                out.update(zip(utts, obj.best_scores(lmwt, penalty)))
            else:
                for u in utts:
                    out[u] = max((hyp_score(h, self.acwt, lmwt, penalty) for h in obj.get(u) or []), default=float("-inf"))
        return out


def _job_number(p: Path) -> int:
    m = re.search(r"\.(\d+)\.", p.name)
    return int(m.group(1)) if m else 0
