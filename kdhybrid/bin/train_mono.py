"""Train a monophone GMM-HMM (Kaldi's steps/train_mono.sh): flat start, EM with
realignment, Gaussian mix-up, silence boost.

e.g.: python -m kdhybrid.bin.train_mono --nj 2 --tot-gauss 1000 data/train data/lang exp/mono
"""
import argparse
import sys

from kdhybrid.bin._common import setup_logging
from kdhybrid.gmm.train import MonoConfig, train_mono


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nj", type=int, default=2)
    p.add_argument("--seed", type=int, default=1, help="seeds the Gaussian mix-up's perturbations")
    p.add_argument("--num-iters", type=int, default=30)
    p.add_argument("--tot-gauss", type=int, default=1000)
    p.add_argument("--boost-silence", type=float, default=1.25)
    p.add_argument("--beam", type=float, default=20.0)
    p.add_argument("--retry-beam", type=float, default=100.0)
    p.add_argument("data_dir")
    p.add_argument("lang_dir")
    p.add_argument("exp_dir")
    a = p.parse_args()
    setup_logging(a.exp_dir)
    cfg = MonoConfig()
    cfg.em.num_iters = a.num_iters
    cfg.em.seed = a.seed
    cfg.em.tot_gauss = a.tot_gauss
    cfg.em.boost_silence = a.boost_silence
    cfg.em.align.beam = a.beam
    cfg.em.align.retry_beam = a.retry_beam
    cfg.em.realign_iters = tuple(i for i in cfg.em.realign_iters if i < a.num_iters)
    cfg.em.max_iter_inc = min(cfg.em.max_iter_inc, a.num_iters - 1)
    s = train_mono(a.data_dir, a.lang_dir, a.exp_dir, a.nj, cfg)
    print(f"train_mono: {a.exp_dir}: {s['num_pdfs']} pdfs, {s['num_gauss']} Gaussians, log-like/frame "
          f"{s['final_like_per_frame']:.3f}, {s['aligned_utterances']} utterances aligned, "
          f"{len(s['align_failed'])} failed, {s['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
