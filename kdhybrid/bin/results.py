"""Write the recipe's RESULTS.md from its decode dirs' wer.json files (one row per system,
seeds grouped; the claims table with paired bootstrap p-values, minimum detectable effects and
verdicts; the claims in words; the WER by condition of the baseline, the ensemble and the
student) and its pictures beside it (wer_by_system.png, wer_vs_k.png, lm_ablation.png).

e.g.: python -m kdhybrid.bin.results --baseline tdnn --ensemble ensemble_logit --student student_k10 \\
        --post-dir exp/ensemble_logit/post_k10_train --archive results RESULTS.md
      python -m kdhybrid.bin.results --from-archive results RESULTS.md   # the same text again, from the archive alone
"""
import argparse
import sys

from kdhybrid.distill.results import regenerate_results, write_results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", default="dev test test_heldout")
    p.add_argument("--baseline", default="tdnn")
    p.add_argument("--ensemble", default="ensemble_logit")
    p.add_argument("--student", default="student_k10")
    p.add_argument("--post-dir", default=None)
    p.add_argument("--note", action="append", default=[], help="a line to add under the table (e.g. timings)")
    p.add_argument("--figure", action="append", default=[], metavar="PNG:CAPTION",
                   help="a figure to embed (path relative to the output's dir), e.g. 'learning_curves.png:The members' learning curves'")
    p.add_argument("--archive", default=None, help="also keep what the table is written from in this dir (small enough to commit)")
    p.add_argument("--from-archive", default=None, help="write RESULTS.md again from such an archive (the other options: ignored)")
    p.add_argument("out")
    a = p.parse_args()
    if a.from_archive:
        print(regenerate_results(a.from_archive, a.out))
        return 0
    figures = [tuple(f.split(":", 1)) if ":" in f else (f, f) for f in a.figure]
    text = write_results(".", a.out, a.sets.split(), a.baseline, a.ensemble, a.student, a.post_dir, extra_lines=a.note, figures=figures,
                         archive=a.archive)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
