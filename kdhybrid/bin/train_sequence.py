"""Sequence-discriminative fine-tuning (sMBR, MMI, boosted MMI) of a hybrid model on
denominator lattices (steps/train_sequence.sh; kdhybrid.train.sequence_trainer).

e.g.: python -m kdhybrid.bin.train_sequence --criterion smbr data/cuts/train exp/tdnn_ali exp/tdnn_denlats exp/tdnn exp/tdnn_smbr
      (--dev-data data/dev --graph-dir exp/tri1/graph_tgsmall: dev WER each epoch)
"""
import argparse
import sys
from pathlib import Path

from kdhybrid.bin._common import setup_logging


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--criterion", choices=["smbr", "mmi", "bmmi"], default="smbr")
    p.add_argument("--acwt", type=float, default=0.1)
    p.add_argument("--boost", type=float, default=0.1, help="bmmi only")
    p.add_argument("--xent-regularize", type=float, default=0.1)
    p.add_argument("--drop-frames", choices=["true", "false"], default="true", help="mmi and bmmi")
    p.add_argument("--one-silence-class", choices=["true", "false"], default="true", help="smbr")
    p.add_argument("--skip-without-reference", choices=["true", "false"], default="true",
                   help="skip utterances whose lattice lacks the reference path (false: Kaldi's acoustic-only numerator)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--max-duration", type=float, default=60.0, help="seconds of audio a batch")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--dev-data", help="dev data dir, for the dev WER of every epoch (with --graph-dir)")
    p.add_argument("--graph-dir")
    p.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    p.add_argument("train_cuts", help="a cuts dir (kdhybrid.bin.make_cuts) or cuts file of the training data")
    p.add_argument("ali_dir", help="numerator alignments (ali.*.gz) and final.mdl")
    p.add_argument("den_dir", help="denominator lattices (steps/make_denlats.sh)")
    p.add_argument("src_model_dir", help="the model to fine-tune (its final.pt)")
    p.add_argument("exp_dir")
    a = p.parse_args()
    from kdhybrid.train.sequence import SequenceConfig
    from kdhybrid.train.sequence_trainer import SequenceTrainConfig, train_sequence

    seq = SequenceConfig(a.criterion, acwt=a.acwt, boost=a.boost, xent_regularize=a.xent_regularize,
                         drop_frames=a.drop_frames == "true", one_silence_class=a.one_silence_class == "true",
                         skip_without_reference=a.skip_without_reference == "true")
    cfg = SequenceTrainConfig(sequence=seq, epochs=a.epochs, lr=a.lr, max_duration=a.max_duration, seed=a.seed, threads=a.threads)
    cuts = Path(a.train_cuts)
    cuts = cuts / "cuts.jsonl.gz" if cuts.is_dir() else cuts
    setup_logging(a.exp_dir, "train.log" if not a.resume else "train.resume.log")
    r = train_sequence(cfg, cuts, a.ali_dir, a.den_dir, Path(a.src_model_dir) / "final.pt", a.exp_dir,
                       dev_data=a.dev_data, graph_dir=a.graph_dir, resume=a.resume)
    h = r["history"][-1]
    wer = f", dev WER {h['dev_wer']:.2f}%" if "dev_wer" in h else ""
    print(f"train_sequence: {a.exp_dir}: {a.criterion}, {len(r['history'])} epochs, objective per frame "
          f"{r['history'][0]['objective_per_frame']:.4f} -> {h['objective_per_frame']:.4f}{wer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
