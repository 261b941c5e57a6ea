"""GMM-HMM training: Kaldi's train_mono.sh (flat start, EM with realignment, Gaussian
mix-up, silence boost) and the shared EM loop that train_deltas.sh uses too.

The driver loads the GMM features of every utterance once, in the data dir's order
(:class:`UttFeatures`), and forks ``nj`` worker processes that share them. Each worker owns
the utterances of one ``split<nj>utt/<job>`` data dir (as Kaldi's jobs): it compiles their
training graphs and aligns them. The driver keeps all alignments.

Reproducibility: the same corpus, lang dir and seed give byte-identical models, trees and
alignments, run after run and for any ``nj``:

* statistics never depend on how utterances are split into jobs: each pdf's Gaussian
  statistics are accumulated from all its frames in the data dir's order, in float64, by
  one worker (pdfs are shared out among the workers; which one computes a pdf changes
  nothing), transition counts are integers, and scalar totals are exact sums
  (``math.fsum``);
* BLAS runs single-threaded in the workers (threadpoolctl), so no thread count reaches
  the numbers;
* Gaussian mix-up draws from a numpy generator seeded by the training's ``seed`` and the
  iteration (:mod:`kdhybrid.gmm.mixup`; kaldi-hmm-gmm's own split cannot be seeded);
* wall times go to ``log/`` only, never into the model dir's other files.

Alignments are written as Kaldi's ``ali.<job>.gz`` (transition-ids).
"""
from __future__ import annotations

import json
import logging
import math
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from kdhybrid.gmm.align import AlignOptions, Lang, align_utterance, equal_align, graph_compiler, silence_boosted_am
from kdhybrid.gmm.feats import GmmFeatConfig, gmm_features
from kdhybrid.io.datadir import iter_utterance_features
from kdhybrid.gmm.mixup import mix_up as split_by_count
from kdhybrid.gmm.model import GmmHmm, GmmStats, MleConfig, accumulate_pdf_stats, mle_update, single_gaussian
from kdhybrid.io.datadir import split_data
from kdhybrid.io.tables import Int32VectorWriter, read_int32_vector_ark, read_text_table
from kdhybrid.kaldi_libs import kaldi_hmm_gmm as khg

Pathlike = Union[str, Path]
log = logging.getLogger("kdhybrid.gmm")


# ---------------------------------------------------------------- features and alignments


def shared_array(shape: Tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """A zeroed array in anonymous shared memory: processes forked after its creation see
    the parent's later writes (the driver re-projects features in place during LDA+MLLT and
    SAT training, and the workers align with the new ones)."""
    import mmap

    n = int(np.prod(shape))
    buf = mmap.mmap(-1, max(n * np.dtype(dtype).itemsize, 1))
    return np.frombuffer(buf, dtype=dtype, count=n).reshape(shape)


@dataclass
class UttFeatures:
    """The GMM features of every utterance of a data dir, in its order, in one array.

    ``x`` (T, D) float32, in shared memory, holds utterance ``utts[i]`` in rows
    ``offsets[i]:offsets[i+1]`` ((U + 1,) int64); ``spks[i]`` is its speaker.

    For spliced configs (LDA+MLLT, SAT) the driver also keeps ``source`` (T, num_ceps), the
    static cepstra: :meth:`set_matrix` projects their splices through ``final.mat`` into
    ``x``, and :meth:`set_transforms` applies per-speaker fMLLR transforms on top (the
    features before them stay in ``si``, shared too). Both write ``x`` in place, so workers
    forked earlier see the new features."""

    utts: List[str]
    offsets: np.ndarray
    x: Optional[np.ndarray]
    spks: List[str] = field(default_factory=list)
    source: Optional[np.ndarray] = None
    splice: int = 0
    matrix: Optional[np.ndarray] = None
    si: Optional[np.ndarray] = None
    transforms: Optional[Dict[str, np.ndarray]] = None

    @classmethod
    def load(cls, data_dir: Pathlike, cfg: GmmFeatConfig, matrix: Optional[np.ndarray] = None) -> "UttFeatures":
        """Deltas (``cfg.splice_context`` = 0), or static cepstra kept for splicing, projected
        by ``matrix`` (D, num_ceps * (2 c + 1)) when given (else ``x`` stays None until
        :meth:`set_matrix`)."""
        from kdhybrid.gmm.feats import cepstra
        from kdhybrid.io.datadir import read_data_dir

        utts, parts = [], []
        spliced = cfg.splice_context > 0
        base = GmmFeatConfig(**{**asdict(cfg), "splice_context": 0, "delta_order": 0}) if spliced else cfg
        for u, f, c in iter_utterance_features(data_dir, require_cmvn=True):
            utts.append(u)
            parts.append(cepstra(f, c, base) if spliced else gmm_features(f, c, base))
        utt2spk = read_data_dir(data_dir).utt2spk
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([len(f) for f in parts], out=offsets[1:])
        dim = parts[0].shape[1] if parts else 0
        self = cls(utts, offsets, None, [utt2spk[u] for u in utts], splice=cfg.splice_context)
        if spliced:
            self.source = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
            if matrix is not None:
                self.set_matrix(matrix)
        else:
            self.x = shared_array((int(offsets[-1]), dim))
            if parts:
                np.concatenate(parts, out=self.x)
        return self

    def index(self) -> Dict[str, int]:
        return {u: i for i, u in enumerate(self.utts)}

    def get(self, i: int) -> np.ndarray:
        return self.x[self.offsets[i] : self.offsets[i + 1]]

    def spliced(self, i: int) -> np.ndarray:
        """(T_i, num_ceps * (2 c + 1)) float32 spliced cepstra of utterance ``i``."""
        from kdhybrid.gmm.lda import splice_frames

        return splice_frames(self.source[self.offsets[i] : self.offsets[i + 1]], self.splice)

    def set_matrix(self, matrix: np.ndarray) -> None:
        """``x`` = spliced cepstra projected by ``matrix`` (D, num_ceps * (2 c + 1)), then the
        speaker transforms if set. The first call allocates ``x`` (before forking workers)."""
        m = np.asarray(matrix, dtype=np.float64)
        if self.x is None:
            self.x = shared_array((int(self.offsets[-1]), m.shape[0]))
        elif self.x.shape[1] != m.shape[0]:
            raise ValueError(f"feature dim {self.x.shape[1]} cannot change to {m.shape[0]} after workers were forked")
        self.matrix = m
        target = self.si if self.si is not None else self.x
        for i in range(len(self.utts)):
            target[self.offsets[i] : self.offsets[i + 1]] = self.spliced(i) @ m.T
        if self.transforms is not None:
            self.set_transforms(self.transforms)

    def set_transforms(self, transforms: Dict[str, np.ndarray]) -> None:
        """``x`` = each speaker's fMLLR ``[A b]`` (D, D + 1) applied to ``si`` (which is made,
        shared, from ``x`` on the first call: call it before forking workers)."""
        from kdhybrid.gmm.fmllr import apply_transform

        if self.si is None:
            self.si = shared_array(self.x.shape)
            self.si[:] = self.x
        self.transforms = dict(transforms)
        for i, spk in enumerate(self.spks):
            s, e = self.offsets[i], self.offsets[i + 1]
            self.x[s:e] = apply_transform(self.si[s:e], self.transforms[spk])

    def speaker_rows(self) -> Dict[str, np.ndarray]:
        """speaker -> (n,) int64 frame rows of its utterances, in data order."""
        rows: Dict[str, List[np.ndarray]] = {}
        for i, spk in enumerate(self.spks):
            rows.setdefault(spk, []).append(np.arange(self.offsets[i], self.offsets[i + 1]))
        return {k: np.concatenate(v) for k, v in rows.items()}


def frame_pdfs(feats: UttFeatures, alis: Dict[str, np.ndarray], tid2pdf: np.ndarray,
               drop_tids: Optional[np.ndarray] = None) -> np.ndarray:
    """(T,) int32: the pdf of every frame of ``feats`` under ``alis`` (-1 where an utterance
    has no alignment, and where the frame's transition-id is in ``drop_tids``, e.g. silence's:
    Kaldi's weight-silence-post 0.0)."""
    out = np.full(int(feats.offsets[-1]), -1, dtype=np.int32)
    lut = tid2pdf.copy()
    if drop_tids is not None:
        lut[np.asarray(drop_tids, dtype=np.int64)] = -1
    for i, u in enumerate(feats.utts):
        a = alis.get(u)
        if a is not None:
            out[feats.offsets[i] : feats.offsets[i + 1]] = lut[a]
    return out


def silence_tids(model: GmmHmm, lang: Lang) -> np.ndarray:
    """(n,) int64: the transition-ids of the lang dir's silence phones."""
    phones = model.tid2phone()
    return np.flatnonzero(np.isin(phones, lang.silence) & (np.arange(len(phones)) > 0))


def single_threaded_blas(fn: Callable) -> Callable:
    """Run ``fn`` with BLAS limited to one thread (threadpoolctl): the driver's statistics
    and transform estimates then never depend on the thread count (OpenBLAS's results do,
    in the last bits), and small matrix work is not slowed by threads fighting over a
    loaded machine (an MLLT estimate took 100 s with the default threads, 0.8 s with one)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return fn(*args, **kwargs)

    return wrapper


# ---------------------------------------------------------------- worker processes


class _JobState:
    """One job's utterances: their training graphs and alignment (features are shared)."""

    def __init__(self, feats: UttFeatures, utts: List[str], words: Dict[str, List[str]], lang_dir: str):
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # no hidden dependence on the thread count
        self.lang = Lang(lang_dir)
        self.feats = feats
        index = feats.index()
        self.rows = [(u, index[u]) for u in utts]
        self.words = words
        self.graphs: Dict[str, object] = {}
        self.model: Optional[GmmHmm] = None

    def set_model(self, model: GmmHmm, compile_graphs: bool) -> None:
        self.model = model
        if compile_graphs:
            gc = graph_compiler(model, self.lang)
            self.graphs = {u: gc.compile_graph_from_text(self.lang.word_ids(self.words[u])) for u, _ in self.rows}

    def equal_align(self) -> Dict[str, Optional[np.ndarray]]:
        out = {}
        for u, i in self.rows:
            a = equal_align(self.graphs[u], int(self.feats.offsets[i + 1] - self.feats.offsets[i]))
            out[u] = None if a is None else np.asarray(a, dtype=np.int32)
        return out

    def align(self, opts: AlignOptions, boost: float) -> dict:
        """Viterbi alignment of every utterance: {"alis": {utt: ali or None}, "likes":
        {utt: log-likelihood}, "retried": count}."""
        m = self.model
        am = silence_boosted_am(m, self.lang, boost)
        alis, likes, retried = {}, {}, 0
        for u, i in self.rows:
            a, ll, r = align_utterance(m, am, self.graphs[u], self.feats.get(i), u, opts)
            retried += int(r)
            alis[u] = a
            if a is not None:
                likes[u] = ll
        return {"alis": alis, "likes": likes, "retried": retried}

    def accumulate(self, pdf_of_frame: np.ndarray, pdfs: np.ndarray, si_stats: bool = False) -> dict:
        """Gaussian statistics of the pdfs ``pdfs`` over all frames (see
        :func:`kdhybrid.gmm.model.accumulate_pdf_stats`); with ``si_stats`` the statistics
        of the speaker-independent features under the adapted features' posteriors."""
        two = self.feats.si if si_stats else None
        return accumulate_pdf_stats(self.model.am, self.feats.x, pdf_of_frame, pdfs, stats_feats=two)

    def run(self, fn: Callable, *args):
        """``fn(features, model, *args)`` in this worker (``fn`` a module-level function:
        it is pickled by name), e.g. one share of the speakers' fMLLR estimation."""
        return fn(self.feats, self.model, *args)

    def convert(self, old_tm_pickle: bytes, new_model: GmmHmm, alis: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """convert-ali: ``alis`` (this job's) to the new model's transition-ids."""
        import pickle

        from kdhybrid.gmm.tree import TidInfo, convert_alignment

        info = TidInfo.of(pickle.loads(old_tm_pickle))
        cache: dict = {}
        return {u: convert_alignment(a, info, new_model.tm, new_model.tree, cache) for u, a in alis.items()}


def _worker_main(conn, feats: UttFeatures, utts: List[str], words: Dict[str, List[str]], lang_dir: str) -> None:
    try:
        state = _JobState(feats, utts, words, lang_dir)
        conn.send(("ok", len(state.rows)))
    except Exception as e:  # report, then exit
        conn.send(("error", f"job over {len(utts)} utterances: {type(e).__name__}: {e}"))
        return
    while True:
        cmd, args = conn.recv()
        if cmd == "stop":
            return
        try:
            conn.send(("ok", getattr(state, cmd)(*args)))
        except Exception as e:
            conn.send(("error", f"{cmd}: {type(e).__name__}: {e}"))


def share_by_size(items: Sequence, sizes: Sequence[int], n: int) -> List[list]:
    """Deal ``items`` to ``n`` workers, largest first (ties in the given order), each to the
    least loaded so far: the jobs' shares of pdfs (accumulation) or speakers (fMLLR). Which
    worker gets an item never changes its numbers, only the balance."""
    shares: List[list] = [[] for _ in range(n)]
    load = [0] * n
    for i in sorted(range(len(items)), key=lambda i: (-sizes[i], i)):
        j = load.index(min(load))
        shares[j].append(items[i])
        load[j] += int(sizes[i])
    return shares


class Jobs:
    """``nj`` worker processes, one per ``split<nj>utt`` job of the data dir, sharing the
    features that the driver loaded (forked after loading). The driver keeps every
    utterance's alignment in ``alis``."""

    def __init__(self, data_dir: Pathlike, lang_dir: Pathlike, nj: int, feats: Union[GmmFeatConfig, UttFeatures]):
        self.feats = feats if isinstance(feats, UttFeatures) else UttFeatures.load(data_dir, feats)
        self.dirs = split_data(data_dir, nj)
        text = read_text_table(Path(data_dir) / "text", min_fields=1)
        self.splits = [list(read_text_table(d / "utt2spk")) for d in self.dirs]
        self.alis: Dict[str, np.ndarray] = {}
        ctx = mp.get_context("fork")
        self.conns, self.procs = [], []
        for utts in self.splits:
            a, b = ctx.Pipe()
            words = {u: text[u].split() for u in utts}
            p = ctx.Process(target=_worker_main, args=(b, self.feats, utts, words, str(lang_dir)), daemon=True)
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

    def call_each(self, cmd: str, args_per_job: Sequence[tuple]) -> list:
        for c, a in zip(self.conns, args_per_job):
            c.send((cmd, tuple(a)))
        return [self._recv(c) for c in self.conns]

    def set_alis(self, results: Sequence[Dict[str, Optional[np.ndarray]]]) -> List[str]:
        """Take the jobs' alignments (utt -> ali or None); returns the failed utterances."""
        failed = []
        for res in results:
            for u, a in res.items():
                if a is None:
                    failed.append(u)
                    self.alis.pop(u, None)
                else:
                    self.alis[u] = a
        return failed

    def align(self, opts: AlignOptions, boost: float) -> dict:
        """Realign every utterance with the workers' current model."""
        res = self.call("align", opts, boost)
        failed = self.set_alis([r["alis"] for r in res])
        likes = [ll for r in res for ll in r["likes"].values()]
        frames = sum(len(a) for a in self.alis.values())
        return {"failed": failed, "retried": sum(r["retried"] for r in res), "like": math.fsum(likes), "frames": frames}

    def accumulate(self, model: GmmHmm, si_stats: bool = False) -> Tuple[GmmStats, np.ndarray]:
        """Statistics of the current alignments under the workers' model (set_model first):
        Gaussian statistics, pdfs shared out among the workers by frame count, and
        transition counts (num_transition_ids + 1,) float64. ``si_stats``: of the
        speaker-independent features (see :meth:`_JobState.accumulate`)."""
        tid2pdf = model.tid2pdf()
        pdf_of_frame = frame_pdfs(self.feats, self.alis, tid2pdf)
        counts = np.bincount(pdf_of_frame[pdf_of_frame >= 0], minlength=model.num_pdfs)
        shares = share_by_size(range(model.num_pdfs), counts.tolist(), len(self.conns))
        parts = self.call_each("accumulate", [(pdf_of_frame, np.asarray(sorted(s), dtype=np.int64), si_stats) for s in shares])
        st = GmmStats.from_pdf_stats(model.am, parts, frames=int((pdf_of_frame >= 0).sum()))
        ali = [self.alis[u] for u in self.feats.utts if u in self.alis]
        n = model.tm.num_transition_ids + 1
        tcounts = np.bincount(np.concatenate(ali), minlength=n).astype(np.float64) if ali else np.zeros(n)
        return st, tcounts

    def convert(self, old_tm_pickle: bytes, new_model: GmmHmm) -> None:
        """convert-ali of every alignment to ``new_model`` (in the workers)."""
        args = [(old_tm_pickle, new_model, {u: self.alis[u] for u in utts if u in self.alis}) for utts in self.splits]
        for res in self.call_each("convert", args):
            self.alis.update(res)

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
    seed: int = 1  # of the mix-up's perturbations (with the stage and the iteration)
    align: AlignOptions = field(default_factory=AlignOptions)


def configure_em(em: "EmConfig", num_iters: int, seed: int, beam: float, retry_beam: float) -> None:
    """Set a triphone schedule's iteration count (realignments and mix-up cut to fit), seed
    and alignment beams, in place (the train_* commands' options)."""
    em.num_iters = num_iters
    em.seed = seed
    em.realign_iters = tuple(i for i in em.realign_iters if i < num_iters)
    em.max_iter_inc = min(em.max_iter_inc, num_iters - 1)
    em.align.beam = beam
    em.align.retry_beam = retry_beam


def em_iteration(model: GmmHmm, jobs: Jobs, mle: MleConfig) -> Tuple[GmmStats, np.ndarray]:
    """Accumulate over all jobs and update transitions and GMMs in place."""
    st, tcounts = jobs.accumulate(model)
    model.tm.mle_update(tcounts, khg.MleTransitionUpdateConfig())
    mle_update(model.am, st, mle)
    return st, tcounts


def mix_up(model: GmmHmm, st: GmmStats, target: int, cfg: EmConfig, stream: Sequence[int]) -> None:
    """Split Gaussians up to ``target`` in total; the perturbations are drawn from a
    generator seeded by ``(cfg.seed, *stream)`` (e.g. the stage and the iteration)."""
    if target > model.num_gauss:
        rng = np.random.default_rng([cfg.seed, *stream])
        split_by_count(model.am, st.pdf_occupancy(), int(target), cfg.perturb_factor, cfg.power, cfg.min_count, rng)


def run_em(
    model: GmmHmm, jobs: Jobs, cfg: EmConfig, stage: int, progress: Callable = print,
    hook: Optional[Callable[[int, GmmHmm], Optional[dict]]] = None,
) -> List[dict]:
    """Kaldi's EM schedule: iterations 1..num_iters, realign on ``realign_iters``, mix up by
    ``inc_gauss`` a pass until ``max_iter_inc``. Iteration 0 (stats from the initial
    alignment) must have been run by the caller. ``stage`` (0 mono, 1 triphone, 2 LDA+MLLT,
    3 SAT) and the iteration seed the mix-up with ``cfg.seed``. ``hook(iteration, model)``
    runs after the realignment and before the statistics (MLLT or fMLLR re-estimation: it may
    change the model and the features in place) and returns what to record. Returns
    per-iteration records (what ``train.json`` keeps; each one's wall time goes to
    ``progress`` only)."""
    num_gauss = model.num_gauss
    inc = max(0, (cfg.tot_gauss - num_gauss) // max(cfg.max_iter_inc, 1))
    history = []
    for it in range(1, cfg.num_iters):
        t0 = time.time()
        rec: dict = {"iter": it}
        jobs.call("set_model", model, False)
        if it in cfg.realign_iters:
            res = jobs.align(cfg.align, cfg.boost_silence)
            rec.update(
                realigned=True,
                align_failed=len(res["failed"]),
                align_retried=res["retried"],
                align_like_per_frame=res["like"] / max(res["frames"], 1),
            )
            for u in res["failed"]:
                log.warning("iteration %d: utterance %s failed to align (dropped from this pass)", it, u)
        if hook is not None:
            extra = hook(it, model)
            if extra:
                rec.update(extra)
                jobs.call("set_model", model, False)
        st, _ = em_iteration(model, jobs, MleConfig())
        if it <= cfg.max_iter_inc:
            num_gauss += inc
            mix_up(model, st, num_gauss, cfg, (stage, it))
        rec.update(like_per_frame=st.loglike / max(st.frames, 1), frames=st.frames, num_gauss=model.num_gauss)
        history.append(rec)
        progress(json.dumps(dict(rec, seconds=round(time.time() - t0, 2))))
    return history


def write_alignments(jobs: Jobs, exp_dir: Path) -> Dict[str, int]:
    """``ali.<job>.gz`` per job (Kaldi's transition-id alignments, each job's utterances
    in sorted order) and ``num_jobs``."""
    counts = {"utterances": 0, "frames": 0}
    for j, utts in enumerate(jobs.splits, 1):
        with Int32VectorWriter(exp_dir / f"ali.{j}.gz") as w:
            for u in sorted((u for u in utts if u in jobs.alis), key=lambda s: s.encode()):
                w.write(u, jobs.alis[u])
                counts["utterances"] += 1
                counts["frames"] += len(jobs.alis[u])
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
    one Gaussian per pdf at the global mean and variance (float64 statistics)."""
    topo = lang.topo()
    tree = khg.monophone_context_dependency_shared(phone_classes=lang.sets, phone2num_pdf_classes=topo.get_phone_to_num_pdf_classes())
    tm = khg.TransitionModel(ctx_dep=tree, hmm_topo=topo)
    x = feats_for_stats.astype(np.float64)
    g = single_gaussian(x.mean(0), np.maximum(x.var(0), 1e-3))
    am = khg.AmDiagGmm()
    for _ in range(tree.num_pdfs):
        am.add_pdf(g)
    return GmmHmm(topo, tree, tm, am)


@single_threaded_blas
def train_mono(data_dir: Pathlike, lang_dir: Pathlike, exp_dir: Pathlike, nj: int, cfg: Optional[MonoConfig] = None) -> dict:
    """Train a monophone system into ``exp_dir`` (final.mdl, tree, ali.*.gz, ...)."""
    cfg = cfg or MonoConfig()
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    lang = Lang(lang_dir)
    jobs = Jobs(data_dir, lang_dir, nj, cfg.feats)
    try:
        # Global stats from the data dir's first frames (Kaldi takes a subset of job 1;
        # here the subset does not depend on the number of jobs).
        x = jobs.feats.x[: cfg.init_subset_frames]
        model = init_mono(lang, x)
        log.info("mono: %d pdfs, feature dim %d, %d utterances in %d jobs", model.num_pdfs, x.shape[1], sum(jobs.num_utts), nj)
        jobs.call("set_model", model, True)
        failed = jobs.set_alis(jobs.call("equal_align"))
        for u in failed:
            log.warning("equal alignment failed for %s (too short for its transcript)", u)
        # Iteration 0: from the equal alignment, Kaldi's gmm-est --min-gaussian-occupancy=3.
        st, _ = em_iteration(model, jobs, MleConfig(min_gaussian_occupancy=3.0))
        history = [{"iter": 0, "like_per_frame": st.loglike / max(st.frames, 1), "frames": st.frames, "equal_align_failed": len(failed)}]
        log.info(json.dumps(history[0]))
        history += run_em(model, jobs, cfg.em, stage=0, progress=log.info)
        # Final alignment with the final model, as align_si.sh would give.
        jobs.call("set_model", model, False)
        final_failed = jobs.align(cfg.em.align, cfg.em.boost_silence)["failed"]
        model.save(exp_dir)
        counts = write_alignments(jobs, exp_dir)
    finally:
        jobs.close()
    summary = _summary(model, history, counts, final_failed)
    seconds = time.time() - t_start
    _write_exp_files(exp_dir, lang_dir, cfg, summary, seconds)
    summary["seconds"] = round(seconds, 1)
    return summary


def _summary(model: GmmHmm, history: List[dict], counts: Dict[str, int], failed: List[str]) -> dict:
    return {
        "num_pdfs": model.num_pdfs,
        "num_gauss": model.num_gauss,
        "final_like_per_frame": history[-1]["like_per_frame"],
        "aligned_utterances": counts["utterances"],
        "aligned_frames": counts["frames"],
        "align_failed": failed,
        "history": history,
    }


def _write_exp_files(exp_dir: Path, lang_dir: Pathlike, cfg, summary: dict, seconds: float, **timings: float) -> None:
    """The exp dir's settings and ``train.json``; the wall times go to ``log/timing.json``
    (the only file of the dir that differs between two runs)."""
    import shutil

    shutil.copy(Path(lang_dir) / "phones.txt", exp_dir / "phones.txt")
    fc = cfg.feats
    (exp_dir / "cmvn_opts").write_text(f"--norm-means=true --norm-vars={'true' if fc.norm_vars else 'false'}\n")
    (exp_dir / "feat_opts.json").write_text(json.dumps(asdict(fc), indent=1) + "\n")
    (exp_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=1, default=str) + "\n")
    (exp_dir / "train.json").write_text(json.dumps(summary, indent=1) + "\n")
    (exp_dir / "log").mkdir(exist_ok=True)
    (exp_dir / "log" / "timing.json").write_text(json.dumps(dict(seconds=round(seconds, 1), **timings), indent=1) + "\n")


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
    cfg = cfg or DeltasConfig()
    return train_tree_system(data_dir, lang_dir, ali_dir, exp_dir, nj, cfg, UttFeatures.load(data_dir, cfg.feats), stage=1)


@dataclass
class SystemHooks:
    """What a triphone system adds to :func:`train_tree_system` (LDA+MLLT, SAT):

    * ``before_tree(jobs, old_model)``: after the input alignments are loaded, before the tree
      statistics (e.g. the first fMLLR transforms); returns what ``train.json`` records;
    * ``iteration(it, model, jobs)``: see :func:`run_em`'s hook;
    * ``finish(model, jobs, exp_dir)``: after the final alignment, writes its own files
      (``final.mat``, ``trans.*``, ``final.alimdl``); returns what ``train.json`` records."""

    before_tree: Optional[Callable[[Jobs, GmmHmm], dict]] = None
    iteration: Optional[Callable[[int, GmmHmm, Jobs], Optional[dict]]] = None
    finish: Optional[Callable[[GmmHmm, Jobs, Path], dict]] = None


@single_threaded_blas
def train_tree_system(
    data_dir: Pathlike, lang_dir: Pathlike, ali_dir: Pathlike, exp_dir: Pathlike, nj: int, cfg,
    feats: UttFeatures, stage: int, hooks: Optional[SystemHooks] = None,
) -> dict:
    """A triphone system on ``feats`` (Kaldi's train_deltas.sh / train_lda_mllt.sh /
    train_sat.sh share this): tree statistics from the alignments of ``ali_dir`` in the
    features' space, the tree, one Gaussian per leaf, alignments converted to the new tree,
    EM with realignment and mix-up to ``cfg.tot_gauss``, a final alignment. ``cfg`` has
    ``num_leaves``, ``tot_gauss``, ``min_count``, ``em`` and ``feats``."""
    import pickle

    from kdhybrid.gmm import tree as T

    hooks = hooks or SystemHooks()
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    lang = Lang(lang_dir)
    old = GmmHmm.load(ali_dir)
    alis = read_alignments(ali_dir)
    jobs = Jobs(data_dir, lang_dir, nj, feats)
    timings = {}
    recorded: dict = {}
    try:
        jobs.alis = {u: alis[u] for u in jobs.feats.utts if u in alis}
        missing = len(jobs.feats.utts) - len(jobs.alis)
        old_tm = pickle.dumps(old.tm)
        if hooks.before_tree is not None:
            recorded.update(hooks.before_tree(jobs, old))
        # acc-tree-stats over every aligned utterance, in the data dir's order.
        info = T.TidInfo.of(old.tm)
        rows = [(jobs.alis[u], jobs.feats.get(i)) for i, u in enumerate(jobs.feats.utts) if u in jobs.alis]
        stats = T.accumulate_tree_stats([T.frame_contexts(a, info) for a, _ in rows], [f for _, f in rows])
        roots = [[int(x) for x in l.split()[2:]] for l in (Path(lang_dir) / "phones/roots.int").read_text().splitlines()]
        extra_q = [[int(x) for x in l.split()] for l in (Path(lang_dir) / "phones/extra_questions.int").read_text().splitlines() if l.strip()]
        t0 = time.time()
        questions = T.cluster_phone_questions(stats, lang.sets, extra_q)
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
        jobs.convert(old_tm, model)
        jobs.call("set_model", model, True)
        st, _ = em_iteration(model, jobs, MleConfig())
        mix_up(model, st, num_leaves, cfg.em, (stage, 0))
        history = [{"iter": 0, "like_per_frame": st.loglike / max(st.frames, 1), "frames": st.frames, "num_gauss": model.num_gauss}]
        log.info(json.dumps(history[0]))
        em = cfg.em
        em.tot_gauss = cfg.tot_gauss
        it_hook = hooks.iteration
        history += run_em(model, jobs, em, stage=stage, progress=log.info,
                          hook=(lambda it, m: it_hook(it, m, jobs)) if it_hook is not None else None)
        jobs.call("set_model", model, False)
        final_failed = jobs.align(em.align, em.boost_silence)["failed"]
        if hooks.finish is not None:
            recorded.update(hooks.finish(model, jobs, exp_dir))
        model.save(exp_dir)
        counts = write_alignments(jobs, exp_dir)
    finally:
        jobs.close()
    summary = _summary(model, history, counts, final_failed)
    summary.update(tree=tree_info, questions=len(questions), utterances_without_input_alignment=missing, **recorded)
    seconds = time.time() - t_start
    _write_exp_files(exp_dir, lang_dir, cfg, summary, seconds, **timings)
    summary.update(seconds=round(seconds, 1), **timings)
    return summary
