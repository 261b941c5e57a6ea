"""The recipe's stage wall times: one JSON line per finished stage in ``exp/stage_times.jsonl``.

A recipe (``run.sh``, ``steps/hybrid_recipe.sh``) appends a record when a stage finishes
without error (a failed stage records nothing); a stage run again appends another, and the
last record of a stage is the one that counts. A record::

    {"stage": 7, "title": "acoustic model zoo ...", "seconds": 2345, "finished": "2026-12-02 18:30:00",
     "nproc": 2, "commit": "5be9b6a"}

``commit`` is the kdhybrid checkout's ``git rev-parse --short HEAD`` (``null`` outside a git
checkout), so a table made from several commits can say so.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Union

Pathlike = Union[str, Path]


def code_commit() -> Optional[str]:
    """Short commit of the kdhybrid checkout this module runs from, with ``+`` when it has
    uncommitted changes to tracked files; None outside a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD", "--"], capture_output=True, timeout=60).returncode
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+" if dirty == 1 else "")


def record_stage_time(path: Pathlike, stage: int, title: str, seconds: float, commit: Optional[str] = None) -> dict:
    """Append one stage's record to ``path`` (made with its dir if missing) and return it. The
    line is written with one ``write`` call, so a reader never sees half of it."""
    rec = {"stage": int(stage), "title": title, "seconds": int(round(seconds)),
           "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "nproc": os.cpu_count(), "commit": commit}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a") as f:
        f.write(json.dumps(rec) + "\n")
    return rec


def read_stage_times(path: Pathlike) -> Dict[int, dict]:
    """stage -> its last record in ``path`` ({} when the file is missing). A line that is not a
    record raises ValueError naming the file and the line."""
    p = Path(path)
    if not p.is_file():
        return {}
    out: Dict[int, dict] = {}
    for i, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            stage, _ = int(rec["stage"]), float(rec["seconds"])
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{p}:{i}: not a stage record ({e}): {line[:200]!r}") from None
        out[stage] = rec
    return dict(sorted(out.items()))


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else f"{s // 60} min {s % 60:02d} s"


def stage_times_table(records: Dict[int, dict]) -> List[str]:
    """Markdown lines: each stage's wall time (its last run), the machine's core count and the
    commit it ran, and the sum over the default run's stages (0-12) that are there, naming any
    gap; [] for no records."""
    if not records:
        return []
    lines = ["| stage | what | wall time | finished | cores | commit |", "|---|---|---|---|---|---|"]
    for s, r in records.items():
        lines.append(f"| {s} | {r.get('title', '')} | {_hms(r['seconds'])} | {r.get('finished', '-')} | {r.get('nproc', '-')} | "
                     f"{r.get('commit') or '-'} |")
    core = [s for s in records if s <= 12]
    if core:
        missing = sorted(set(range(min(core), max(core) + 1)) - set(core))
        lines.append(f"| {min(core)}-{max(core)} | sum of the default run's stages above"
                     + (f" (stages {', '.join(map(str, missing))} not recorded)" if missing else "")
                     + f" | {_hms(sum(records[s]['seconds'] for s in core))} | | | |")
    commits = {r.get("commit") for r in records.values()}
    if len(commits) > 1:
        lines.append("")
        lines.append(f"The stages ran at {len(commits)} different commits: "
                     + ", ".join(sorted(c or "unknown" for c in commits)) + ".")
    return lines
