"""Triphone decision trees in Python (kaldi-hmm-gmm binds no tree building).

The steps of Kaldi's train_deltas.sh, written here:

* :func:`frame_contexts` and :func:`accumulate_tree_stats` (acc-tree-stats): Gaussian
  statistics (count, sum, sum of squares) of every seen event (left phone, phone, right
  phone, pdf-class), from alignments of an earlier model;
* :func:`cluster_phone_questions` (cluster-phones): phone-set questions by top-down binary
  clustering of the phone sets' pooled Gaussians, plus the lang dir's extra questions;
* :func:`build_tree` (build-tree): one root per phone set of ``roots.int`` (shared pdf
  classes, splittable), greedy likelihood-gain splits on questions about the left and right
  phone, the central phone and the pdf-class, best gain first over all leaves, until the
  leaf budget is used or no split gains ``min_gain`` with ``min_count`` frames on each side;
* :func:`tree_to_kaldi` (the ``tree`` file): Kaldi's binary ContextDependency (N=3, P=1,
  TableEventMap on the central phone, SplitEventMaps, ConstantEventMap leaves), loaded into
  kaldi-hmm-gmm's ``ContextDependency`` so Kaldi's own code computes pdfs from it;
* :func:`convert_alignments` (convert-ali): old transition-ids to the new model's.

Keys follow Kaldi: 0 = left phone, 1 = central phone, 2 = right phone, -1 = pdf-class;
phone 0 stands for "no phone" at utterance edges.
"""
from __future__ import annotations

import heapq
import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from kdhybrid.kaldi_libs import kaldi_hmm_gmm as khg

PDF_CLASS_KEY = -1


# ------------------------------------------------------------------ transition-id tables


@dataclass
class TidInfo:
    """Per transition-id (index 0 unused): phone, HMM state, pdf, self-loop?, last-of-phone?"""

    phone: np.ndarray
    hmm_state: np.ndarray
    pdf: np.ndarray
    trans_index: np.ndarray
    is_final: np.ndarray
    trans_state: np.ndarray
    is_self_loop: np.ndarray

    @classmethod
    def of(cls, tm: "khg.TransitionModel") -> "TidInfo":
        n = tm.num_transition_ids + 1
        phone = np.zeros(n, np.int32)
        hmm_state = np.zeros(n, np.int32)
        pdf = np.full(n, -1, np.int32)
        trans_index = np.zeros(n, np.int32)
        is_final = np.zeros(n, bool)
        trans_state = np.zeros(n, np.int32)
        is_self_loop = np.zeros(n, bool)
        id2state = list(tm.id2state)
        state2id = list(tm.state2id)
        tuples = [t.__getstate__() for t in tm.tuples]
        tid2pdf = np.asarray(tm.transition_id_to_pdf_array())
        for t in range(1, n):
            s = id2state[t]
            ph, hs, fpdf, slpdf = tuples[s - 1]
            phone[t], hmm_state[t] = ph, hs
            pdf[t] = tid2pdf[t]
            trans_index[t] = t - state2id[s]
            is_final[t] = tm.is_final(t)
            trans_state[t] = s
            is_self_loop[t] = tm.is_self_loop(t)
        return cls(phone, hmm_state, pdf, trans_index, is_final, trans_state, is_self_loop)


def phone_instances(ali: np.ndarray, info: TidInfo) -> Tuple[np.ndarray, np.ndarray]:
    """Split an alignment into phone instances (Kaldi's SplitToPhones).

    A phone ends with its final transition; with reordered graphs (Kaldi's default, and
    ours) self-loops of that last state may follow it and still belong to the phone.

    :return: (phones (P,) int32, start frame of each instance (P,) int64).
    """
    fin, state, loop = info.is_final[ali], info.trans_state[ali], info.is_self_loop[ali]
    starts = [0] if len(ali) else []
    closing = -1  # transition-state whose final transition was seen, or -1
    for i in range(len(ali)):
        if closing >= 0 and not (loop[i] and state[i] == closing):
            starts.append(i)
            closing = -1
        if fin[i]:
            closing = int(state[i])
    st = np.asarray(starts, dtype=np.int64)
    return info.phone[ali[st]], st


def frame_contexts(ali: np.ndarray, info: TidInfo) -> np.ndarray:
    """(T, 4) int32: (left phone, phone, right phone, pdf-class) of every frame.
    Assumes pdf-class == HMM state, as in the topologies prepare_lang writes."""
    phones, starts = phone_instances(ali, info)
    n = len(phones)
    lengths = np.diff(np.r_[starts, len(ali)])
    left = np.r_[0, phones[:-1]] if n else phones
    right = np.r_[phones[1:], 0] if n else phones
    ctx = np.empty((len(ali), 4), np.int32)
    ctx[:, 0] = np.repeat(left, lengths)
    ctx[:, 1] = np.repeat(phones, lengths)
    ctx[:, 2] = np.repeat(right, lengths)
    ctx[:, 3] = info.hmm_state[ali]
    return ctx


@dataclass
class TreeStats:
    """Events (E, 4) int32 (left, phone, right, pdf-class) with Gaussian stats:
    count (E,), sum (E, D), sum of squares (E, D), float64."""

    events: np.ndarray
    count: np.ndarray
    x: np.ndarray
    xx: np.ndarray


def accumulate_tree_stats(contexts: Sequence[np.ndarray], feats: Sequence[np.ndarray]) -> TreeStats:
    """acc-tree-stats over utterances: ``contexts[i]`` (T_i, 4), ``feats[i]`` (T_i, D)."""
    ctx = np.concatenate(contexts)
    x = np.concatenate(feats).astype(np.float64)
    ev, inv = np.unique(ctx, axis=0, return_inverse=True)
    inv = inv.ravel()
    e = len(ev)
    count = np.bincount(inv, minlength=e).astype(np.float64)
    sx = np.zeros((e, x.shape[1]))
    sxx = np.zeros((e, x.shape[1]))
    np.add.at(sx, inv, x)
    np.add.at(sxx, inv, x * x)
    return TreeStats(ev.astype(np.int32), count, sx, sxx)


def gauss_objf(count: np.ndarray, x: np.ndarray, xx: np.ndarray, var_floor: float = 0.01) -> np.ndarray:
    """Log-likelihood of the data under its ML diagonal Gaussian (Kaldi's GaussClusterable
    objective), vectorised over the leading axis: count (...,), x and xx (..., D)."""
    c = np.maximum(count, 1e-10)[..., None]
    var = np.maximum(xx / c - (x / c) ** 2, var_floor)
    d = x.shape[-1]
    return np.where(count > 0, -0.5 * count * (d * np.log(2 * np.pi) + np.log(var).sum(-1) + d), 0.0)


# ------------------------------------------------------------------ questions


def cluster_phone_questions(
    stats: TreeStats, sets: Sequence[Sequence[int]], extra: Sequence[Sequence[int]] = (), pdf_class: int = 1
) -> List[List[int]]:
    """Phone questions: a binary tree over the phone sets by top-down 2-means of their
    pooled Gaussians (the central-state statistics, as Kaldi's cluster-phones), every node
    a question (the union of its sets' phones), plus ``extra`` questions."""
    set_stats = []
    for s in sets:
        sel = np.isin(stats.events[:, 1], s)
        central = sel & (stats.events[:, 3] == pdf_class)
        sel_c = central if central.any() else sel
        set_stats.append((stats.count[sel_c].sum(), stats.x[sel_c].sum(0), stats.xx[sel_c].sum(0)))
    idx = [i for i, st in enumerate(set_stats) if st[0] > 0]
    questions: List[List[int]] = []

    def objf(group: Sequence[int]) -> float:
        c = sum(set_stats[i][0] for i in group)
        x = sum(set_stats[i][1] for i in group)
        xx = sum(set_stats[i][2] for i in group)
        return float(gauss_objf(np.array(c), x, xx))

    def split(group: List[int]) -> None:
        questions.append(sorted(p for i in group for p in sets[i]))
        if len(group) < 2:
            return
        means = np.array([set_stats[i][1] / set_stats[i][0] for i in group])
        # 2-means from the two sets farthest apart, a few Lloyd iterations on the objective.
        dist = ((means[:, None] - means[None]) ** 2).sum(-1)
        a, b = np.unravel_index(np.argmax(dist), dist.shape)
        assign = np.array([0 if dist[k, a] <= dist[k, b] else 1 for k in range(len(group))])
        for _ in range(10):
            changed = False
            for k in range(len(group)):
                best, best_gain = assign[k], None
                for cl in (0, 1):
                    trial = assign.copy()
                    trial[k] = cl
                    if (trial == 0).all() or (trial == 1).all():
                        continue
                    g = objf([group[j] for j in range(len(group)) if trial[j] == 0]) + objf([group[j] for j in range(len(group)) if trial[j] == 1])
                    if best_gain is None or g > best_gain + 1e-9:
                        best, best_gain = cl, g
                if best != assign[k]:
                    assign[k] = best
                    changed = True
            if not changed:
                break
        split([group[j] for j in range(len(group)) if assign[j] == 0])
        split([group[j] for j in range(len(group)) if assign[j] == 1])

    split(idx)
    for q in extra:
        qs = sorted(q)
        if qs not in questions:
            questions.append(qs)
    return questions


# ------------------------------------------------------------------ tree


@dataclass
class Node:
    """A tree node: a leaf (``pdf`` set) or a split on ``key`` by ``yes_set``."""

    events: np.ndarray  # indices into the TreeStats events
    key: Optional[int] = None
    yes_set: Optional[List[int]] = None
    yes: Optional["Node"] = None
    no: Optional["Node"] = None
    pdf: int = -1


@dataclass
class TreeConfig:
    num_leaves: int = 1000
    min_count: float = 100.0  # frames each side of a split must have
    min_gain: float = 0.0  # Kaldi's --thresh; 0 = split until the leaf budget is reached


_KEY_COLUMN = {0: 0, 1: 1, 2: 2, PDF_CLASS_KEY: 3}


def question_matrices(stats: TreeStats, questions: Dict[int, List[np.ndarray]]) -> Dict[int, np.ndarray]:
    """Each key's questions as a bool matrix (Q, V): entry (q, v) tells whether value v (a
    phone, or a pdf-class) is in question q's yes-set; V covers every value the events hold."""
    out = {}
    for key, qs in questions.items():
        size = int(stats.events[:, _KEY_COLUMN[key]].max()) + 1 if len(stats.events) else 1
        m = np.zeros((len(qs), size), bool)
        for i, q in enumerate(qs):
            q = np.asarray(q, dtype=np.int64)
            m[i, q[(q >= 0) & (q < size)]] = True
        out[key] = m
    return out


def _best_split(stats: TreeStats, node: Node, questions: Dict[int, np.ndarray], cfg: TreeConfig, packed: np.ndarray) -> Tuple[float, Optional[int], Optional[np.ndarray]]:
    """The best question for ``node``: (likelihood gain, key, yes values present in the node),
    or (0, None, None) when no split gains with ``cfg.min_count`` frames on each side.
    ``questions`` holds each key's :func:`question_matrices` matrix; ``packed`` (E, 1 + 2 D)
    float64 is every event's count, sum and sum of squares side by side."""
    ev = stats.events[node.events]
    rows = packed[node.events]  # (n, 1 + 2 D)
    d = stats.x.shape[1]
    tot = rows.sum(0)  # row after row, as the events' order
    cols = np.asfortranarray(rows)  # columns contiguous for bincount
    parent = float(gauss_objf(np.array(tot[0]), tot[1 : 1 + d], tot[1 + d :]))
    best = (0.0, None, None)
    for key, member in questions.items():
        vals, inv = np.unique(ev[:, _KEY_COLUMN[key]], return_inverse=True)
        if len(vals) < 2:
            continue
        # the node's stats summed per value of the key, column by column: bincount adds in the
        # events' order, so the sums (and the tree) do not depend on how the work is batched
        inv = inv.ravel()
        g = np.stack([np.bincount(inv, weights=cols[:, j], minlength=len(vals)) for j in range(cols.shape[1])], axis=1)
        gc, gx, gxx = g[:, 0], g[:, 1 : 1 + d], g[:, 1 + d :]
        # Each question as a 0/1 matrix over the values present.
        Q = member[:, vals].astype(np.float64)
        Q = Q[(Q.sum(1) > 0) & (Q.sum(1) < len(vals))]
        if not len(Q):
            continue
        Q = np.unique(Q, axis=0)
        yc, yx, yxx = Q @ gc, Q @ gx, Q @ gxx
        nc, nx, nxx = gc.sum() - yc, gx.sum(0) - yx, gxx.sum(0) - yxx
        ok = (yc >= cfg.min_count) & (nc >= cfg.min_count)
        if not ok.any():
            continue
        gain = gauss_objf(yc, yx, yxx) + gauss_objf(nc, nx, nxx) - parent
        gain[~ok] = -np.inf
        k = int(np.argmax(gain))
        if gain[k] > best[0]:
            best = (float(gain[k]), key, vals[Q[k] > 0])
    return best


def build_tree(
    stats: TreeStats, roots: Sequence[Sequence[int]], questions: Sequence[Sequence[int]], num_pdf_classes: Dict[int, int], cfg: TreeConfig
) -> Tuple[Dict[int, Node], int, dict]:
    """Greedy tree building. Returns ({root index: root node}, number of leaves, info)."""
    phone_q = [np.asarray(q) for q in questions]
    max_pc = max(num_pdf_classes.values())
    pc_q = [np.arange(k + 1) for k in range(max_pc - 1)]  # "pdf-class <= k"
    packed = np.concatenate([stats.count[:, None], stats.x, stats.xx], axis=1)
    root_nodes: Dict[int, Node] = {}
    heap: List[Tuple[float, int, Node, int, np.ndarray, Dict]] = []
    counter = 0
    for r, phones in enumerate(roots):
        sel = np.flatnonzero(np.isin(stats.events[:, 1], phones))
        node = Node(sel)
        root_nodes[r] = node
        if not len(sel):
            continue
        qs = {0: phone_q, 2: phone_q, PDF_CLASS_KEY: pc_q}
        if len(phones) > 1:
            qs[1] = [q for q in phone_q if np.isin(q, phones).any()] + [np.asarray(phones[: i + 1]) for i in range(len(phones) - 1)]
        qs = question_matrices(stats, qs)
        gain, key, yes = _best_split(stats, node, qs, cfg, packed)
        heapq.heappush(heap, (-gain, counter, node, key, yes, qs))
        counter += 1
    num_leaves = sum(1 for n in root_nodes.values())
    total_gain = 0.0
    while heap and num_leaves < cfg.num_leaves:
        neg_gain, _, node, key, yes, qs = heapq.heappop(heap)
        if key is None or -neg_gain <= cfg.min_gain:
            continue
        in_yes = np.isin(stats.events[node.events, _KEY_COLUMN[key]], yes)
        node.key, node.yes_set = key, sorted(int(v) for v in yes)
        node.yes, node.no = Node(node.events[in_yes]), Node(node.events[~in_yes])
        total_gain += -neg_gain
        num_leaves += 1
        for child in (node.yes, node.no):
            g, k, y = _best_split(stats, child, qs, cfg, packed)
            heapq.heappush(heap, (-g, counter, child, k, y, qs))
            counter += 1
    # Number the leaves (pdf-ids) depth-first, root by root.
    nxt = 0

    def number(n: Node) -> None:
        nonlocal nxt
        if n.key is None:
            n.pdf = nxt
            nxt += 1
        else:
            number(n.yes)
            number(n.no)

    for r in range(len(roots)):
        number(root_nodes[r])
    return root_nodes, nxt, {"leaves": nxt, "likelihood_gain": total_gain, "events": int(len(stats.events))}


# ------------------------------------------------------------------ Kaldi format


def _tok(s: str) -> bytes:
    return s.encode() + b" "


def _i32(v: int) -> bytes:
    return b"\x04" + struct.pack("<i", int(v))


def _u32(v: int) -> bytes:
    """Kaldi writes unsigned types with a negative size marker."""
    return b"\xfc" + struct.pack("<I", int(v))


def _ivec(v: Sequence[int]) -> bytes:
    return b"\x04" + struct.pack("<i", len(v)) + struct.pack(f"<{len(v)}i", *[int(x) for x in v])


def _write_node(n: Node) -> bytes:
    if n.key is None:
        return _tok("CE") + _i32(n.pdf)
    return _tok("SE") + _i32(n.key) + _ivec(n.yes_set) + _tok("{") + _write_node(n.yes) + _write_node(n.no) + _tok("}")


def tree_to_kaldi(root_nodes: Dict[int, Node], roots: Sequence[Sequence[int]], max_phone: int) -> bytes:
    """Kaldi's binary ContextDependency (N=3, P=1): a TableEventMap on the central phone."""
    table: List[Optional[bytes]] = [None] * (max_phone + 1)
    for r, phones in enumerate(roots):
        enc = _write_node(root_nodes[r])
        for p in phones:
            table[p] = enc
    body = _tok("TE") + _i32(1) + _u32(len(table)) + _tok("(")
    for t in table:
        body += t if t is not None else _tok("NULL")
    body += _tok(")")
    return _tok("ContextDependency") + _i32(3) + _i32(1) + _tok("ToPdf") + body + _tok("EndContextDependency")


def context_dependency_from_bytes(data: bytes) -> "khg.ContextDependency":
    """A kaldi-hmm-gmm ContextDependency from Kaldi's binary tree bytes."""
    obj = khg.ContextDependency.__new__(khg.ContextDependency)
    obj.__setstate__((list(np.frombuffer(data, dtype=np.int8).tolist()),))
    return obj


def lookup(root_nodes: Dict[int, Node], phone_root: Dict[int, int], ctx: Sequence[int]) -> int:
    """The pdf of (left, phone, right, pdf-class) by walking our own tree (for checks)."""
    n = root_nodes[phone_root[ctx[1]]]
    while n.key is not None:
        v = ctx[_KEY_COLUMN[n.key]]
        n = n.yes if v in n.yes_set else n.no
    return n.pdf


# ------------------------------------------------------------------ convert-ali


def convert_alignment(ali: np.ndarray, old: TidInfo, new_tm: "khg.TransitionModel", new_tree: "khg.ContextDependency", cache: Optional[dict] = None) -> np.ndarray:
    """convert-ali: the same phones, HMM states and transitions, with the new tree's pdfs."""
    cache = {} if cache is None else cache
    if "state_of" not in cache:
        cache["state_of"] = {tuple(t.__getstate__()): i + 1 for i, t in enumerate(new_tm.tuples)}
        cache["state2id"] = list(new_tm.state2id)
    state_of, state2id = cache["state_of"], cache["state2id"]
    ctx = frame_contexts(ali, old)
    out = np.empty_like(ali)
    pdf_cache: Dict[Tuple[int, int, int, int], int] = cache.setdefault("pdf", {})
    for i, (l, c, r, pc) in enumerate(ctx.tolist()):
        key = (l, c, r, pc)
        pdf = pdf_cache.get(key)
        if pdf is None:
            ok, pdf = new_tree.compute([l, c, r], pc)
            if not ok:
                raise ValueError(f"tree has no pdf for context {key}")
            pdf_cache[key] = pdf
        s = state_of[(c, int(old.hmm_state[ali[i]]), pdf, pdf)]
        out[i] = state2id[s] + old.trans_index[ali[i]]
    return out
