"""Decoding graphs the Kaldi way (utils/mkgraph.sh) with kaldifst and kaldi-hmm-gmm.

    LG   = min(det*(L_disambig o G))                        (log semiring determinisation)
    CLG  = C o LG                                           (compose_context, tree's N and P)
    Ha   = H transducer without self-loops                  (get_h_transducer)
    HCLGa= min(rmdisambig(det*(Ha o CLG)))
    HCLG = add_self_loops(HCLGa, self_loop_scale)           (reordered, as Kaldi)

Input labels of HCLG are transition-ids, output labels word-ids; it is written as Kaldi's
``HCLG.fst`` (OpenFst vector format) with ``words.txt`` and ``phones.txt`` beside it, and in
k2's form as ``HCLG.k2.pt`` (:func:`kdhybrid.decode.k2_backend.hclg_to_k2`: epsilon-free,
pdf+1 labels, transition-ids kept), so decoding jobs load it instead of converting it.
``graph.json`` records sizes (``log/timing.json`` the build's wall times) and the transition model's pdf and transition-id
counts, which decoding checks a model against.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Dict, Union

from kdhybrid.kaldi_libs import kaldi_hmm_gmm as khg
from kdhybrid.kaldi_libs import kaldifst

Pathlike = Union[str, Path]


def relabel_input(fst, labels_to_eps) -> int:
    """Replace the input labels in ``labels_to_eps`` by epsilon (fstrmsymbols); in place.
    (kaldifst has no mutable arc iterator: a state's arcs are deleted and re-added.)"""
    drop = set(int(x) for x in labels_to_eps)
    n = 0
    for s in range(fst.num_states):
        arcs = []
        hit = False
        it = kaldifst.ArcIterator(fst, s)
        while not it.done:
            a = it.value
            arcs.append((a.ilabel, a.olabel, a.weight, a.nextstate))
            hit = hit or a.ilabel in drop
            it.next()
        if hit:
            fst.delete_arcs(s, len(arcs))
            for il, ol, w, ns in arcs:
                if il in drop:
                    il = 0
                    n += 1
                fst.add_arc(s, kaldifst.StdArc(il, ol, w, ns))
    return n


def make_hclg(lang_test: Pathlike, model, out_dir: Pathlike, self_loop_scale: float = 0.1, transition_scale: float = 1.0,
               model_dir: Pathlike = None) -> Dict[str, float]:
    """Build ``<out_dir>/HCLG.fst`` from a lang test dir (with G.fst) and a GMM-HMM
    (:class:`kdhybrid.gmm.model.GmmHmm`; only its tree and transition model are used), and
    its k2 form ``HCLG.k2.pt``. ``model_dir`` (where the model was loaded from) is recorded
    in ``graph.json``: the Kaldi decoder backend takes the transition model from there.

    :return: sizes and timings (states/arcs of LG, CLG, HCLG; seconds).
    """
    lang = Path(lang_test)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info: Dict[str, float] = {}
    t0 = time.time()
    phone_ids = {l.split()[0]: int(l.split()[1]) for l in (lang / "phones.txt").read_text().splitlines()}
    disambig = [phone_ids[p] for p in phone_ids if p.startswith("#")]
    L = kaldifst.StdVectorFst.read(str(lang / "L_disambig.fst"))
    G = kaldifst.StdVectorFst.read(str(lang / "G.fst"))
    kaldifst.arcsort(L, sort_type="olabel")
    kaldifst.arcsort(G, sort_type="ilabel")
    LG = kaldifst.compose(L, G)
    if kaldifst.determinize_star(LG, use_log=True):
        raise RuntimeError("determinization of L o G stopped early")
    kaldifst.minimize_encoded(LG)
    info.update(LG_states=LG.num_states, LG_arcs=sum(LG_arcs(LG)), LG_seconds=round(time.time() - t0, 1))
    t1 = time.time()
    N, P = model.tree.context_width, model.tree.central_position
    CLG, ilabels = kaldifst.compose_context(disambig, N, P, LG)
    kaldifst.arcsort(CLG, sort_type="ilabel")
    info.update(CLG_states=CLG.num_states, CLG_seconds=round(time.time() - t1, 1))
    t2 = time.time()
    Ha, disambig_tids = khg.get_h_transducer(ilabels, model.tree, model.tm, khg.HTransducerConfig(transition_scale=transition_scale))
    kaldifst.arcsort(Ha, sort_type="olabel")
    HCLGa = kaldifst.compose(Ha, CLG)
    if kaldifst.determinize_star(HCLGa, use_log=True):
        raise RuntimeError("determinization of H o CLG stopped early")
    relabel_input(HCLGa, disambig_tids)
    kaldifst.rmepsilon(HCLGa)
    kaldifst.minimize_encoded(HCLGa)
    HCLG = khg.add_self_loops(self_loop_scale=self_loop_scale, disambig_syms=[], reorder=True, trans_model=model.tm, ifst=HCLGa)
    kaldifst.arcsort(HCLG, sort_type="ilabel")
    HCLG.write(str(out / "HCLG.fst"))
    info.update(HCLG_states=HCLG.num_states, HCLG_arcs=sum(LG_arcs(HCLG)), HCLG_seconds=round(time.time() - t2, 1))
    t3 = time.time()
    from kdhybrid.decode.k2_backend import save_k2_graph

    tid2pdf = model.tid2pdf()
    k2_info = save_k2_graph(HCLG, tid2pdf, out / "HCLG.k2.pt")
    del HCLG
    info.update(k2_states=k2_info["states"], k2_arcs=k2_info["arcs"], k2_seconds=round(time.time() - t3, 1))
    info["total_seconds"] = round(time.time() - t0, 1)
    info.update(num_pdfs=int(model.num_pdfs), num_tids=int(len(tid2pdf) - 1))
    for f in ("words.txt", "phones.txt"):
        shutil.copy(lang / f, out / f)
    shutil.copytree(lang / "phones", out / "phones", dirs_exist_ok=True)
    # graph.json holds what the graph is (the same bytes every build); wall times go to log/.
    sizes = {k: v for k, v in info.items() if not k.endswith("_seconds")}
    meta = dict(sizes, self_loop_scale=self_loop_scale, transition_scale=transition_scale, lang=str(lang), model_dir=str(model_dir) if model_dir else None)
    (out / "graph.json").write_text(json.dumps(meta, indent=1) + "\n")
    (out / "log").mkdir(exist_ok=True)
    (out / "log" / "timing.json").write_text(json.dumps({k: v for k, v in info.items() if k.endswith("_seconds")}, indent=1) + "\n")
    return info


def LG_arcs(fst):
    """Arcs per state (for sizes)."""
    for s in range(fst.num_states):
        yield fst.num_arcs(s)


def read_graph_info(graph_dir: Pathlike) -> Dict[str, object]:
    """``<graph_dir>/graph.json``, with a clear error when the graph dir is incomplete."""
    g = Path(graph_dir)
    for f in ("HCLG.fst", "words.txt", "graph.json"):
        if not (g / f).is_file():
            raise FileNotFoundError(f"{g / f}: missing (build the graph with steps/mkgraph.sh)")
    return json.loads((g / "graph.json").read_text())


def read_words_table(graph_dir: Pathlike) -> Dict[int, str]:
    """word-id -> word of ``<graph_dir>/words.txt``."""
    out: Dict[int, str] = {}
    for line in (Path(graph_dir) / "words.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            w, i = line.split()
            out[int(i)] = w
    return out
