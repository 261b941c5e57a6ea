"""Report on a GMM-HMM alignment dir: leaves, Gaussians, phone-boundary agreement with the
synthesiser's timings (flite/festival voices), written to <ali-dir>/boundaries.json.

e.g.: python -m kdhybrid.bin.gmm_report exp/tri1 data/lang corpus/synth_en_default/meta/train.utts.jsonl
"""
import argparse
import json
import sys
from pathlib import Path

from kdhybrid.gmm.boundaries import boundary_agreement
from kdhybrid.gmm.model import GmmHmm
from kdhybrid.gmm.train import read_alignments
from kdhybrid.gmm.tree import TidInfo


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ali_dir")
    p.add_argument("lang_dir")
    p.add_argument("meta", nargs="+", help="corpus meta/<split>.utts.jsonl files with phone timings")
    a = p.parse_args()
    model = GmmHmm.load(a.ali_dir)
    r = boundary_agreement(read_alignments(a.ali_dir), TidInfo.of(model.tm), Path(a.lang_dir) / "phones.txt", a.meta)
    r["num_pdfs"], r["num_gauss"] = model.num_pdfs, model.num_gauss
    (Path(a.ali_dir) / "boundaries.json").write_text(json.dumps(r, indent=1) + "\n")
    print(f"gmm_report: {a.ali_dir}: {model.num_pdfs} pdfs, {model.num_gauss} Gaussians")
    print(f"  {'voice':<34} {'utts':>5} {'bounds':>7} {'<=20ms':>7} {'<=50ms':>7} {'median':>7}")
    for v, s in list(r["per_voice"].items()) + [("all", r["all"])]:
        print(f"  {v:<34} {s['utterances']:>5} {s['boundaries']:>7} {s['within_20ms']:>7} {s['within_50ms']:>7} {s['median_ms']:>6}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
