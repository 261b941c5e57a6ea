"""Train a hybrid acoustic model with frame cross-entropy (steps/train_nnet.sh).

e.g.: python -m kdhybrid.bin.train_nnet --config conf/tdnn.yaml data/cuts/train data/cuts/dev exp/tdnn
      python -m kdhybrid.bin.launch --nproc 2 -m kdhybrid.bin.train_nnet --config ...   (data-parallel)

The config (YAML) holds the model (``model:`` arch, hidden, num_layers ...) and training
options (epochs, max_duration, lr ...); --set key=value overrides one (``--set model.hidden=256``).
The pdf count is read from the cuts' labels when not in the config.
"""
import argparse
import logging
import sys
from pathlib import Path

import yaml


def parse_value(v: str):
    try:
        return yaml.safe_load(v)
    except yaml.YAMLError:
        return v


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML training config")
    p.add_argument("--set", action="append", default=[], help="override: key=value or model.key=value")
    p.add_argument("--num-pdfs", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    p.add_argument("--init-from", help="initialise from this final.pt (same architecture)")
    p.add_argument("train_cuts")
    p.add_argument("dev_cuts")
    p.add_argument("exp_dir")
    a = p.parse_args()
    from kdhybrid.train.trainer import TrainConfig, init_distributed, train

    d = yaml.safe_load(Path(a.config).read_text()) if a.config else {}
    d = d or {}
    for kv in a.set:
        k, v = kv.split("=", 1)
        target = d
        parts = k.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = parse_value(v)
    cfg = TrainConfig.from_dict(d)
    # A cuts dir (from kdhybrid.bin.make_cuts) or a cuts file.
    for name in ("train_cuts", "dev_cuts"):
        v = Path(getattr(a, name))
        setattr(a, name, str(v / "cuts.jsonl.gz") if v.is_dir() else str(v))
    if a.num_pdfs:
        cfg.model.num_pdfs = a.num_pdfs
    from kdhybrid.data.cuts import read_cuts_info

    made = read_cuts_info(a.train_cuts)
    if not cfg.model.num_pdfs:
        cfg.model.num_pdfs = made.get("num_pdfs", 0)
    if "feat_dim" not in d.get("model", {}) and made.get("feat_dim"):
        cfg.model.feat_dim = made["feat_dim"]  # the cuts' features: fbank bins, or the GMM's LDA dim
    if not cfg.model.input_features:
        cfg.model.input_features = made.get("features", "")
    if not cfg.model.num_pdfs:
        print("train_nnet: the pdf count is unknown: give --num-pdfs or make the cuts with kdhybrid.bin.make_cuts", file=sys.stderr)
        return 1
    world, rank = init_distributed()
    Path(a.exp_dir, "log").mkdir(parents=True, exist_ok=True)
    handlers = [logging.StreamHandler()]
    if rank == 0:
        handlers.append(logging.FileHandler(Path(a.exp_dir, "log", "train.log"), mode="a"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", handlers=handlers)
    r = train(cfg, a.train_cuts, a.dev_cuts, a.exp_dir, resume=a.resume, init_from=a.init_from)
    if rank == 0:
        best = min(r["history"], key=lambda h: h["dev_ce"]) if r["history"] else {}
        print(f"train_nnet: {a.exp_dir}: {cfg.model.arch}, {r['num_params']} params, {len(r['history'])} epochs, "
              f"best dev CE {best.get('dev_ce', float('nan')):.4f} acc {best.get('dev_acc', float('nan')):.4f} (epoch {best.get('epoch')}), "
              f"{sum(h['seconds'] for h in r['history']):.0f} s, world size {world}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
