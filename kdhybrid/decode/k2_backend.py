"""k2 decoding of hybrid models over a Kaldi HCLG.

HCLG (input transition-ids, output words) becomes a k2 FSA: loaded from OpenFst text,
input epsilons removed (k2's ``intersect_dense_pruned`` would treat label 0 as a
frame-consuming blank), connected, and relabelled transition-id -> pdf-id + 1 with the
transition-ids kept as the ``tid`` attribute. The network's scores go in a DenseFsaVec:
column 0 is -inf (no blank), columns 1..P hold ``acwt * (log posterior - log prior)`` (or
any per-pdf log-likelihood). The best path of the pruned intersection is the decoding.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import torch


def hclg_to_k2(hclg, tid2pdf: np.ndarray):
    """:param hclg: a kaldifst StdVectorFst (Kaldi HCLG).
    :param tid2pdf: (num_tids + 1,) int, pdf of each transition-id.
    :return: a k2.Fsa, labels pdf+1 (-1 on final arcs), aux_labels words (ragged), ``tid``."""
    import k2

    text = hclg.to_str(is_acceptor=False, show_weight_one=True)
    fsa = k2.Fsa.from_openfst(text, acceptor=False)
    fsa = k2.connect(k2.remove_epsilon(fsa))
    tids = fsa.labels.clone()
    pdf1 = torch.from_numpy(np.asarray(tid2pdf, dtype=np.int32)).long()
    labels = tids.long().clone()
    pos = labels > 0
    labels[pos] = pdf1[labels[pos]] + 1
    fsa.tid = tids
    fsa.labels = labels.to(torch.int32)
    fsa.__dict__["_properties"] = None  # labels changed: let k2 recompute its cached properties
    return k2.arc_sort(fsa)


def decode(graph, scores: Sequence[torch.Tensor], search_beam: float = 20.0, output_beam: float = 8.0,
           min_active: int = 30, max_active: int = 10000) -> List[Tuple[List[int], float, List[int]]]:
    """Best paths of utterances.

    :param graph: k2.Fsa from :func:`hclg_to_k2`.
    :param scores: per utterance (T_i, P) float32 acoustic scores (already scaled by acwt).
    :return: per utterance (word ids, total score, transition-ids of the path).
    """
    import k2

    n = len(scores)
    t_max = max(s.shape[0] for s in scores)
    p = scores[0].shape[1]
    dense = torch.full((n, t_max, p + 1), float("-inf"))
    for i, s in enumerate(scores):
        dense[i, : s.shape[0], 1:] = s
    order = sorted(range(n), key=lambda i: -scores[i].shape[0])
    sup = torch.tensor([[i, 0, scores[i].shape[0]] for i in order], dtype=torch.int32)
    dfsa = k2.DenseFsaVec(dense, sup)
    graphs = k2.create_fsa_vec([graph])
    lat = k2.intersect_dense_pruned(graphs, dfsa, search_beam, output_beam, min_active, max_active, seqframe_idx_name="frame", frame_idx_name="f")
    best = k2.shortest_path(lat, use_double_scores=True)
    tot = best.get_tot_scores(use_double_scores=True, log_semiring=False)
    out: List[Tuple[List[int], float, List[int]]] = [([], float("-inf"), [])] * n
    for j, i in enumerate(order):
        one = best[j]
        aux = one.aux_labels
        words = aux.values.tolist() if hasattr(aux, "values") else aux.tolist()
        words = [w for w in words if w > 0]
        tids = [t for t in one.tid.tolist() if t > 0]
        out[i] = (words, float(tot[j]), tids)
    return out
