"""Training graphs and Viterbi alignment with kaldi-hmm-gmm (Kaldi's compile-train-graphs,
align-equal-compiled and gmm-align-compiled).

Alignment scales follow Kaldi's recipes: acoustic scale 0.1, transition scale 1.0, self-loop
scale 0.1, beam 10 and retry beam 40. An utterance that does not align even with the retry
beam is reported (by id) and counted, never silently dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from kdhybrid.gmm.model import GmmHmm, boost_silence
from kdhybrid.kaldi_libs import kaldi_hmm_gmm as khg
from kdhybrid.kaldi_libs import kaldifst

Pathlike = Union[str, Path]


@dataclass
class AlignOptions:
    beam: float = 10.0
    retry_beam: float = 40.0
    acoustic_scale: float = 0.1
    transition_scale: float = 1.0
    self_loop_scale: float = 0.1
    careful: bool = False


class Lang:
    """What alignment needs from a lang dir: L.fst, words, disambiguation symbols, silence."""

    def __init__(self, lang_dir: Pathlike):
        lang = Path(lang_dir)
        self.dir = lang
        self.L = kaldifst.StdVectorFst.read(str(lang / "L.fst"))
        kaldifst.arcsort(self.L, sort_type="olabel")
        self.words = {l.split()[0]: int(l.split()[1]) for l in (lang / "words.txt").read_text(encoding="utf-8").splitlines()}
        self.phones = {l.split()[0]: int(l.split()[1]) for l in (lang / "phones.txt").read_text(encoding="utf-8").splitlines()}
        self.disambig = [int(x) for x in (lang / "phones/disambig.int").read_text().split()]
        self.oov = int((lang / "oov.int").read_text().split()[0])
        self.silence = [int(x) for x in (lang / "phones/silence.csl").read_text().strip().split(":")]
        self.sets = [[int(x) for x in l.split()] for l in (lang / "phones/sets.int").read_text().splitlines()]
        self.topo_text = (lang / "topo").read_text()

    def topo(self) -> "khg.HmmTopology":
        t = khg.HmmTopology()
        t.read(self.topo_text)
        return t

    def word_ids(self, words: Sequence[str]) -> List[int]:
        return [self.words.get(w, self.oov) for w in words]


def silence_boosted_am(model: GmmHmm, lang: Lang, boost: float) -> "khg.AmDiagGmm":
    """The model's GMMs with the silence phones' pdfs boosted (gmm-boost-silence), for alignment."""
    sil_pdfs = sorted({int(p) for p in khg.get_pdfs_for_phones(model.tm, sorted(lang.silence))[1]})
    return boost_silence(model.am, sil_pdfs, boost)


def graph_compiler(model: GmmHmm, lang: Lang) -> "khg.TrainingGraphCompiler":
    """Kaldi's compile-train-graphs: graphs without transition probabilities (scales 0);
    :func:`align_utterance` adds them with the alignment's own scales, as gmm-align-compiled."""
    opts = khg.TrainingGraphCompilerOptions()
    opts.transition_scale = 0.0
    opts.self_loop_scale = 0.0
    return khg.TrainingGraphCompiler(
        trans_model=model.tm, ctx_dep=model.tree, lex_fst=lang.L, disambig_syms=lang.disambig, opts=opts
    )


def equal_align(graph, num_frames: int, seed: int = 3) -> Optional[List[int]]:
    """Kaldi's align-equal-compiled: a random path through the graph with ``num_frames``
    frames, states' durations as equal as possible. None if the graph cannot emit that many."""
    ok, fst = kaldifst.equal_align(ifst=graph, length=num_frames, rand_seed=seed, num_retries=10)
    if not ok:
        return None
    ok, seq, _, _ = kaldifst.get_linear_symbol_sequence(fst)
    return list(seq) if ok and len(seq) == num_frames else None


def align_utterance(
    model: GmmHmm, am: "khg.AmDiagGmm", graph, feats: np.ndarray, utt: str, opts: AlignOptions
) -> Tuple[Optional[np.ndarray], float, bool]:
    """Viterbi alignment of one utterance.

    :param am: the GMMs to score with (``model.am``, or a silence-boosted copy).
    :param feats: (T, D) float32.
    :return: (transition-ids (T,) int32 or None on failure, log-likelihood, retried).
    """
    dec = khg.DecodableAmDiagGmmScaled(am=am, tm=model.tm, feats=feats, scale=opts.acoustic_scale)
    return align_decodable(model.tm, graph, dec, feats.shape[0], utt, opts)


def align_decodable(
    tm: "khg.TransitionModel", graph, decodable, num_frames: int, utt: str, opts: AlignOptions
) -> Tuple[Optional[np.ndarray], float, bool]:
    """Viterbi alignment of one utterance's training graph against any Kaldi decodable whose
    scores are already scaled by ``opts.acoustic_scale`` (gmm-align-compiled, nnet3-align-compiled).

    :return: (transition-ids (num_frames,) int32 or None on failure, log-likelihood, retried)."""
    fst = graph.copy()
    khg.add_transition_probs(
        trans_model=tm, transition_scale=opts.transition_scale, self_loop_scale=opts.self_loop_scale, fst=fst
    )
    cfg = khg.AlignConfig()
    cfg.beam = opts.beam
    cfg.retry_beam = opts.retry_beam
    cfg.careful = opts.careful
    done, err, retried, like, nframes, ali, _ = khg.align_utterance_wrapper(
        config=cfg, utt=utt, acoustic_scale=opts.acoustic_scale, fst=fst, decodable=decodable,
        num_done=0, num_error=0, num_retried=0, tot_like=0.0, frame_count=0,
    )  # fmt: skip
    if done != 1 or len(ali) != num_frames:
        return None, 0.0, bool(retried)
    return np.asarray(ali, dtype=np.int32), float(like), bool(retried)


AlignResult = Tuple[str, Optional[np.ndarray], float, bool, str]  # utt, ali or None, log-like, retried, why it failed


def write_alignment_archive(path: Pathlike, results: Iterable[AlignResult], prog: str) -> str:
    """Write alignments as Kaldi's ``ali.JOB.gz`` (one job of an align step); each failed
    utterance is named on stderr with the reason, never silently dropped.

    :param results: (utt, transition-ids (T,) int32 or None, log-likelihood, retried, why it
        failed) per utterance, in the data dir's order.
    :return: the job's summary line (``<prog>: done N, failed N, retried N, ...``).
    """
    import sys
    import time

    from kdhybrid.io.tables import Int32VectorWriter

    t0 = time.time()
    done = failed = retried = frames = 0
    like = 0.0
    with Int32VectorWriter(path) as w:
        for utt, ali, ll, r, why in results:
            retried += int(r)
            if ali is None:
                print(f"{prog}: {utt}: {why}, skipped", file=sys.stderr)
                failed += 1
                continue
            w.write(utt, ali)
            done += 1
            frames += len(ali)
            like += ll
    return (f"{prog}: done {done}, failed {failed}, retried {retried}, log-like/frame {like / max(frames, 1):.3f}, "
            f"{frames} frames in {time.time() - t0:.1f} s")
