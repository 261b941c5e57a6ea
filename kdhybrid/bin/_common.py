"""Shared by the command-line entry points."""
import logging
from pathlib import Path


def setup_logging(exp_dir, name: str = "train.log", level: int = logging.INFO) -> None:
    """Log to stderr and to ``<exp_dir>/log/<name>`` (the exp dir's log, as Kaldi keeps it)."""
    Path(exp_dir, "log").mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s",
                        handlers=[logging.StreamHandler(), logging.FileHandler(Path(exp_dir, "log", name), mode="w")])


def triphone_parser(doc: str, num_iters: int):
    """The arguments every triphone GMM trainer takes (train_deltas, train_lda_mllt,
    train_sat): --nj --seed --num-iters --beam --retry-beam --min-count, then <num-leaves>
    <tot-gauss> <data-dir> <lang-dir> <ali-dir> <exp-dir>. Add options before parsing."""
    import argparse

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nj", type=int, default=2)
    p.add_argument("--seed", type=int, default=1, help="seeds the Gaussian mix-up's perturbations")
    p.add_argument("--num-iters", type=int, default=num_iters)
    p.add_argument("--beam", type=float, default=10.0)
    p.add_argument("--retry-beam", type=float, default=40.0)
    p.add_argument("--min-count", type=float, default=100.0, help="frames on each side of a tree split")
    for name in ("num_leaves", "tot_gauss"):
        p.add_argument(name, type=int)
    for name in ("data_dir", "lang_dir", "ali_dir", "exp_dir"):
        p.add_argument(name)
    return p


def triphone_summary(prog: str, exp_dir: str, s: dict, extra: str = "") -> str:
    """The one-line summary the steps grep from a triphone trainer's log."""
    return (f"{prog}: {exp_dir}: {s['num_pdfs']} leaves, {s['num_gauss']} Gaussians, log-like/frame "
            f"{s['final_like_per_frame']:.3f}, {s['aligned_utterances']} utterances aligned, "
            f"{len(s['align_failed'])} failed{extra}, {s['seconds']} s (tree {s['tree_seconds']} s)")
