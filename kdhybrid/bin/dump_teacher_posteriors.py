"""Dump a teacher's top-k senone posteriors of one data split (--job N) as a Kaldi Posterior
archive, or merge finished jobs (--finish NJ): post.scp, post.json, mass_curve.png.

e.g.: python -m kdhybrid.bin.dump_teacher_posteriors --job 1 --topk 10 data/train/split2utt/1 exp/ensemble_logit exp/post_k10
      python -m kdhybrid.bin.dump_teacher_posteriors --finish 2 --topk 10 data/train exp/ensemble_logit exp/post_k10
      (--from-dump exp/post_k40: the top 10 of a finished top-40 dump of the same teacher, no forward pass)
"""
import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from kdhybrid.decode.acoustic import BATCH_FRAMES
from kdhybrid.distill.dump import DumpConfig, dump_job, finish_dump, load_teacher, truncate_job


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--topk", type=int, default=10, help="pdfs kept per frame; 0: all")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--batch-frames", type=int, default=BATCH_FRAMES)
    p.add_argument("--from-dump", default="", help="a finished dump with K >= --topk: take its top k (no teacher pass)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--job", type=int)
    g.add_argument("--finish", type=int, metavar="NJ")
    p.add_argument("data_dir")
    p.add_argument("teacher_dir")
    p.add_argument("post_dir")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if a.topk < 0 or a.temperature <= 0:
        raise ValueError(f"--topk must be >= 0 and --temperature > 0 (got {a.topk}, {a.temperature})")
    cfg = DumpConfig(topk=a.topk, temperature=a.temperature, batch_frames=a.batch_frames, source=a.from_dump)
    torch.set_num_threads(1)
    teacher = load_teacher(a.teacher_dir)
    Path(a.post_dir).mkdir(parents=True, exist_ok=True)
    if a.job is not None:
        logging.info("teacher: %s", teacher.description)
        s = truncate_job(a.data_dir, a.post_dir, a.job, cfg) if cfg.source else dump_job(a.data_dir, teacher, a.post_dir, a.job, cfg)
        logging.info("job %d: %d utterances, %d frames in %.1f s (forward %.1f s)", a.job, s["utts"], s["frames"], s["seconds"], s["seconds_forward"])
    else:
        info = finish_dump(a.post_dir, a.finish, a.teacher_dir, cfg, teacher.num_pdfs)
        print(json.dumps({k: v for k, v in info.items() if k != "mass_curve"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
