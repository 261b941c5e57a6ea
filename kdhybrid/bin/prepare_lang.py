"""Make a Kaldi lang dir from a dict dir (utils/prepare_lang.sh).

e.g.: python -m kdhybrid.bin.prepare_lang data/local/dict "<UNK>" data/lang
"""
import argparse
import sys

from kdhybrid.io.tables import KaldiFormatError
from kdhybrid.lang.lang_dir import LangConfig, prepare_lang


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("dict_dir")
    p.add_argument("oov_word")
    p.add_argument("lang_dir")
    p.add_argument("--position-dependent-phones", choices=["true", "false"], default="true")
    p.add_argument("--sil-prob", type=float, default=0.5)
    p.add_argument("--num-sil-states", type=int, default=5)
    p.add_argument("--num-nonsil-states", type=int, default=3)
    a = p.parse_args()
    cfg = LangConfig(a.position_dependent_phones == "true", a.sil_prob, a.num_sil_states, a.num_nonsil_states)
    try:
        sizes = prepare_lang(a.dict_dir, a.oov_word, a.lang_dir, cfg)
    except (KaldiFormatError, FileNotFoundError) as e:
        print(f"prepare_lang: {e}", file=sys.stderr)
        return 1
    print(f"prepare_lang: {a.lang_dir}: {sizes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
