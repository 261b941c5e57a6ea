"""Several trained models' learning curves (dev cross-entropy and frame accuracy per epoch,
from each exp dir's history.json) in one figure, e.g. the zoo's members.

e.g.: python -m kdhybrid.bin.plot_learning_curves --out exp/zoo_learning_curves.png exp/tdnn exp/blstm exp/dnn
"""
import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--title", default="")
    p.add_argument("exp_dirs", nargs="+")
    a = p.parse_args()
    from kdhybrid.train.trainer import plot_learning_curves

    runs = {}
    for d in a.exp_dirs:
        f = Path(d) / "history.json"
        if not f.is_file():
            print(f"plot_learning_curves: {f}: no such file (is {d} a trained model's dir?)", file=sys.stderr)
            return 1
        runs[Path(d).name] = json.loads(f.read_text())
        if not runs[Path(d).name]:
            print(f"plot_learning_curves: {f}: no epochs", file=sys.stderr)
            return 1
    plot_learning_curves(runs, a.out, a.title)
    best = {n: min(h, key=lambda x: x["dev_ce"]) for n, h in runs.items()}
    for n, b in best.items():
        fps = [h["input_frames_per_second"] for h in runs[n] if "input_frames_per_second" in h]
        speed = f", {sum(fps) / len(fps):,.0f} training frames/s" if fps else ""
        print(f"{n}: best epoch {b['epoch']} of {len(runs[n])}, dev CE {b['dev_ce']:.4f}, dev frame acc {100 * b['dev_acc']:.2f}%"
              f", {sum(h['seconds'] for h in runs[n]):.0f} s{speed}")
    print(f"plot_learning_curves: wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
