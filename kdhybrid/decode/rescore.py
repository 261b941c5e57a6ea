"""N-best LM rescoring of k2 lattices (the role of Kaldi's lmrescore.sh / lmrescore_const_arpa.sh).

From each lattice, distinct word sequences are drawn: its best paths under every LM weight
and insertion penalty of the scoring sweep, plus ``num_paths`` paths
sampled by k2 (``random_paths``) with the lattice's scores scaled by ``nbest_scale`` (< 1
flattens the distribution, so more distinct hypotheses come out). Each hypothesis gets the
acoustic and graph scores of its best alignment in the lattice (lattice intersected with
the word sequence, as icefall's n-best rescoring does).
Its graph score then has the old LM's exact score of the word sequence taken out and the
new LM's put in (both ARPA models, read with :class:`kdhybrid.lang.arpa.ArpaLm`)::

    graph' = graph - lm_scale * ln P_old(words) + lm_scale * ln P_new(words)

which is what ``lattice-lmrescore --lm-scale=-1`` (old G) then ``--lm-scale=1`` (new G) does
to every path. The rescored n-best lists are scored like lattices (LM-weight sweep).
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch

from kdhybrid.decode.lattice import Hyp


def _per_fsa_sums(fsas, values: torch.Tensor) -> List[float]:
    import k2

    r = k2.RaggedTensor(fsas.arcs.shape().remove_axis(1), values.to(torch.float64).contiguous())
    return r.sum().tolist()


def lattice_nbest(lat, utts: Sequence[str], num_paths: int = 100, nbest_scale: float = 0.5, seed: int = 0, acwt: float = 0.1,
                  sweep_lmwts: Sequence[float] = range(7, 18), sweep_penalties: Sequence[float] = (0.0, 0.5, 1.0)) -> Dict[str, List[Hyp]]:
    """Distinct hypotheses (word ids, scaled acoustic score, graph score) of each lattice,
    best first (by acoustic + graph score). Each word sequence gets the scores of its best
    path in the lattice: the lattice (relabelled to words) is intersected with the linear
    acceptors of the sequences and the best path of each intersection is taken."""
    import k2

    from kdhybrid.decode.k2_backend import path_words
    from kdhybrid.decode.lattice import LatticeWeighting

    # The lattice's best paths under every LM weight / penalty of the scoring sweep go in
    # first, so the n-best always holds what the lattice itself would pick.
    seeds = [path_words(k2.shortest_path(lat, use_double_scores=True))]
    weighting = LatticeWeighting(lat, acwt)
    for lmwt in sweep_lmwts:
        for wip in sweep_penalties:
            seeds.append(weighting.best_words(lmwt, wip))
    sampler = lat.clone()
    sampler.scores = lat.scores * nbest_scale
    torch.manual_seed(seed)
    paths = k2.random_paths(sampler, use_double_scores=True, num_paths=num_paths).tolist()
    aux = lat.aux_labels
    arc_words = aux.tolist() if isinstance(aux, k2.RaggedTensor) else [[w] for w in aux.tolist()]
    seqs, owner = [], []
    for i in range(len(utts)):
        seen = set()
        cands = [tuple(sd[i]) for sd in seeds] + [tuple(w for a in p for w in arc_words[a] if w > 0) for p in paths[i]]
        for words in cands:
            if words not in seen:
                seen.add(words)
                seqs.append(list(words))
                owner.append(i)
    out: Dict[str, List[Hyp]] = {u: [] for u in utts}
    owner_t = torch.tensor(owner, dtype=torch.int64)
    for i, u in enumerate(utts):  # one lattice at a time: the intersection holds a copy per sequence
        mine = torch.nonzero(owner_t == i).flatten().tolist()
        one = k2.index_fsa(lat, torch.tensor([i], dtype=torch.int32))
        inv = k2.arc_sort(k2.invert(one))  # labels: words (0 where none)
        word_fsas = k2.add_epsilon_self_loops(k2.linear_fsa([seqs[j] for j in mine]))
        hit = k2.intersect_device(inv, word_fsas, b_to_a_map=torch.zeros(len(mine), dtype=torch.int32), sorted_match_a=True)
        # no k2.connect first: the product is acyclic (every lattice arc moves on), and states
        # that cannot reach the end only lose the best-path search; connect took 60% of the
        # n-best time (tri3's dev lattices on the default tier: 24.9 s -> 10.7 s a job, the
        # same hypotheses and scores)
        bp = k2.shortest_path(k2.top_sort(hit), use_double_scores=True)
        graph = _per_fsa_sums(bp, bp.graph_scores)
        total = _per_fsa_sums(bp, bp.scores)
        for k, j in enumerate(mine):
            if bp.arcs.shape().row_splits(2)[bp.arcs.shape().row_splits(1)[k + 1]] > bp.arcs.shape().row_splits(2)[bp.arcs.shape().row_splits(1)[k]]:
                out[u].append((seqs[j], total[k] - graph[k], graph[k]))
    for u in out:
        out[u].sort(key=lambda h: -(h[1] + h[2]))
    return out


def rescore_nbest(nbest: Dict[str, List[Hyp]], id2word: Dict[int, str], old_lm, new_lm, lm_scale: float = 1.0) -> Dict[str, List[Hyp]]:
    """Replace the old LM's score by the new one's in every hypothesis' graph score."""
    out: Dict[str, List[Hyp]] = {}
    for u, hyps in nbest.items():
        res = []
        for words, a_s, g_s in hyps:
            ws = [id2word[w] for w in words]
            res.append((words, a_s, g_s + lm_scale * (new_lm.sentence_score(ws) - old_lm.sentence_score(ws))))
        out[u] = sorted(res, key=lambda h: -(h[1] + h[2]))
    return out
