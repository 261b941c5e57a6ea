"""What every Kaldi-style job runner shares (``steps/run.py``, ``steps/slurm.py``).

The command line of Kaldi's run.pl / slurm.pl::

    <runner> [--opt value ...] [JOB=1:N] <log-file> <command> [<args>...]

Options may stand before and after the job range. Every ``JOB`` (the variable's name is
free: ``TASK=1:4`` works too) in the log name and in the command becomes the job number.
A job runs as ``bash -c "set -o pipefail; <command>"`` with its stdout and stderr in its
log, which is framed the same way by every runner::

    # <command with JOB replaced>
    # Started at <date>
    # (runner lines, e.g. '# Running on <host>')
    #
    <output of the command>
    # Accounting: time=<seconds> threads=<N>
    # Finished at <date> with status <exit status>

Arguments are quoted as run.pl quotes them: one with whitespace (or empty) is single-quoted,
others (pipes, redirections) reach the shell as they are.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

JOB_RANGE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\d+)(?::(\d+))?$")
_STATUS = re.compile(r"^# Finished at .* with status (-?\d+)\s*$")


class UsageError(ValueError):
    """A runner's command line is wrong; the message says what and where."""


@dataclass
class JobResult:
    """How one job ended: its number, exit status, log, wall time, and (when the status is
    not the command's own, e.g. a cluster task that vanished) a note on why."""

    job: int
    returncode: int
    log: str
    seconds: float = 0.0
    note: str = ""


@dataclass
class RunnerCall:
    """A parsed runner command line.

    :param options: the ``--name value`` options, dashes in names turned to underscores
        (``--max-jobs-run 2`` -> ``{"max_jobs_run": "2"}``), in the order given.
    :param var: the job variable (``JOB``), or None without a job range (one job, number 1).
    """

    options: Dict[str, str]
    var: Optional[str]
    first: int
    last: int
    log: str
    argv: List[str]

    @property
    def jobs(self) -> List[int]:
        return list(range(self.first, self.last + 1))

    def substitute(self, text: str, job: int) -> str:
        """``text`` with the job variable replaced by ``job``."""
        return text.replace(self.var, str(job)) if self.var else text

    def log_for(self, job: int) -> str:
        return self.substitute(self.log, job)

    def command_for(self, job: int) -> str:
        """The shell command of one job, quoted as run.pl quotes it."""
        return " ".join(quote_arg(self.substitute(a, job)) for a in self.argv)

    def int_option(self, name: str, default: Optional[int] = None) -> Optional[int]:
        """An option that must be a positive integer, e.g. ``max_jobs_run``."""
        if name not in self.options:
            return default
        v = self.options[name]
        if not v.isdigit() or int(v) < 1:
            raise UsageError(f"--{name.replace('_', '-')} takes a positive integer, got {v!r}")
        return int(v)


def quote_arg(arg: str) -> str:
    """Quote like run.pl: an argument with whitespace (or empty) is single-quoted; others,
    pipes and redirections included, pass through so the shell sees them."""
    if arg and not re.search(r"\s", arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


def parse_job_range(spec: str) -> Tuple[str, int, int]:
    """``JOB=1:4`` -> ("JOB", 1, 4); ``JOB=3`` -> ("JOB", 3, 3)."""
    m = JOB_RANGE.match(spec)
    if not m:
        raise UsageError(f"bad job range {spec!r}; expected e.g. JOB=1:4")
    var, a = m.group(1), int(m.group(2))
    b = int(m.group(3)) if m.group(3) is not None else a
    if b < a:
        raise UsageError(f"bad job range {spec!r}: end before start")
    return var, a, b


def parse_runner_args(args: Sequence[str]) -> RunnerCall:
    """Parse ``[--opt value ...] [JOB=a:b] [--opt value ...] <log> <command...>``.

    Raises :class:`UsageError` for an option without a value, a bad range, a missing log
    or command, or a log name without the job variable when there are several jobs (their
    logs would overwrite each other)."""
    args = list(args)
    options: Dict[str, str] = {}
    var, first, last = None, 1, 1
    while args:
        if args[0].startswith("--"):
            opt = args.pop(0)
            if not args:
                raise UsageError(f"option {opt} needs a value")
            options[opt[2:].replace("-", "_")] = args.pop(0)
        elif var is None and JOB_RANGE.match(args[0]):
            var, first, last = parse_job_range(args.pop(0))
        else:
            break
    if len(args) < 2:
        raise UsageError("give a log file and a command")
    log, argv = args[0], args[1:]
    if var is not None and last > first and var not in log:
        raise UsageError(f"{last - first + 1} jobs would all write the one log {log}: put {var} in its name")
    return RunnerCall(options, var, first, last, log, argv)


def log_header(command: str, extra: Sequence[str] = ()) -> str:
    """The lines a job's log starts with (see the module docstring)."""
    lines = [f"# {command} ", f"# Started at {time.ctime()}", *(f"# {e}" for e in extra), "#"]
    return "\n".join(lines) + "\n"


def log_trailer(status: int, seconds: float, threads: int = 1) -> str:
    """The lines a job's log ends with; :func:`read_log_status` reads the status back."""
    return (f"# Accounting: time={int(round(seconds))} threads={threads}\n"
            f"# Finished at {time.ctime()} with status {status}\n")


def read_log_status(log: str, tail_lines: int = 10) -> Optional[int]:
    """The exit status in a job log's trailer, or None when the log is missing or has none
    (the job did not finish). Looks at the last ``tail_lines`` lines, as output of a
    process the job left behind may follow the trailer."""
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode("utf-8", "replace").splitlines()[-tail_lines:]
    except OSError:
        return None
    for line in reversed(lines):
        m = _STATUS.match(line)
        if m:
            return int(m.group(1))
    return None


def run_job(call: RunnerCall, job: int, threads: int = 1, extra_header: Sequence[str] = (),
            env: Optional[Dict[str, str]] = None) -> JobResult:
    """Run one job of ``call`` here: header, ``bash -c`` with output to the log, trailer.
    The job variable is also set in the job's environment. Never raises on a failed
    command: the result carries its status."""
    log = call.log_for(job)
    cmd = call.command_for(job)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if env is None else env)
    if call.var:
        env[call.var] = str(job)
    start = time.time()
    with open(log, "w", encoding="utf-8") as f:
        f.write(log_header(cmd, extra_header))
        f.flush()
        rc = subprocess.call(["bash", "-c", "set -o pipefail; " + cmd], stdout=f, stderr=subprocess.STDOUT, env=env)
        elapsed = time.time() - start
        f.write(log_trailer(rc, elapsed, threads))
    return JobResult(job, rc, log, elapsed)


def failure_message(prog: str, results: Sequence[JobResult]) -> Optional[str]:
    """None when every job succeeded; else 'N / M failed' naming each failed job's log (and
    the note of a job whose status came from the cluster rather than its log)."""
    failed = [r for r in results if r.returncode != 0]
    if not failed:
        return None
    parts = [r.log + (f" ({r.note})" if r.note else "") for r in failed]
    return f"{prog}: {len(failed)} / {len(results)} failed, see {', '.join(parts)}"


def runner_main(prog: str, usage: str, args: Sequence[str],
                run: Callable[[RunnerCall], List[JobResult]]) -> int:
    """The command-line shell of a runner: ``--help``, parsing, running, the failure
    report. ``run`` runs the parsed call and returns a result per job; it may raise
    :class:`UsageError` (reported with the usage), :class:`RunnerError` (reported as is,
    status 1) or :class:`Interrupted` (status 128 + the signal's number)."""
    args = list(args)
    if args and args[0] in ("-h", "--help"):
        print(usage)
        return 0
    try:
        call = parse_runner_args(args)
        results = run(call)
    except UsageError as e:
        print(f"{prog}: {e}\n{usage}", file=sys.stderr)
        return 1
    except RunnerError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    except Interrupted as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 128 + e.signum
    msg = failure_message(prog, results)
    if msg:
        print(msg, file=sys.stderr)
        return 1
    return 0


class RunnerError(RuntimeError):
    """The jobs could not be run (e.g. the cluster refused them); the message says why."""


class Interrupted(Exception):
    """The runner got SIGINT or SIGTERM (and has cleaned up); it exits with 128 + signum."""

    def __init__(self, signum: int, message: str = "") -> None:
        super().__init__(message or f"interrupted by signal {signum}")
        self.signum = signum
