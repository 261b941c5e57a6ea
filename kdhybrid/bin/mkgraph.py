"""Build HCLG.fst (utils/mkgraph.sh) and its k2 form HCLG.k2.pt from a lang test dir and a model dir.

e.g.: python -m kdhybrid.bin.mkgraph data/lang_test_tgsmall exp/tri1 exp/tri1/graph_tgsmall
"""
import argparse
import json
import sys

from kdhybrid.decode.graph import make_hclg
from kdhybrid.gmm.model import GmmHmm


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--self-loop-scale", type=float, default=0.1)
    p.add_argument("--transition-scale", type=float, default=1.0)
    p.add_argument("lang_test")
    p.add_argument("model_dir")
    p.add_argument("graph_dir")
    a = p.parse_args()
    info = make_hclg(a.lang_test, GmmHmm.load(a.model_dir), a.graph_dir, a.self_loop_scale, a.transition_scale, model_dir=a.model_dir)
    print(f"mkgraph: {a.graph_dir}/HCLG.fst: {json.dumps(info)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
