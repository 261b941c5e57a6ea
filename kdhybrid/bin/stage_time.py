"""Record a finished recipe stage's wall time in exp/stage_times.jsonl (one JSON line a stage
run; the last one of a stage counts), or print the table of a stage-times file.

e.g.: python -m kdhybrid.bin.stage_time --stage 7 --seconds 2345 --title "acoustic model zoo" exp/stage_times.jsonl
      python -m kdhybrid.bin.stage_time exp/stage_times.jsonl      # the table
"""
import argparse
import sys


def main() -> int:
    from kdhybrid.io.stage_times import code_commit, read_stage_times, record_stage_time, stage_times_table

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", type=int, help="the stage that finished (without it: print the table)")
    p.add_argument("--seconds", type=float, help="its wall time")
    p.add_argument("--title", default="", help="what the stage does (its log line)")
    p.add_argument("times", help="the stage-times file, e.g. exp/stage_times.jsonl")
    a = p.parse_args()
    if a.stage is not None:
        if a.seconds is None or a.seconds < 0:
            p.error("--stage needs --seconds >= 0")
        record_stage_time(a.times, a.stage, a.title, a.seconds, code_commit())
    else:
        print("\n".join(stage_times_table(read_stage_times(a.times))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
