"""GMM-HMM training: Kaldi's train_mono.sh (flat start, EM with realignment, Gaussian
mix-up, silence boost) and the shared EM loop that train_deltas.sh uses too.

Work is split over ``nj`` worker processes, one per ``split<nj>utt/<job>`` data dir (as
Kaldi's jobs): each keeps its utterances' features and training graphs, aligns them and
returns numpy sufficient statistics; the driver sums them and updates the model.
Alignments are written as Kaldi's ``ali.<job>.gz`` (transition-ids).
"""
from __future__ import annotations

import json
import logging
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from kdhybrid.gmm.align import AlignOptions, Lang, align_utterance, equal_align, graph_compiler, silence_boosted_am
from kdhybrid.gmm.feats import GmmFeatConfig, iter_gmm_features
from kdhybrid.gmm.model import GmmHmm, GmmStats, MleConfig, accumulate_stats, mle_update, single_gaussian
from kdhybrid.io.datadir import split_data
from kdhybrid.io.tables import Int32VectorWriter, read_int32_vector_ark, read_text_table
from kdhybrid.kaldi_libs import kaldi_hmm_gmm as khg

Pathlike = Union[str, Path]
log = logging.getLogger("kdhybrid.gmm")


# ---------------------------------------------------------------- worker processes


class _JobState:
    def __init__(self, data_dir: str, lang_dir: str, feat_cfg: GmmFeatConfig):
        self.lang = Lang(lang_dir)
        self.feats: Dict[str, np.ndarray] = dict(iter_gmm_features(data_dir, feat_cfg))
        text = read_text_table(Path(data_dir) / "text", min_fields=1)
        self.words = {u: text[u].split() for u in self.feats}
        self.graphs: Dict[str, object] = {}
        self.alis: Dict[str, np.ndarray] = {}
        self.model: Optional[GmmHmm] = None

    def set_model(self, model: GmmHmm, compile_graphs: bool) -> None:
        self.model = model
        if compile_graphs:
            gc = graph_compiler(model, self.lang)
            self.graphs = {u: gc.compile_graph_from_text(self.lang.word_ids(w)) for u, w in self.words.items()}

    def equal_align(self) -> List[str]:
        failed = []
        for u, f in self.feats.items():
            a = equal_align(self.graphs[u], f.shape[0])
            if a is None:
                failed.append(u)
                self.alis.pop(u, None)
            else:
                self.alis[u] = np.asarray(a, dtype=np.int32)
        return failed

    def align(self, opts: AlignOptions, boost: float) -> dict:
        m = self.model
        am = silence_boosted_am(m, self.lang, boost)
        failed, retried, like, frames = [], 0, 0.0, 0
        for u, f in self.feats.items():
            a, ll, r = align_utterance(m, am, self.graphs[u], f, u, opts)
            retried += int(r)
            if a is None:
                failed.append(u)
                self.alis.pop(u, None)
            else:
                self.alis[u] = a
                like += ll
                frames += len(a)
        return {"failed": failed, "retried": retried, "like": like, "frames": frames}

    def accumulate(self) -> Tuple[GmmStats, np.ndarray]:
        m = self.model
        tid2pdf = m.tid2pdf()
        utts = [u for u in self.feats if u in self.alis]
        if not utts:
            return GmmStats.zeros(m.am), np.zeros(m.tm.num_transition_ids + 1)
        ali = np.concatenate([self.alis[u] for u in utts])
        x = np.concatenate([self.feats[u] for u in utts])
        st = accumulate_stats(m.am, x, tid2pdf[ali])
        tcounts = np.bincount(ali, minlength=m.tm.num_transition_ids + 1).astype(np.float64)
        return st, tcounts

    def set_alis(self, alis: Dict[str, np.ndarray]) -> None:
        self.alis = {u: a for u, a in alis.items() if u in self.feats}

    def tree_stats(self, old_tm_pickle: bytes):
        """Per-frame contexts and features of this job's utterances (for acc-tree-stats)."""
        import pickle

        from kdhybrid.gmm.tree import TidInfo, frame_contexts

        info = TidInfo.of(pickle.loads(old_tm_pickle))
        ctxs, feats = [], []
        for u, a in self.alis.items():
            ctxs.append(frame_contexts(a, info))
            feats.append(self.feats[u])
        return ctxs, feats

    def convert(self, old_tm_pickle: bytes, new_model: GmmHmm) -> int:
        """convert-ali: this job's alignments to the new model's transition-ids."""
        import pickle

        from kdhybrid.gmm.tree import TidInfo, convert_alignment

        info = TidInfo.of(pickle.loads(old_tm_pickle))
        cache: dict = {}
        for u in list(self.alis):
            self.alis[u] = convert_alignment(self.alis[u], info, new_model.tm, new_model.tree, cache)
        return len(self.alis)

    def get_alis(self) -> Dict[str, np.ndarray]:
        return dict(self.alis)


def _worker_main(conn, data_dir: str, lang_dir: str, feat_cfg: GmmFeatConfig) -> None:
    try:
        state = _JobState(data_dir, lang_dir, feat_cfg)
        conn.send(("ok", len(state.feats)))
    except Exception as e:  # report, then exit
        conn.send(("error", f"{data_dir}: {type(e).__name__}: {e}"))
        return
    while True:
        cmd, args = conn.recv()
        if cmd == "stop":
            return
        try:
            conn.send(("ok", getattr(state, cmd)(*args)))
        except Exception as e:
            conn.send(("error", f"{data_dir}: {cmd}: {type(e).__name__}: {e}"))


class Jobs:
    """``nj`` worker processes, one per split of the data dir."""

    def __init__(self, data_dir: Pathlike, lang_dir: Pathlike, nj: int, feat_cfg: GmmFeatConfig):
        self.dirs = split_data(data_dir, nj)
        ctx = mp.get_context("fork")
        self.conns, self.procs = [], []
        for d in self.dirs:
            a, b = ctx.Pipe()
            p = ctx.Process(target=_worker_main, args=(b, str(d), str(lang_dir), feat_cfg), daemon=True)
            p.start()
            self.conns.append(a)
            self.procs.append(p)
        self.num_utts = [self._recv(c) for c in self.conns]

    def _recv(self, conn):
        status, value = conn.recv()
        if status != "ok":
            self.close()
            raise RuntimeError(value)
        return value

    def call(self, cmd: str, *args) -> list:
        for c in self.conns:
            c.send((cmd, args))
        return [self._recv(c) for c in self.conns]

    def close(self) -> None:
        for c, p in zip(self.conns, self.procs):
            try:
                c.send(("stop", ()))
            except (BrokenPipeError, OSError):
                pass
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()


# ---------------------------------------------------------------- EM loop


@dataclass
class EmConfig:
    num_iters: int = 30
    max_iter_inc: int = 20  # Gaussians are added until this iteration
    tot_gauss: int = 1000
    realign_iters: Sequence[int] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 23, 26, 29)
    boost_silence: float = 1.25
    power: float = 0.25  # Gaussians allocated to pdfs in proportion to occupancy**power
    perturb_factor: float = 0.01
    min_count: float = 20.0
    align: AlignOptions = field(default_factory=AlignOptions)


def em_iteration(model: GmmHmm, jobs: Jobs, mle: MleConfig) -> Tuple[GmmStats, np.ndarray]:
    """Accumulate over all jobs and update transitions and GMMs in place."""
    parts = jobs.call("accumulate")
    st = parts[0][0]
    tcounts = parts[0][1].copy()
    for s, t in parts[1:]:
        st.add(s)
        tcounts += t
    model.tm.mle_update(tcounts, khg.MleTransitionUpdateConfig())
    mle_update(model.am, st, mle)
    return st, tcounts


def mix_up(model: GmmHmm, st: GmmStats, target: int, cfg: EmConfig) -> None:
    if target > model.num_gauss:
        model.am.split_by_count(
            state_occs=st.pdf_occupancy().astype(np.float32),
            target_components=int(target),
            perturb_factor=cfg.perturb_factor,
            power=cfg.power,
            min_count=cfg.min_count,
        )


def run_em(
    model: GmmHmm, jobs: Jobs, cfg: EmConfig, exp_dir: Path, first_mixup_target: Optional[int] = None, progress: Callable = print
) -> List[dict]:
    """Kaldi's EM schedule: iterations 1..num_iters, realign on ``realign_iters``, mix up by
    ``inc_gauss`` a pass until ``max_iter_inc``. Iteration 0 (stats from the initial
    alignment) must have been run by the caller. Returns per-iteration records."""
    num_gauss = model.num_gauss
    inc = max(0, (cfg.tot_gauss - num_gauss) // max(cfg.max_iter_inc, 1))
    history = []
    for it in range(1, cfg.num_iters):
        t0 = time.time()
        rec: dict = {"iter": it}
        jobs.call("set_model", model, False)
        if it in cfg.realign_iters:
            res = jobs.call("align", cfg.align, cfg.boost_silence)
            failed = [u for r in res for u in r["failed"]]
            frames = sum(r["frames"] for r in res)
            rec.update(
                realigned=True,
                align_failed=len(failed),
                align_retried=sum(r["retried"] for r in res),
                align_like_per_frame=sum(r["like"] for r in res) / max(frames, 1),
            )
            for u in failed:
                log.warning("iteration %d: utterance %s failed to align (dropped from this pass)", it, u)
        st, _ = em_iteration(model, jobs, MleConfig())
        if it <= cfg.max_iter_inc:
            num_gauss += inc
            mix_up(model, st, num_gauss, cfg)
        rec.update(like_per_frame=st.loglike / max(st.frames, 1), frames=st.frames, num_gauss=model.num_gauss, seconds=round(time.time() - t0, 2))
        history.append(rec)
        progress(json.dumps(rec))
    return history


def write_alignments(jobs: Jobs, exp_dir: Path) -> Dict[str, int]:
    """``ali.<job>.gz`` per job (Kaldi's transition-id alignments) and ``num_jobs``."""
    counts = {"utterances": 0, "frames": 0}
    for j, alis in enumerate(jobs.call("get_alis"), 1):
        with Int32VectorWriter(exp_dir / f"ali.{j}.gz") as w:
            for u in sorted(alis, key=lambda s: s.encode()):
                w.write(u, alis[u])
                counts["utterances"] += 1
                counts["frames"] += len(alis[u])
    (exp_dir / "num_jobs").write_text(f"{len(jobs.dirs)}\n")
    return counts


def read_alignments(ali_dir: Pathlike) -> Dict[str, np.ndarray]:
    """All ``ali.*.gz`` of an alignment dir (ours or Kaldi's)."""
    ali_dir = Path(ali_dir)
    files = sorted(ali_dir.glob("ali.*.gz"), key=lambda p: int(p.name.split(".")[1]))
    if not files:
        raise FileNotFoundError(f"{ali_dir}: no ali.*.gz files")
    out: Dict[str, np.ndarray] = {}
    for f in files:
        out.update(read_int32_vector_ark(f))
    return out


# ---------------------------------------------------------------- monophone


@dataclass
class MonoConfig:
    em: EmConfig = field(default_factory=EmConfig)
    feats: GmmFeatConfig = field(default_factory=GmmFeatConfig)
    init_subset_frames: int = 200000


def init_mono(lang: Lang, feats_for_stats: np.ndarray) -> GmmHmm:
    """Kaldi's gmm-init-mono: a shared-root monophone tree (phones of a set share pdfs) and
    one Gaussian per pdf at the global mean and variance."""
    topo = lang.topo()
    tree = khg.monophone_context_dependency_shared(phone_classes=lang.sets, phone2num_pdf_classes=topo.get_phone_to_num_pdf_classes())
    tm = khg.TransitionModel(ctx_dep=tree, hmm_topo=topo)
    g = single_gaussian(feats_for_stats.mean(0), np.maximum(feats_for_stats.var(0), 1e-3))
    am = khg.AmDiagGmm()
    for _ in range(tree.num_pdfs):
        am.add_pdf(g)
    return GmmHmm(topo, tree, tm, am)


def train_mono(data_dir: Pathlike, lang_dir: Pathlike, exp_dir: Pathlike, nj: int, cfg: Optional[MonoConfig] = None) -> dict:
    """Train a monophone system into ``exp_dir`` (final.mdl, tree, ali.*.gz, ...)."""
    cfg = cfg or MonoConfig()
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    lang = Lang(lang_dir)
    jobs = Jobs(data_dir, lang_dir, nj, cfg.feats)
    try:
        # Global stats from a subset of the features (the first job's, as Kaldi uses a subset).
        chunks, n = [], 0
        for _, f in iter_gmm_features(jobs.dirs[0], cfg.feats):
            chunks.append(f)
            n += len(f)
            if n >= cfg.init_subset_frames:
                break
        x = np.concatenate(chunks)[: cfg.init_subset_frames]
        model = init_mono(lang, x)
        log.info("mono: %d pdfs, feature dim %d, %d utterances in %d jobs", model.num_pdfs, x.shape[1], sum(jobs.num_utts), nj)
        jobs.call("set_model", model, True)
        failed = [u for f in jobs.call("equal_align") for u in f]
        for u in failed:
            log.warning("equal alignment failed for %s (too short for its transcript)", u)
        # Iteration 0: from the equal alignment, Kaldi's gmm-est --min-gaussian-occupancy=3.
        st, _ = em_iteration(model, jobs, MleConfig(min_gaussian_occupancy=3.0))
        history = [{"iter": 0, "like_per_frame": st.loglike / max(st.frames, 1), "frames": st.frames, "equal_align_failed": len(failed)}]
        log.info(json.dumps(history[0]))
        history += run_em(model, jobs, cfg.em, exp_dir, progress=log.info)
        # Final alignment with the final model, as align_si.sh would give.
        jobs.call("set_model", model, False)
        res = jobs.call("align", cfg.em.align, cfg.em.boost_silence)
        final_failed = [u for r in res for u in r["failed"]]
        model.save(exp_dir)
        counts = write_alignments(jobs, exp_dir)
    finally:
        jobs.close()
    summary = _summary(model, history, counts, final_failed, time.time() - t_start)
    _write_exp_files(exp_dir, lang_dir, cfg, summary)
    return summary


def _summary(model: GmmHmm, history: List[dict], counts: Dict[str, int], failed: List[str], seconds: float) -> dict:
    return {
        "num_pdfs": model.num_pdfs,
        "num_gauss": model.num_gauss,
        "final_like_per_frame": history[-1]["like_per_frame"],
        "aligned_utterances": counts["utterances"],
        "aligned_frames": counts["frames"],
        "align_failed": failed,
        "seconds": round(seconds, 1),
        "history": history,
    }


def _write_exp_files(exp_dir: Path, lang_dir: Pathlike, cfg, summary: dict) -> None:
    import shutil

    shutil.copy(Path(lang_dir) / "phones.txt", exp_dir / "phones.txt")
    fc = cfg.feats
    (exp_dir / "cmvn_opts").write_text(f"--norm-means=true --norm-vars={'true' if fc.norm_vars else 'false'}\n")
    (exp_dir / "feat_opts.json").write_text(json.dumps(asdict(fc), indent=1) + "\n")
    (exp_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=1, default=str) + "\n")
    (exp_dir / "train.json").write_text(json.dumps(summary, indent=1) + "\n")


# ---------------------------------------------------------------- triphone (train_deltas)


@dataclass
class DeltasConfig:
    num_leaves: int = 1000
    tot_gauss: int = 8000
    em: EmConfig = field(default_factory=lambda: EmConfig(
        num_iters=25, max_iter_inc=18, realign_iters=(8, 16, 22), boost_silence=1.0))
    feats: GmmFeatConfig = field(default_factory=GmmFeatConfig)
    min_count: float = 100.0


def train_deltas(data_dir: Pathlike, lang_dir: Pathlike, ali_dir: Pathlike, exp_dir: Pathlike, nj: int, cfg: Optional[DeltasConfig] = None) -> dict:
    """Kaldi's train_deltas.sh: tree from the alignments in ``ali_dir``, alignments converted
    to the new tree, EM with realignment and mix-up to ``tot_gauss``."""
    import pickle

    from kdhybrid.gmm import tree as T

    cfg = cfg or DeltasConfig()
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    lang = Lang(lang_dir)
    old = GmmHmm.load(ali_dir)
    alis = read_alignments(ali_dir)
    jobs = Jobs(data_dir, lang_dir, nj, cfg.feats)
    timings = {}
    try:
        missing = sum(jobs.num_utts) - len(alis)
        jobs.call("set_alis", alis)
        old_tm = pickle.dumps(old.tm)
        parts = jobs.call("tree_stats", old_tm)
        stats = T.accumulate_tree_stats([c for p in parts for c in p[0]], [f for p in parts for f in p[1]])
        roots = [[int(x) for x in l.split()[2:]] for l in (Path(lang_dir) / "phones/roots.int").read_text().splitlines()]
        extra = [[int(x) for x in l.split()] for l in (Path(lang_dir) / "phones/extra_questions.int").read_text().splitlines() if l.strip()]
        t0 = time.time()
        questions = T.cluster_phone_questions(stats, lang.sets, extra)
        topo = lang.topo()
        npc = {p: topo.num_pdf_classes(p) for p in topo.phones}
        nodes, num_leaves, tree_info = T.build_tree(stats, roots, questions, npc, T.TreeConfig(cfg.num_leaves, cfg.min_count))
        max_phone = max(lang.phones[p] for p in lang.phones if not p.startswith("#"))
        tree = T.context_dependency_from_bytes(T.tree_to_kaldi(nodes, roots, max_phone))
        # Kaldi's own lookup must agree with ours on every seen event.
        phone_root = {p: r for r, ps in enumerate(roots) for p in ps}
        for ev in stats.events[:: max(1, len(stats.events) // 2000)].tolist():
            ok, pdf = tree.compute([ev[0], ev[1], ev[2]], ev[3])
            if not ok or pdf != T.lookup(nodes, phone_root, ev):
                raise RuntimeError(f"tree check failed for context {ev}: kaldi {pdf}, ours {T.lookup(nodes, phone_root, ev)}")
        timings["tree_seconds"] = round(time.time() - t0, 1)
        tm = khg.TransitionModel(ctx_dep=tree, hmm_topo=topo)
        # gmm-init-model: one Gaussian per leaf from the pooled event stats.
        am = khg.AmDiagGmm()
        leaf_of_event = np.array([T.lookup(nodes, phone_root, ev) for ev in stats.events.tolist()])
        d = stats.x.shape[1]
        gc = np.bincount(leaf_of_event, weights=stats.count, minlength=num_leaves)
        gx = np.zeros((num_leaves, d))
        gxx = np.zeros((num_leaves, d))
        np.add.at(gx, leaf_of_event, stats.x)
        np.add.at(gxx, leaf_of_event, stats.xx)
        glob_var = np.maximum(stats.xx.sum(0) / stats.count.sum() - (stats.x.sum(0) / stats.count.sum()) ** 2, 1e-3)
        for leaf in range(num_leaves):
            c = max(gc[leaf], 1e-10)
            mean = gx[leaf] / c if gc[leaf] > 0 else stats.x.sum(0) / stats.count.sum()
            var = np.maximum(gxx[leaf] / c - mean**2, 1e-3) if gc[leaf] > 1 else glob_var
            am.add_pdf(single_gaussian(mean, var))
        model = GmmHmm(topo, tree, tm, am)
        log.info("tri: %d leaves (%s), %d questions, tree built in %.1f s", num_leaves, tree_info, len(questions), timings["tree_seconds"])
        jobs.call("convert", old_tm, model)
        jobs.call("set_model", model, True)
        st, _ = em_iteration(model, jobs, MleConfig())
        mix_up(model, st, num_leaves, cfg.em)
        history = [{"iter": 0, "like_per_frame": st.loglike / max(st.frames, 1), "frames": st.frames, "num_gauss": model.num_gauss}]
        log.info(json.dumps(history[0]))
        em = cfg.em
        em.tot_gauss = cfg.tot_gauss
        history += run_em(model, jobs, em, exp_dir, progress=log.info)
        jobs.call("set_model", model, False)
        res = jobs.call("align", em.align, em.boost_silence)
        final_failed = [u for r in res for u in r["failed"]]
        model.save(exp_dir)
        counts = write_alignments(jobs, exp_dir)
    finally:
        jobs.close()
    summary = _summary(model, history, counts, final_failed, time.time() - t_start)
    summary.update(tree=tree_info, questions=len(questions), utterances_without_input_alignment=missing, **timings)
    _write_exp_files(exp_dir, lang_dir, cfg, summary)
    return summary
