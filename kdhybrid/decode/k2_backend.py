"""k2 decoding of hybrid models over a Kaldi HCLG.

HCLG (input transition-ids, output words) becomes a k2 FSA: loaded from OpenFst text,
input epsilons removed (k2's ``intersect_dense_pruned`` would treat label 0 as a
frame-consuming blank), connected, and relabelled transition-id -> pdf-id + 1 with the
transition-ids kept as the ``tid`` attribute and the graph's own scores (LM, pronunciation
and transition log-probabilities, Kaldi's "graph cost" negated) as ``graph_scores``. The
network's scores go in a DenseFsaVec: column 0 is -inf (no blank), columns 1..P hold
``acwt * log-likelihood`` of each pdf. The pruned intersection is the lattice: per arc
``scores`` = graph score + scaled acoustic score, so the acoustic part is
``scores - graph_scores`` (what LM-weight sweeps and rescoring re-weight).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
import torch

Pathlike = Union[str, Path]


def hclg_to_k2(hclg, tid2pdf: np.ndarray):
    """:param hclg: a kaldifst StdVectorFst (Kaldi HCLG).
    :param tid2pdf: (num_tids + 1,) int, pdf of each transition-id.
    :return: a k2.Fsa, labels pdf+1 (-1 on final arcs), aux_labels words (ragged), ``tid``
        (int32 transition-ids, 0 where none) and ``graph_scores`` (float32)."""
    import k2

    text = hclg.to_str(is_acceptor=False, show_weight_one=True)
    fsa = k2.Fsa.from_openfst(text, acceptor=False)
    del text
    fsa = k2.connect(k2.remove_epsilon(fsa))
    tids = fsa.labels.clone()
    pdf1 = torch.from_numpy(np.asarray(tid2pdf, dtype=np.int32)).long()
    labels = tids.long().clone()
    pos = labels > 0
    labels[pos] = pdf1[labels[pos]] + 1
    fsa.tid = tids
    fsa.labels = labels.to(torch.int32)
    fsa.__dict__["_properties"] = None  # labels changed: let k2 recompute its cached properties
    fsa = k2.arc_sort(fsa)
    fsa.graph_scores = fsa.scores.clone()
    return fsa


def save_k2_graph(hclg, tid2pdf: np.ndarray, path: Pathlike) -> Dict[str, float]:
    """Convert (:func:`hclg_to_k2`) and write ``path`` (``torch.save`` of ``Fsa.as_dict()``,
    written to a temporary name and renamed). Returns states, arcs and seconds."""
    t0 = time.time()
    g = hclg_to_k2(hclg, tid2pdf)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(g.as_dict(), tmp)
    tmp.replace(path)
    return {"states": int(g.shape[0]), "arcs": int(g.num_arcs), "seconds": round(time.time() - t0, 1)}


def load_k2_graph(path: Pathlike):
    """The k2.Fsa written by :func:`save_k2_graph`."""
    import k2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (graphs built by steps/mkgraph.sh have it; re-run it for older graph dirs)")
    return k2.Fsa.from_dict(torch.load(path))


def dense_scores(scores: Sequence[torch.Tensor]):
    """k2.DenseFsaVec of per-utterance (T_i, P) scores, with the blank column at -inf.

    :return: (DenseFsaVec, order) where ``order[j]`` is the input index of the j-th FSA
        (utterances sorted by decreasing length, as k2 requires)."""
    import k2

    n = len(scores)
    t_max = max(s.shape[0] for s in scores)
    p = scores[0].shape[1]
    dense = torch.full((n, t_max, p + 1), float("-inf"))
    for i, s in enumerate(scores):
        dense[i, : s.shape[0], 1:] = s
    order = sorted(range(n), key=lambda i: -scores[i].shape[0])
    sup = torch.tensor([[i, 0, scores[i].shape[0]] for i in order], dtype=torch.int32)
    return k2.DenseFsaVec(dense, sup), order


def decode_lattices(graph, scores: Sequence[torch.Tensor], search_beam: float = 20.0, output_beam: float = 8.0,
                    min_active: int = 30, max_active: int = 10000):
    """Pruned intersection of the graph with utterances' scores.

    :param graph: k2.Fsa from :func:`hclg_to_k2`.
    :param scores: per utterance (T_i, P) float32 acoustic scores (already scaled by acwt).
    :return: the lattices, a k2.Fsa vector in the input order, with ``tid``,
        ``graph_scores`` and (ragged) ``aux_labels`` = words."""
    import k2

    if not scores:
        raise ValueError("no utterances to decode")
    dfsa, order = dense_scores(scores)
    lat = k2.intersect_dense_pruned(k2.create_fsa_vec([graph]), dfsa, search_beam, output_beam, min_active, max_active)
    inv = torch.empty(len(order), dtype=torch.int32)
    inv[torch.tensor(order)] = torch.arange(len(order), dtype=torch.int32)
    return k2.index_fsa(lat, inv)


def num_arcs_per_fsa(lat) -> List[int]:
    """Arcs of each FSA of a vector."""
    sh = lat.arcs.shape()
    return sh.row_splits(2)[sh.row_splits(1).long()].diff().tolist()


def empty_lattices(lat) -> List[int]:
    """Indexes of the FSAs of a vector that have no arcs (after ``k2.connect``: no path)."""
    return [i for i, n in enumerate(num_arcs_per_fsa(lat)) if n == 0]


def utterance_chunks(lengths: Sequence[int], max_frames: int) -> List[List[int]]:
    """Consecutive index groups of at most ``max_frames`` frames (at least one utterance each)."""
    out, cur, n = [], [], 0
    for i, t in enumerate(lengths):
        if cur and n + t > max_frames:
            out.append(cur)
            cur, n = [], 0
        cur.append(i)
        n += t
    return out + [cur] if cur else out


def search(graph, scores: Sequence[torch.Tensor], beam: float, lattice_beam: float, min_active: int, max_active: int,
           search_frames: int = 1500, retry_scale: float = 1.5, utts: Sequence[str] = (), log=None) -> Tuple[object, int]:
    """Lattices of utterances, as a decoder would produce them.

    The pruned intersection keeps every arc within its beams until the end, so its memory
    grows with frames x max-active: utterances are searched in chunks of at most
    ``search_frames`` frames. An utterance with no path to a final state is searched once
    more with ``retry_scale`` times the beam (as Kaldi's retry-beam). Lattices are then pruned
    to ``lattice_beam`` on path scores (:func:`kdhybrid.decode.lattice.prune_lattice`).

    :param scores: per utterance (T_i, P) float32, already scaled by acwt.
    :param utts: their ids, for the retry warning on ``log``.
    :return: (k2 FsaVec of the lattices in input order, number of utterances still without a path)."""
    import k2

    from kdhybrid.decode.lattice import prune_lattice

    lats, failed = [], 0
    for chunk in utterance_chunks([len(s) for s in scores], search_frames):
        sc = [scores[i] for i in chunk]
        lat = decode_lattices(graph, sc, beam, lattice_beam, min_active, max_active)
        empty = empty_lattices(k2.connect(lat))
        if empty:
            if log is not None:
                names = [utts[chunk[i]] if utts else str(chunk[i]) for i in empty]
                log.warning("no path for %s: retrying with beam %.1f", " ".join(names), retry_scale * beam)
            retry = decode_lattices(graph, [sc[i] for i in empty], retry_scale * beam, lattice_beam, min_active, 2 * max_active)
            pos = {i: j for j, i in enumerate(empty)}
            lat = k2.create_fsa_vec([retry[pos[i]] if i in pos else lat[i] for i in range(len(sc))])
            failed += len(empty_lattices(k2.connect(lat)))
        lats.append(prune_lattice(lat, lattice_beam))
    return (k2.cat(lats) if len(lats) > 1 else lats[0]), failed


def path_words(best) -> List[List[int]]:
    """Word ids on each FSA of a vector of linear FSAs (best paths)."""
    import k2

    aux = best.aux_labels
    if isinstance(aux, k2.RaggedTensor):
        shape = best.arcs.shape().compose(aux.shape).remove_axis(1).remove_axis(1)
        aux = k2.RaggedTensor(shape, aux.values)
    else:
        aux = k2.RaggedTensor(best.arcs.shape().remove_axis(1), aux)
    return aux.remove_values_leq(0).tolist()


def path_tids(best) -> List[List[int]]:
    """Transition-ids on each FSA of a vector of linear FSAs (the alignment)."""
    import k2

    r = k2.RaggedTensor(best.arcs.shape().remove_axis(1), best.tid.to(torch.int32))
    return r.remove_values_leq(0).tolist()


def decode(graph, scores: Sequence[torch.Tensor], search_beam: float = 20.0, output_beam: float = 8.0,
           min_active: int = 30, max_active: int = 10000) -> List[Tuple[List[int], float, List[int]]]:
    """Best paths of utterances: per utterance (word ids, total score, transition-ids)."""
    import k2

    lat = decode_lattices(graph, scores, search_beam, output_beam, min_active, max_active)
    best = k2.shortest_path(lat, use_double_scores=True)
    tot = best.get_tot_scores(use_double_scores=True, log_semiring=False).tolist()
    return list(zip(path_words(best), tot, path_tids(best)))
