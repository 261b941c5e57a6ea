"""Dump a unit LM's frame-wise posteriors of one data split (--job N) as a Kaldi Posterior
archive, or merge finished jobs (--finish NJ): post.scp, post.json, units.txt.

Every frame of unit instance k of an utterance's alignment gets the top-k of the LM's
distribution of unit k given the units before it (kdhybrid/lm/posteriors.py); frames without
an instance (subwords: silence, noise, OOV words) get no pairs.

e.g.: python -m kdhybrid.bin.dump_lm_posteriors --job 1 --topk 16 data/train/split2utt/1 data/lang exp/tri1_ali exp/unit_lm/monophone exp/unit_lm/monophone/post_train
      python -m kdhybrid.bin.dump_lm_posteriors --finish 2 --topk 16 data/train data/lang exp/tri1_ali exp/unit_lm/monophone exp/unit_lm/monophone/post_train
"""
import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from kdhybrid.lm.build import fitted_num_frames, load_unit_lm, utterances_of
from kdhybrid.lm.posteriors import LmDumpConfig, finish_lm_dump, lm_dump_job


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--topk", type=int, default=16, help="units kept per frame; 0: all")
    p.add_argument("--batch-tokens", type=int, default=20000)
    p.add_argument("--cuts", default="", help="cuts (file or dir) whose frame counts the targets are fitted to, as their labels")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--job", type=int)
    g.add_argument("--finish", type=int, metavar="NJ")
    p.add_argument("data_dir")
    p.add_argument("lang_dir")
    p.add_argument("ali_dir")
    p.add_argument("lm_dir")
    p.add_argument("post_dir")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if a.topk < 0:
        raise ValueError(f"--topk must be >= 0, got {a.topk}")
    torch.set_num_threads(1)
    pipe, lm, info, report = load_unit_lm(a.lm_dir, a.lang_dir, a.ali_dir)
    cfg = LmDumpConfig(unit=pipe.inventory.kind, topk=a.topk, batch_tokens=a.batch_tokens)
    Path(a.post_dir).mkdir(parents=True, exist_ok=True)
    if a.job is not None:
        from kdhybrid.gmm.train import read_alignments

        utts, texts = utterances_of(Path(a.data_dir) / "text")
        alis = read_alignments(a.ali_dir)
        s = lm_dump_job(utts, alis, texts, info, pipe, lm, a.post_dir, a.job, cfg, fitted_num_frames(a.cuts))
        logging.info("job %d: %d utterances (%d without alignment), %d frames, %d with a target, in %.1f s (LM %.1f s)",
                     a.job, s["utts"], s["without_alignment"], s["frames"], s["target_frames"], s["seconds"], s["seconds_lm"])
    else:
        extra = {"lm_heldout_ppl": report["heldout_ppl"], "floor_heldout_ppl": report["floor_heldout_ppl"], "cuts": a.cuts}
        info_json = finish_lm_dump(a.post_dir, a.finish, cfg, Path(a.lm_dir) / "lm.pt", pipe.inventory, extra)
        print(json.dumps(info_json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
