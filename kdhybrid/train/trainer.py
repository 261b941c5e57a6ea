"""Frame cross-entropy training of hybrid acoustic models on lhotse cuts.

* one process or data-parallel (DistributedDataParallel over gloo, as the model trains on
  CPU; ranks started by ``kdhybrid.bin.launch`` here or through srun on a Slurm cluster, see
  :mod:`kdhybrid.parallel.ranks`); every global batch is split across ranks and the loss is
  normalised by the global frame count, so N processes follow the single-process
  trajectory on the same batches;
* batches of whole utterances (``max_duration`` seconds) or, with ``chunk_frames``, of
  chunks of all the training utterances shuffled together (Kaldi's egs; far more updates of
  far more varied batches an epoch);
* AdamW, linear warm-up, then cosine decay over ``epochs`` or, with ``lr_schedule: newbob``,
  the rate held until dev cross-entropy improves by less than ``newbob_start`` (relative) and
  halved every epoch from then on, until it improves by less than ``newbob_stop``;
  optional SpecAugment;
* dev frame cross-entropy and accuracy every epoch, early stopping on dev cross-entropy;
  a loss that is not finite, or a dev cross-entropy that is not finite or more than
  ``diverge_ratio`` times the best, stops the run with :class:`TrainingDiverged` naming the
  epoch (and batch); the checkpoints of the good epochs stay;
* a checkpoint per epoch (model, optimiser, schedule, random states, history), and
  ``resume`` continues from the last one bit for bit (data order depends only on the seed
  and the epoch);
* ``final.pt`` (the best epoch by dev cross-entropy): config, weights, pdf count and the
  log-priors of the pdfs from the training labels, everything decoding needs;
* a log per run and a learning-curve plot (``learning_curve.png``);
* students: with ``distill`` (:class:`kdhybrid.distill.objectives.DistillConfig`) the loss adds
  the teacher's soft labels (a post.scp of the dump) to the hard labels, on the main output
  or on a separate ``distill`` head;
* LM-to-AM distillation: with ``lm_heads`` (:class:`kdhybrid.distill.objectives.LmHeadsConfig`)
  one output head per unit LM (``lm_senone``, ``lm_monophone``, ``lm_subword``) learns that
  unit's frame-wise LM posteriors beside the main head; the heads are added after the model is
  built without drawing from the random stream, so with every head weight 0 training follows
  the baseline bit for bit. Decoding and priors use the main head only.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from kdhybrid.distill.objectives import DistillConfig, LmHeadsConfig, lm_head_name, lm_heads_loss, student_loss, subsample_targets
from kdhybrid.nnet.models import AcousticModel, ModelConfig, build_model
from kdhybrid.parallel.ranks import backend_for, rendezvous_from_env
from kdhybrid.train.data import ChunkDataset, CutDataset, RankShardedBatches, SpecAugment, chunk_batches, global_batches

Pathlike = Union[str, Path]
log = logging.getLogger("kdhybrid.train")


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 8
    max_duration: float = 120.0  # seconds of audio a global batch
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 100
    final_lr_ratio: float = 0.05
    grad_clip: float = 5.0
    spec_augment: bool = True
    patience: int = 3  # early stopping: epochs without dev improvement
    chunk_frames: int = 0  # 0: batches of whole utterances (max_duration); N: batches of N-frame chunks
    batch_frames: int = 2048  # labelled frames a global batch of chunks
    chunk_context: int = -1  # context frames each side of a chunk; -1: the model's own (TDNN receptive field)
    lr_schedule: str = "cosine"  # cosine (over epochs) or newbob (epochs is then the most there may be)
    newbob_start: float = 0.01  # newbob: start halving when dev CE improves by less than this (relative)
    newbob_stop: float = 0.002  # ... stop once halving when it improves by less than this
    diverge_ratio: float = 2.0  # dev CE above this times the best: diverged
    seed: int = 1
    num_workers: int = 1  # DataLoader worker processes a rank
    skip_bad: bool = False
    threads: int = 0  # torch threads a rank (0: cores / ranks)
    distill: DistillConfig = field(default_factory=DistillConfig)
    lm_heads: LmHeadsConfig = field(default_factory=LmHeadsConfig)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        m = ModelConfig(**d.pop("model", {}))
        return cls(model=m, distill=DistillConfig(**d.pop("distill", {})), lm_heads=LmHeadsConfig(**d.pop("lm_heads", {})), **d)

    def to_dict(self) -> dict:
        return asdict(self)


class TrainingDiverged(RuntimeError):
    """The loss or dev cross-entropy went non-finite or ran away; the message names where."""


@dataclass
class Newbob:
    """The newbob learning-rate rule (Kaldi nnet1, pytorch-kaldi): hold the rate while dev
    cross-entropy improves by at least ``start`` (relative), then halve it every epoch; stop
    once, while halving, an epoch improves it by less than ``stop``."""

    start: float
    stop: float
    scale: float = 1.0
    halving: bool = False

    def update(self, prev_best: float, dev_ce: float) -> bool:
        """After an epoch: adjusts ``scale``; True when training should stop."""
        gain = (prev_best - dev_ce) / abs(prev_best) if math.isfinite(prev_best) else float("inf")
        if self.halving and gain < self.stop:
            return True
        if gain < self.start:
            self.halving = True
        if self.halving:
            self.scale *= 0.5
        return False


def chunk_context(model: AcousticModel, cfg: "TrainConfig") -> Tuple[int, int]:
    """(left, right) context frames around a chunk: the model's receptive field, or
    ``chunk_context`` when set (recurrent models, whose field is the whole utterance)."""
    if cfg.chunk_context >= 0:
        return cfg.chunk_context, cfg.chunk_context
    return model.left_context, model.right_context


# ---------------------------------------------------------------- distributed


def dist_info() -> Tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def init_distributed(device: str = "cpu") -> Tuple[int, int]:
    """Join the data-parallel run this process belongs to, if any; returns (world size,
    rank). The rank, world size and rendezvous come from torchrun's variables or, in a task
    of an srun step, from Slurm's (:func:`kdhybrid.parallel.ranks.rendezvous_from_env`); the
    backend from ``device``, the device the model's tensors live on (gloo for CPU, nccl for
    CUDA: the trainer trains on CPU)."""
    rv = rendezvous_from_env()
    if rv is not None and not torch.distributed.is_initialized():
        if device == "cuda":
            torch.cuda.set_device(rv.local_rank)
        torch.distributed.init_process_group(backend_for(device), init_method=rv.init_method,
                                             rank=rv.rank, world_size=rv.world_size)
    return dist_info()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist_info()[0] > 1:
        torch.distributed.all_reduce(t)
    return t


# ---------------------------------------------------------------- priors, checkpoints


def label_log_priors(cuts, num_pdfs: int, floor: float = 1e-8) -> torch.Tensor:
    """(num_pdfs,) float32 log relative frequencies of the pdfs in the training labels
    (+1 smoothing), what hybrid decoding subtracts from log posteriors."""
    from kdhybrid.data.cuts import LABEL_FIELD

    counts = np.ones(num_pdfs, dtype=np.float64)
    for c in cuts:
        y = c.load_custom(LABEL_FIELD)
        counts += np.bincount(y, minlength=num_pdfs)[:num_pdfs]
    p = np.maximum(counts / counts.sum(), floor)
    return torch.tensor(np.log(p), dtype=torch.float32)


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def latest_checkpoint(exp_dir: Pathlike) -> Optional[Path]:
    """The ``epoch-N.pt`` of ``exp_dir`` with the largest N (None when there is none)."""
    return max(Path(exp_dir).glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1]), default=None)


def save_final(path: Path, model: AcousticModel, log_priors: torch.Tensor, extra: dict) -> None:
    atomic_save({"model_config": model.cfg.to_dict(), "state_dict": model.state_dict(), "num_pdfs": model.cfg.num_pdfs,
                 "log_priors": log_priors, **extra}, path)


def load_final(path: Pathlike, map_location: str = "cpu") -> Tuple[AcousticModel, torch.Tensor, dict]:
    """(model in eval mode, log-priors (num_pdfs,), the whole checkpoint) from ``final.pt``."""
    ck = torch.load(path, map_location=map_location)
    model = build_model(ModelConfig(**ck["model_config"]))
    model.load_state_dict(ck["state_dict"])
    model.eval()
    return model, ck["log_priors"], ck


# ---------------------------------------------------------------- the loop


def add_lm_heads(model: AcousticModel, lmh: LmHeadsConfig) -> None:
    """Add an ``lm_<unit>`` head for every unit of ``lmh`` the model lacks (a model from a
    checkpoint may have them), initialised without advancing the global random stream."""
    for u in lmh.units:
        name = lm_head_name(u)
        if name in model.heads:
            if model.heads[name].out_features != lmh.dims[u]:
                raise ValueError(f"head '{name}' has {model.heads[name].out_features} outputs but the {u} LM dump has {lmh.dims[u]} units")
            continue
        with torch.random.fork_rng(devices=[]):
            model.add_head(name, lmh.dims[u])


def frame_ce(logits: torch.Tensor, labels: torch.Tensor, subsampling: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sum of frame cross-entropy, number of frames, number correct.

    :param logits: (N, T', P). :param labels: (N, T) int64, -100 on padding; with
        subsampling every ``subsampling``-th label is used.
    """
    if subsampling > 1:
        labels = labels[:, ::subsampling]
    t = min(logits.shape[1], labels.shape[1])
    logits, labels = logits[:, :t], labels[:, :t]
    mask = labels >= 0
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum")
    correct = ((logits.argmax(-1) == labels) & mask).sum()
    return ce, mask.sum(), correct


def evaluate(model: AcousticModel, cuts, cfg: TrainConfig, num_pdfs: int) -> Dict[str, float]:
    """Dev frame cross-entropy and accuracy (each rank a share of the batches, summed)."""
    world, rank = dist_info()
    ds = CutDataset(cuts, num_pdfs, None, cfg.skip_bad, cfg.seed)
    batches = global_batches(cuts, cfg.max_duration, False, cfg.seed, 0)
    mine = batches[rank::world]
    tot = torch.zeros(3, dtype=torch.float64)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for b in mine:
            batch = ds[b]
            out, _ = model(batch["feats"], batch["lengths"])
            ce, n, c = frame_ce(out["main"], batch["labels"], model.cfg.subsampling)
            tot += torch.tensor([ce.item(), n.item(), c.item()], dtype=torch.float64)
    model.train(was_training)
    all_reduce_sum(tot)
    return {"ce": tot[0].item() / max(tot[1].item(), 1), "acc": tot[2].item() / max(tot[1].item(), 1), "frames": int(tot[1].item())}


def lr_lambda(cfg: TrainConfig, total_steps: int, newbob: Optional[Newbob] = None):
    """The learning-rate factor of a step: linear warm-up, then cosine decay to
    ``final_lr_ratio`` over ``total_steps``, or (with ``newbob``) its current scale."""
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps * (newbob.scale if newbob else 1.0)
        if newbob is not None:
            return newbob.scale
        prog = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        return cfg.final_lr_ratio + (1 - cfg.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * prog))
    return f


def train(
    cfg: TrainConfig, train_cuts: Pathlike, dev_cuts: Pathlike, exp_dir: Pathlike, resume: bool = False,
    init_from: Optional[Pathlike] = None, stop_after: Optional[int] = None,
) -> dict:
    """Train into ``exp_dir``; returns the history. Run as several ranks (``kdhybrid.bin.launch``) for data-parallel.

    :param stop_after: end this run after that epoch (as if interrupted there; the schedule
        still spans ``cfg.epochs``), to be continued with ``resume``.
    """
    from lhotse import CutSet

    world, rank = init_distributed()
    if world > 1 and rank == 0:
        rv = rendezvous_from_env()
        log.info("data-parallel: %d ranks, rendezvous %s (from the %s variables)", world, rv.init_method,
                 "Slurm" if rv.source == "slurm" else "launcher's")
    exp = Path(exp_dir)
    if rank == 0:
        (exp / "log").mkdir(parents=True, exist_ok=True)
    # The CPUs this process may use (a Slurm task bound to some of a node's cores sees those).
    torch.set_num_threads(cfg.threads or max(1, len(os.sched_getaffinity(0)) // world))
    tr = CutSet.from_file(train_cuts).to_eager()
    dv = CutSet.from_file(dev_cuts).to_eager()
    num_pdfs = cfg.model.num_pdfs
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    kd = cfg.distill
    if kd.objective != "none":
        if kd.head == "distill" and "distill" not in cfg.model.heads:
            cfg.model.heads["distill"] = num_pdfs
    lmh = cfg.lm_heads
    if lmh.active:
        lmh = cfg.lm_heads = lmh.with_dumps()
    model = build_model(cfg.model)
    add_lm_heads(model, lmh)
    if init_from:
        init_model, _, _ = load_final(init_from)
        missing = model.load_state_dict(init_model.state_dict(), strict=False)
        log.info("initialised from %s (%s)", init_from, missing)
    # a head of weight 0 gets no gradient: DDP must be told that some parameters go unused
    unused = lmh.active and any(w == 0 for w in lmh.weights.values())
    ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=unused) if world > 1 else model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.lr_schedule not in ("cosine", "newbob"):
        raise ValueError(f"lr_schedule must be cosine or newbob, got '{cfg.lr_schedule}'")
    newbob = Newbob(cfg.newbob_start, cfg.newbob_stop) if cfg.lr_schedule == "newbob" else None
    cut_set = CutDataset(tr, num_pdfs, SpecAugment() if cfg.spec_augment else None, cfg.skip_bad, cfg.seed,
                         posts_scp=kd.posts if kd.objective != "none" else None,
                         lm_posts={u: (lmh.posts[u], lmh.dims[u], lmh.topk[u]) for u in lmh.units})
    if cfg.chunk_frames > 0:
        t_load = time.time()
        dataset = ChunkDataset(cut_set, [c.id for c in tr], chunk_context(model, cfg), valid=model.supports_valid and cfg.chunk_context < 0)
        log.info("chunks of %d frames with %s context frames%s, %d labelled frames a batch; %d cuts in memory (%.0f s)",
                 cfg.chunk_frames, dataset.context, " (only the chunks' frames computed)" if dataset.valid else "", cfg.batch_frames,
                 len(dataset.examples), time.time() - t_load)

        def epoch_batches(epoch: int):
            return chunk_batches(dataset.lengths, cfg.chunk_frames, cfg.batch_frames, cfg.seed, epoch)
    else:
        dataset = cut_set

        def epoch_batches(epoch: int):
            return global_batches(tr, cfg.max_duration, True, cfg.seed, epoch)
    steps_per_epoch = len(epoch_batches(0))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, steps_per_epoch * cfg.epochs, newbob))
    log_priors = label_log_priors(tr, num_pdfs)
    history: List[dict] = []
    start_epoch = 1
    if resume:
        last = latest_checkpoint(exp)
        if last:
            ck = torch.load(last, map_location="cpu")
            model.load_state_dict(ck["state_dict"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            history = ck["history"]
            if newbob is not None and ck.get("newbob"):
                newbob = Newbob(**ck["newbob"])
                sched.lr_lambdas[0] = lr_lambda(cfg, steps_per_epoch * cfg.epochs, newbob)
            set_rng_state(ck["rng"][rank] if isinstance(ck["rng"], list) else ck["rng"])
            start_epoch = ck["epoch"] + 1
            log.info("resuming after epoch %d from %s", ck["epoch"], last)
    if rank == 0:
        (exp / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")
    best = min((h["dev_ce"] for h in history), default=float("inf"))
    # epochs since the best one (early-stopping state, recomputed on resume)
    bad_epochs = len(history) - 1 - min(range(len(history)), key=lambda i: history[i]["dev_ce"]) if history else 0
    for epoch in range(start_epoch, cfg.epochs + 1):
        if stop_after is not None and epoch > stop_after:
            return {"history": history, "best_dev_ce": best, "num_params": model.num_params(), "stopped": True}
        if bad_epochs >= cfg.patience:
            log.info("early stopping: no dev improvement for %d epochs", bad_epochs)
            break
        if history and history[-1].get("newbob_stop"):
            log.info("newbob: dev CE improved by less than %g while halving: converged", cfg.newbob_stop)
            break
        t0 = time.time()
        dataset.epoch = epoch
        batches = epoch_batches(epoch)
        loader = torch.utils.data.DataLoader(
            dataset, sampler=RankShardedBatches(batches, world, rank), batch_size=None,
            num_workers=cfg.num_workers, persistent_workers=False, prefetch_factor=4 if cfg.num_workers else 2,
        )  # fmt: skip
        tot = torch.zeros(4, dtype=torch.float64)  # CE, labelled output frames, correct, labelled input frames
        lm_tot = torch.zeros(len(lmh.units), 2, dtype=torch.float64)  # per unit: soft CE, frames with a target
        model.train()
        it = loader
        if rank == 0:
            from tqdm import tqdm

            it = tqdm(loader, total=len(batches), desc=f"epoch {epoch}", unit="batch", mininterval=10, leave=False)
        for bi, batch in enumerate(it, 1):
            out, _ = ddp(batch["feats"], batch["lengths"], valid=batch.get("valid", False))
            ce, n, c = frame_ce(out["main"], batch["labels"], model.cfg.subsampling)
            frames = all_reduce_sum(n.detach().to(torch.float64).clone())
            if kd.objective != "none" or lmh.active:  # soft targets of the frames the outputs land on
                out_t, batch_t = subsample_targets(out, batch, model.cfg.subsampling)
            objective = student_loss(out_t, batch_t, kd)["loss"] if kd.objective != "none" else ce
            if lmh.active:
                terms = lm_heads_loss(out_t, batch_t, lmh, base=objective)
                objective = terms["loss"]
                for i, u in enumerate(lmh.units):
                    if f"soft_ce_{u}" in terms:
                        lm_tot[i] += torch.tensor([terms[f"soft_ce_{u}"].item(), terms[f"frames_{u}"].item()], dtype=torch.float64)
            loss = objective * world / frames.clamp(min=1)
            if all_reduce_sum(torch.tensor([0.0 if torch.isfinite(objective) else 1.0])).item():
                last = latest_checkpoint(exp)
                raise TrainingDiverged(f"{exp}: epoch {epoch}, batch {bi} of {len(batches)}: the loss is not finite; "
                                       f"the last good checkpoint is {last or 'none (this is the first epoch)'}")
            opt.zero_grad()
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            tot += torch.tensor([ce.item(), n.item(), c.item(), (batch["labels"] >= 0).sum().item()], dtype=torch.float64)
        all_reduce_sum(tot)
        all_reduce_sum(lm_tot)
        dev = evaluate(model, dv, cfg, num_pdfs)
        rec = {
            "epoch": epoch,
            "train_ce": tot[0].item() / max(tot[1].item(), 1),
            "train_acc": tot[2].item() / max(tot[1].item(), 1),
            "dev_ce": dev["ce"],
            "dev_acc": dev["acc"],
            "lr": sched.get_last_lr()[0],
            "seconds": round(time.time() - t0, 1),
            "train_frames": int(tot[1].item()),
            "frames_per_second": round(tot[1].item() / max(time.time() - t0, 1e-9), 1),  # output frames (30 ms with subsampling 3)
            "input_frames_per_second": round(tot[3].item() / max(time.time() - t0, 1e-9), 1),  # 10 ms frames of training data
            "skipped_cuts": dataset.num_skipped,
        }
        for i, u in enumerate(lmh.units):
            if lm_tot[i, 1] > 0:  # the head's soft CE per frame with a target
                rec[f"train_soft_ce_{u}"] = lm_tot[i, 0].item() / lm_tot[i, 1].item()
        if not math.isfinite(dev["ce"]) or (math.isfinite(best) and dev["ce"] > cfg.diverge_ratio * best):
            last = latest_checkpoint(exp)
            raise TrainingDiverged(f"{exp}: epoch {epoch}: dev cross-entropy {dev['ce']:.4f} against the best {best:.4f} "
                                   f"(diverge_ratio {cfg.diverge_ratio}); the last good checkpoint is {last or 'none'}")
        if newbob is not None:
            rec["lr_scale"] = newbob.scale  # this epoch's
            rec["newbob_stop"] = newbob.update(best, dev["ce"])
            rec["next_lr_scale"] = newbob.scale
            for g, base in zip(opt.param_groups, sched.base_lrs):  # from the next update on, not one step late
                g["lr"] = base * sched.lr_lambdas[0](sched.last_epoch)
        history.append(rec)
        if dev["ce"] < best:
            best, bad_epochs = dev["ce"], 0
            if rank == 0:
                save_final(exp / "best.pt", model, log_priors, {"epoch": epoch, "train_config": cfg.to_dict()})
        else:
            bad_epochs += 1
        # Every rank's random state, so a resumed data-parallel run is exact too.
        states = [None] * world
        if world > 1:
            torch.distributed.all_gather_object(states, rng_state())
        else:
            states = [rng_state()]
        if rank == 0:
            atomic_save({"state_dict": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                         "history": history, "rng": states, "epoch": epoch, "config": cfg.to_dict(),
                         "newbob": asdict(newbob) if newbob is not None else None}, exp / f"epoch-{epoch}.pt")
            log.info(json.dumps(rec))
    if rank == 0:
        ck = torch.load(exp / "best.pt", map_location="cpu")
        ck["history"] = history
        ck["num_params"] = model.num_params()
        ck["train_seconds"] = round(sum(h["seconds"] for h in history), 1)
        ck["init_from"] = str(init_from) if init_from else None
        atomic_save(ck, exp / "final.pt")
        (exp / "history.json").write_text(json.dumps(history, indent=1) + "\n")
        plot_learning_curve(history, exp / "learning_curve.png", title=f"{cfg.model.arch} ({model.num_params() / 1e6:.2f} M params)")
    return {"history": history, "best_dev_ce": best, "num_params": model.num_params()}


def plot_learning_curve(history: List[dict], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].plot(ep, [h["train_ce"] for h in history], "o-", label="train")
    ax[0].plot(ep, [h["dev_ce"] for h in history], "s-", label="dev")
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("frame cross-entropy")
    ax[0].legend()
    ax[1].plot(ep, [100 * h["train_acc"] for h in history], "o-", label="train")
    ax[1].plot(ep, [100 * h["dev_acc"] for h in history], "s-", label="dev")
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("frame accuracy (%)")
    ax[1].legend()
    from matplotlib.ticker import MaxNLocator

    for a in ax:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_learning_curves(runs: Dict[str, List[dict]], path: Pathlike, title: str = "") -> None:
    """Several models' dev cross-entropy and dev frame accuracy per epoch in one figure
    (e.g. the zoo's members). ``runs``: name -> history (``history.json`` of each exp dir);
    the epoch each model's ``final.pt`` keeps (lowest dev CE) is marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for name, h in runs.items():
        ep = [x["epoch"] for x in h]
        best = min(range(len(h)), key=lambda i: h[i]["dev_ce"])
        line, = ax[0].plot(ep, [x["dev_ce"] for x in h], "o-", ms=3, label=name)
        ax[0].plot(ep[best], h[best]["dev_ce"], "*", ms=12, color=line.get_color())
        ax[1].plot(ep, [100 * x["dev_acc"] for x in h], "o-", ms=3, color=line.get_color(), label=name)
        ax[1].plot(ep[best], 100 * h[best]["dev_acc"], "*", ms=12, color=line.get_color())
    ax[0].set_ylabel("dev frame cross-entropy")
    ax[1].set_ylabel("dev frame accuracy (%)")
    for a in ax:
        a.set_xlabel("epoch")
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.grid(alpha=0.3)
        a.legend()
    fig.suptitle(title or "learning curves (star: the epoch final.pt keeps)")
    fig.tight_layout()
    tmp = Path(path).with_name(Path(path).stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
