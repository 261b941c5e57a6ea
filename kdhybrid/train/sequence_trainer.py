"""Sequence-discriminative fine-tuning of a hybrid model (a member or a student).

Starts from a ``final.pt`` (cross-entropy trained) and, every step, rescores the stored
denominator lattices of the batch's utterances with the network being trained
(:mod:`kdhybrid.train.sequence`: sMBR, MMI or boosted MMI, with the cross-entropy
regularisation), as Kaldi's ``nnet3-discriminative-train`` does on its egs:

* batches of whole utterances (lhotse cuts with features, CMVN and labels, ``max_duration``
  seconds a batch, in an order that depends only on the seed and the epoch); no SpecAugment
  (the lattices were made on clean features);
* the numerator is the alignment dir's transition-ids (the source model's alignment); the
  transition model comes from its ``final.mdl``, the silence phones from the lattice dir;
* lattices made by another model or tree are refused (pdf and transition-id counts named);
  an utterance without a lattice, with an empty one or one without the reference path is
  skipped, counted and named in the log (once);
* AdamW at a small constant learning rate on the objective per frame (default 5e-5, chosen on
  dev; Kaldi uses around 1e-5 with natural-gradient SGD on summed gradients);
* per epoch: objective and cross-entropy per frame, frames dropped, skipped utterances, and
  the dev WER when a graph and dev data are given, in the log, ``history.json`` and a plot
  (``sequence_curve.png``); a checkpoint (``epoch-N.pt``), and ``resume`` continues from the
  last one bit for bit;
* a non-finite objective stops the run with an error naming the epoch and batch; the last
  good checkpoint stays;
* at the end the priors are re-estimated as the network's mean posterior over the training
  frames (Kaldi's adjust-priors) and ``final.pt`` (the last epoch) is written, loadable by
  :func:`kdhybrid.train.trainer.load_final` and decodable like any model.
"""
from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple, Union

import numpy as np
import torch

from kdhybrid.train.sequence import DenominatorBatch, PhoneSets, SequenceConfig, prepare_batch, sequence_objective

Pathlike = Union[str, Path]
log = logging.getLogger("kdhybrid.train")


@dataclass
class SequenceTrainConfig:
    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    epochs: int = 4
    max_duration: float = 60.0  # seconds of audio a batch
    lr: float = 5e-5  # chosen on dev (steps/train_sequence.sh gives the figures)
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    seed: int = 1
    threads: int = 0  # torch threads (0: all cores)
    prior_frames: int = 500000  # training frames for the re-estimated priors
    decode_beam: float = 13.0  # dev WER each epoch (with a graph dir)
    decode_lattice_beam: float = 6.0
    decode_max_active: int = 7000

    @classmethod
    def from_dict(cls, d: dict) -> "SequenceTrainConfig":
        d = dict(d)
        return cls(sequence=SequenceConfig(**d.pop("sequence", {})), **d)

    def to_dict(self) -> dict:
        return asdict(self)


class DivergedError(RuntimeError):
    pass


def mean_posterior_log_priors(model, cuts, num_pdfs: int, max_frames: int, max_duration: float, floor: float = 1e-20) -> torch.Tensor:
    """(num_pdfs,) float32 log of the network's average posterior over (up to ``max_frames``
    of) the training frames, in eval mode: Kaldi's prior adjustment after discriminative
    training, which changes the posteriors the label counts were matched to."""
    from kdhybrid.train.data import CutDataset, global_batches

    ds = CutDataset(cuts, num_pdfs)
    tot = torch.zeros(num_pdfs, dtype=torch.float64)
    frames = 0
    was = model.training
    model.eval()
    with torch.no_grad():
        for b in global_batches(cuts, max_duration, False, 0, 0):
            batch = ds[b]
            post = model.log_posteriors(batch["feats"], batch["lengths"]).exp().to(torch.float64)
            mask = torch.arange(post.shape[1])[None, :] < batch["lengths"][:, None]
            tot += (post * mask.unsqueeze(2)).sum((0, 1))
            frames += int(batch["lengths"].sum())
            if frames >= max_frames:
                break
    model.train(was)
    p = (tot / max(frames, 1)).clamp(min=floor)
    return (p / p.sum()).log().to(torch.float32)


def dev_wer(model, log_priors: torch.Tensor, graph_dir: Pathlike, data_dir: Pathlike, acwt: float, beam: float,
            lattice_beam: float, max_active: int) -> float:
    """WER (%) of the best paths at the decoding's own weighting (LM weight 1/acwt, no
    penalty), for monitoring each epoch."""
    from kdhybrid.decode.acoustic import NnetScorer, check_input_features, iter_feature_batches
    from kdhybrid.decode.graph import read_words_table
    from kdhybrid.decode.k2_backend import decode, load_k2_graph
    from kdhybrid.decode.scoring import wer_counts
    from kdhybrid.io.tables import read_text_table

    scorer = NnetScorer.from_model(model, log_priors)
    check_input_features(scorer, data_dir)
    graph = load_k2_graph(Path(graph_dir) / "HCLG.k2.pt")
    words = read_words_table(graph_dir)
    hyps = {}
    was = model.training
    model.eval()
    for utts, feats, cmvn in iter_feature_batches(data_dir):
        scores = [acwt * ll for ll in scorer.loglikes(feats, cmvn)]
        for u, (wids, _, _) in zip(utts, decode(graph, scores, beam, lattice_beam, 30, max_active)):
            hyps[u] = " ".join(words.get(w, "<unk>") for w in wids)
    model.train(was)
    return float(wer_counts(dict(read_text_table(Path(data_dir) / "text", min_fields=1)), hyps)["wer"])


def load_inputs(train_cuts: Pathlike, ali_dir: Pathlike, den_dir: Pathlike, src_model: Pathlike):
    """What sequence training reads, checked against each other.

    :return: (:class:`kdhybrid.decode.denlats.DenLatticeStore`, :class:`PhoneSets` (the ali dir's
        transition model, the lattices' silence phones), alignments (utt -> transition-ids),
        the cuts (eager CutSet), the model of ``src_model`` (a final.pt) and its log priors).
    :raises ValueError: lattices of another model or tree (counts named)."""
    from lhotse import CutSet

    from kdhybrid.decode.denlats import DenLatticeStore, check_lattice_model
    from kdhybrid.gmm.train import read_alignments
    from kdhybrid.train.trainer import load_final

    store = DenLatticeStore(den_dir)
    phones = PhoneSets.load(Path(ali_dir) / "final.mdl", [int(p) for p in store.info["silence_phones"]])
    model, priors, ck = load_final(src_model)
    num_pdfs = int(ck["num_pdfs"])
    check_lattice_model(store.info, num_pdfs, phones.num_tids, what=f"{src_model}")
    if phones.num_pdfs > num_pdfs:
        raise ValueError(f"{ali_dir}/final.mdl has {phones.num_pdfs} pdfs but {src_model} has {num_pdfs} outputs")
    return store, phones, read_alignments(ali_dir), CutSet.from_file(train_cuts).to_eager(), model, priors


def load_batch(ids: List[str], store, alis: Dict[str, np.ndarray], phones: PhoneSets, dataset, scfg: SequenceConfig,
               ali_dir: Pathlike = "the alignments") -> Tuple[Optional[DenominatorBatch], Optional[dict], List[Tuple[str, str]]]:
    """The denominator lattices (:func:`kdhybrid.train.sequence.prepare_batch`) and the network
    inputs (:class:`kdhybrid.train.data.CutDataset`) of a batch of utterances, checked against
    each other: frame counts, and the cuts' labels against the numerator's pdfs.

    :return: (lattices or None when no utterance is usable, the cuts' batch, skipped (utt, why))."""
    have = [u for u in ids if u in store]
    skipped = [(u, "no lattice") for u in ids if u not in store]
    den, more = prepare_batch(store.lattices(have), have, alis, phones, scfg.one_silence_class,
                              scfg.skip_without_reference) if have else (None, [])
    skipped += more
    if den is None:
        return None, None, skipped
    batch = dataset[den.utts]
    if not torch.equal(batch["lengths"], den.lengths):
        bad = int((batch["lengths"] != den.lengths).nonzero()[0, 0])
        raise ValueError(f"utterance '{den.utts[bad]}': {int(batch['lengths'][bad])} feature frames but its lattice has {int(den.lengths[bad])}")
    labels = batch["labels"][:, : den.ref_pdf.shape[1]].masked_fill(den.ref_pdf < 0, -1)
    if not torch.equal(labels, den.ref_pdf):
        bad = int((labels != den.ref_pdf).any(1).nonzero()[0, 0])
        raise ValueError(f"utterance '{den.utts[bad]}': the cuts' labels are not the pdfs of {ali_dir} (cuts of another alignment?)")
    return den, batch, skipped


def sequence_step(model, opt, den: DenominatorBatch, batch: dict, log_priors: torch.Tensor, cfg: SequenceTrainConfig) -> Dict[str, torch.Tensor]:
    """One update on a batch (loss per frame, clipped gradients); with a non-finite loss
    nothing is updated. Returns :func:`kdhybrid.train.sequence.sequence_objective`'s record."""
    log_posts = model.log_posteriors(batch["feats"], batch["lengths"])
    r = sequence_objective(den, log_posts, log_priors, cfg.sequence)
    if not torch.isfinite(r["loss"]):
        return r
    opt.zero_grad()
    (r["loss"] / den.num_frames).backward()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    return r


def train_sequence(
    cfg: SequenceTrainConfig, train_cuts: Pathlike, ali_dir: Pathlike, den_dir: Pathlike, src_model: Pathlike, exp_dir: Pathlike,
    dev_data: Optional[Pathlike] = None, graph_dir: Optional[Pathlike] = None, resume: bool = False, stop_after: Optional[int] = None,
    progress_seconds: float = 60.0,
) -> dict:
    """Fine-tune ``src_model`` (a final.pt) into ``exp_dir``; returns the history.

    :param train_cuts: cuts of the training data (``kdhybrid.bin.make_cuts`` with the ali dir).
    :param ali_dir: the numerator alignments (``ali.*.gz`` transition-ids) and ``final.mdl``.
    :param den_dir: the denominator lattices (``steps/make_denlats.sh``) of the same model.
    :param stop_after: end this run after that epoch (as if killed there), to be resumed.
    :param progress_seconds: a progress line in the log this often (batches done, objective, time left).
    :raises ValueError: lattices of another model or tree (counts named).
    :raises DivergedError: a non-finite objective (epoch and batch named)."""
    from kdhybrid.train.data import CutDataset, global_batches
    from kdhybrid.train.trainer import atomic_save, latest_checkpoint, rng_state, save_final, set_rng_state

    exp = Path(exp_dir)
    (exp / "log").mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    scfg = cfg.sequence
    store, phones, alis, cuts, model, src_priors = load_inputs(train_cuts, ali_dir, den_dir, src_model)
    num_pdfs = int(model.cfg.num_pdfs)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: List[dict] = []
    start = 1
    if resume:
        last = latest_checkpoint(exp)
        if last:
            ck = torch.load(last, map_location="cpu")
            model.load_state_dict(ck["state_dict"])
            opt.load_state_dict(ck["optimizer"])
            history = ck["history"]
            set_rng_state(ck["rng"])
            start = ck["epoch"] + 1
            log.info("resuming after epoch %d from %s", ck["epoch"], last)
    (exp / "config.json").write_text(json.dumps(dict(cfg.to_dict(), src_model=str(src_model), ali_dir=str(ali_dir),
                                                     den_dir=str(den_dir)), indent=1) + "\n")
    log.info("%s from %s: %d lattices (%s), %d alignments, %d cuts", scfg.criterion, src_model, len(store), den_dir, len(alis), len(cuts))
    dataset = CutDataset(cuts, num_pdfs)
    named: Set[str] = set()
    model.train()
    for epoch in range(start, cfg.epochs + 1):
        if stop_after is not None and epoch > stop_after:
            return {"history": history, "stopped": True}
        t0 = time.time()
        tot = {"objective": 0.0, "xent": 0.0, "frames": 0, "dropped_frames": 0, "skipped_utts": 0, "batches": 0}
        batches = list(global_batches(cuts, cfg.max_duration, True, cfg.seed, epoch))
        shown = time.time()
        for b, ids in enumerate(batches, 1):
            if b > 1 and time.time() - shown >= progress_seconds:  # progress in the log: an epoch takes minutes
                shown = time.time()
                left = (shown - t0) / (b - 1) * (len(batches) - b + 1)
                log.info("epoch %d: batch %d of %d, %d frames, objective %.4f a frame, %d utterances skipped, ~%.0f s left in the epoch",
                         epoch, b - 1, len(batches), tot["frames"], tot["objective"] / max(tot["frames"], 1), tot["skipped_utts"], left)
            den, batch, skipped = load_batch(ids, store, alis, phones, dataset, scfg, ali_dir)
            tot["skipped_utts"] += len(skipped)
            for u, why in skipped:
                if u not in named:
                    named.add(u)
                    log.warning("skipping %s: %s", u, why)
            if den is None:
                continue
            r = sequence_step(model, opt, den, batch, src_priors, cfg)
            if not torch.isfinite(r["loss"]):
                raise DivergedError(f"epoch {epoch}, batch {b}: the {scfg.criterion} objective is {float(r['objective'])} "
                                    f"(loss {float(r['loss'])}); the last good checkpoint is {latest_checkpoint(exp) or src_model}")
            for k in ("objective", "xent"):
                tot[k] += float(r[k])
            tot["frames"] += den.num_frames
            tot["dropped_frames"] += int(r["dropped_frames"])
            tot["batches"] += 1
        if not tot["frames"]:
            raise ValueError(f"epoch {epoch}: no utterance could be used ({tot['skipped_utts']} skipped; see the log)")
        rec = {"epoch": epoch, "objective_per_frame": tot["objective"] / tot["frames"], "xent_per_frame": tot["xent"] / tot["frames"],
               "frames": tot["frames"], "dropped_frames": tot["dropped_frames"], "skipped_utts": tot["skipped_utts"],
               "batches": tot["batches"]}
        if graph_dir and dev_data:
            rec["dev_wer"] = dev_wer(model, src_priors, graph_dir, dev_data, scfg.acwt, cfg.decode_beam, cfg.decode_lattice_beam,
                                     cfg.decode_max_active)
        rec["seconds"] = round(time.time() - t0, 1)
        history.append(rec)
        atomic_save({"state_dict": model.state_dict(), "optimizer": opt.state_dict(), "history": history, "rng": rng_state(),
                     "epoch": epoch, "config": cfg.to_dict()}, exp / f"epoch-{epoch}.pt")
        log.info(json.dumps(rec))
    log_priors = mean_posterior_log_priors(model, cuts, num_pdfs, cfg.prior_frames, cfg.max_duration)
    save_final(exp / "final.pt", model, log_priors, {"epoch": cfg.epochs, "history": history, "train_config": cfg.to_dict(),
                                                     "init_from": str(src_model), "criterion": scfg.criterion,
                                                     "src_log_priors": src_priors, "num_params": model.num_params(),
                                                     "train_seconds": round(sum(h["seconds"] for h in history), 1)})
    (exp / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    plot_sequence_curve(history, exp / "sequence_curve.png", f"{scfg.criterion} from {src_model}")
    return {"history": history}


def plot_sequence_curve(history: List[dict], path: Path, title: str = "") -> None:
    """Objective per frame (and dev WER, when measured) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    ep = [h["epoch"] for h in history]
    wer = [h.get("dev_wer") for h in history]
    fig, ax = plt.subplots(1, 2 if any(w is not None for w in wer) else 1, figsize=(9, 3.5), squeeze=False)
    ax[0, 0].plot(ep, [h["objective_per_frame"] for h in history], "o-")
    ax[0, 0].set_xlabel("epoch")
    ax[0, 0].set_ylabel("objective per frame (train)")
    if ax.shape[1] > 1:
        ax[0, 1].plot(ep, wer, "s-")
        ax[0, 1].set_xlabel("epoch")
        ax[0, 1].set_ylabel("dev WER (%)")
    for a in ax[0]:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
