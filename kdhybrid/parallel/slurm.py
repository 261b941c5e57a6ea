"""Kaldi's ``slurm.pl`` for kdhybrid (``steps/slurm.py``): the jobs of one call run on a
Slurm cluster as one array job.

::

    steps/slurm.py [--config conf/slurm.conf] [--mem 4G] [--num-threads N] [--gpu N]
                   [--time T] [--num-tasks N] [--max-jobs-run M] JOB=1:N log/x.JOB.log command ...

becomes ``sbatch --array 1-N%M <flags> <logdir>/../q/x.sh``, where the flags come from the
config file, which maps each option to sbatch flags as slurm.pl's does::

    command sbatch --export=ALL          # the submit command and its fixed flags
    option mem=* --mem-per-cpu $0        # --mem 4G -> --mem-per-cpu 4G
    option mem=0                         # --mem 0 -> nothing
    default gpu=0                        # no --gpu given: as if --gpu 0
    option gpu=0 -p shared
    option gpu=* -p gpu --gres=gpu:$0

An option the config does not describe is an error. Without ``--config``,
``conf/slurm.conf`` is read when it exists, else :data:`DEFAULT_CONFIG`. ``--max-jobs-run M``
becomes the array's ``%M``; ``--num-tasks N`` (one job of N tasks, e.g. the ranks of
data-parallel training started with srun) is this runner's addition.

Each task runs ``python -m kdhybrid.parallel.task``, which writes the task's log exactly as
``steps/run.py`` does (:mod:`kdhybrid.parallel.core`), then a marker file with the exit
status. The runner waits by watching the markers and, every few seconds, ``squeue`` (not
``sacct``, which needs a database most small clusters lack). A task that leaves the queue
without a marker (killed, timed out, node lost) is a failure, named with Slurm's state from
``scontrol``; a job pending for a reason Slurm never resolves by itself (e.g. more CPUs than
any node of the partition has) is cancelled and reported at once. The failed tasks' logs are
named and the runner exits 1. On SIGINT or SIGTERM it cancels its array (``scancel``) and
waits until the job has left the queue, so nothing is left on the cluster.

The job script, its spec and Slurm's own output file go to ``q/`` beside the log dir
(``exp/x/log/a.JOB.log`` -> ``exp/x/q/a.{sh,json,log}``), as slurm.pl does.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from kdhybrid.parallel.core import (
    Interrupted, JobResult, RunnerCall, RunnerError, UsageError, read_log_status, runner_main,
)

PROG = "steps/slurm.py"
USAGE = (
    "Usage: steps/slurm.py [options] [JOB=1:N] <log-file> <command> [<args>...]\n"
    "e.g.:  steps/slurm.py --mem 4G JOB=1:4 exp/mono/log/align.JOB.log python -m kdhybrid.bin.align_gmm ... data/split4/JOB\n"
    "Runs the jobs on a Slurm cluster as one array job and waits for them; one log per job.\n"
    "Options (mapped to sbatch flags by the config file):\n"
    "  --config <file>        (default: conf/slurm.conf if it exists, else the built-in config)\n"
    "  --mem <size>           memory per CPU, e.g. 4G\n"
    "  --num-threads <n>      CPUs per task\n"
    "  --gpu <n>              GPUs (partition gpu)\n"
    "  --time <limit>         time limit, e.g. 4:00:00\n"
    "  --num-tasks <n>        tasks of each job (e.g. data-parallel ranks started with srun)\n"
    "  --max-jobs-run <n>     at most n jobs of the array at a time"
)

#: The configuration used when there is no conf/slurm.conf and no --config.
DEFAULT_CONFIG = """\
# kdhybrid's built-in Slurm configuration: partitions 'shared' (CPU) and 'gpu'.
command sbatch --export=ALL
option time=* --time $0
option mem=* --mem-per-cpu $0
option mem=0
option num_threads=* --cpus-per-task $0
option num_threads=1 --cpus-per-task 1
option num_tasks=* --ntasks $0
option num_tasks=1
default gpu=0
option gpu=0 -p shared
option gpu=* -p gpu --gres=gpu:$0
"""
DEFAULT_CONFIG_PATH = "conf/slurm.conf"

#: squeue pending reasons that Slurm does not resolve by itself: the job would wait forever.
HOPELESS_REASONS = {
    "PartitionConfig": "the request exceeds what the partition's nodes have (CPUs, memory, GRES)",
    "PartitionNodeLimit": "more nodes than the partition allows",
    "PartitionTimeLimit": "a longer time limit than the partition allows",
    "BadConstraints": "constraints no node satisfies",
    "InvalidAccount": "an invalid account",
    "InvalidQOS": "an invalid QOS",
}


# ----------------------------------------------------------------------------- config


@dataclass
class SlurmConfig:
    """slurm.pl's config file, parsed.

    :param command: the submit command and its fixed flags (``command`` line).
    :param templates: ``option name=* flags``: flags with ``$0`` replaced by the value.
    :param fixed: ``option name=value flags``: flags for that exact value (may be empty).
    :param defaults: ``default name=value``: the value when the option is not given.
    """

    source: str
    command: List[str]
    templates: Dict[str, str] = field(default_factory=dict)
    fixed: Dict[Tuple[str, str], str] = field(default_factory=dict)
    defaults: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, source: str) -> "SlurmConfig":
        """Parse config text; errors name ``source`` and the line."""
        command: Optional[List[str]] = None
        cfg = cls(source=source, command=[])
        for n, raw in enumerate(text.splitlines(), 1):
            line = re.sub(r"\s*#.*", "", raw).strip()
            if not line:
                continue
            m = re.match(r"^command\s+(.+)$", line)
            if m:
                command = shlex.split(m.group(1))
                continue
            m = re.match(r"^option\s+([A-Za-z_][\w]*)=(\S+)\s*(.*)$", line)
            if m:
                name, value, flags = m.groups()
                if value == "*":
                    if "$0" not in flags:
                        raise UsageError(f"{source}:{n}: 'option {name}=*' needs $0 in its flags: {raw.strip()!r}")
                    cfg.templates[name] = flags
                else:
                    cfg.fixed[(name, value)] = flags
                continue
            m = re.match(r"^default\s+([A-Za-z_][\w]*)=(\S+)$", line)
            if m:
                cfg.defaults[m.group(1)] = m.group(2)
                continue
            raise UsageError(f"{source}:{n}: cannot parse {raw.strip()!r} (expected 'command ...', "
                             "'option name=* flags with $0', 'option name=value [flags]' or 'default name=value')")
        if not command:
            raise UsageError(f"{source}: no 'command sbatch ...' line")
        cfg.command = command
        return cfg

    @classmethod
    def load(cls, path: Optional[str] = None) -> "SlurmConfig":
        """The config at ``path``; without one, ``conf/slurm.conf`` when it exists, else
        :data:`DEFAULT_CONFIG`."""
        if path is None:
            if not os.path.isfile(DEFAULT_CONFIG_PATH):
                return cls.parse(DEFAULT_CONFIG, "the built-in config")
            path = DEFAULT_CONFIG_PATH
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise UsageError(f"--config {path}: cannot read it ({e.strerror})") from None
        return cls.parse(text, path)

    def sbatch_flags(self, options: Dict[str, str]) -> List[str]:
        """The sbatch flags for the runner's options (without ``config`` and
        ``max_jobs_run``, which the runner handles itself), defaults applied."""
        values = dict(self.defaults)
        values.update({k: v for k, v in options.items() if k not in ("config", "max_jobs_run")})
        flags: List[str] = []
        for name, value in values.items():
            if (name, value) in self.fixed:
                text = self.fixed[(name, value)]
            elif name in self.templates:
                text = self.templates[name].replace("$0", value)
            else:
                raise UsageError(f"--{name.replace('_', '-')} {value}: not described in {self.source} "
                                 f"(it needs an 'option {name}=* ...' or 'option {name}={value} ...' line)")
            flags += shlex.split(text)
        return flags


# ----------------------------------------------------------------------------- files


@dataclass
class TaskSpec:
    """What a task needs to run its job (written as JSON beside the job script and read
    by :mod:`kdhybrid.parallel.task`): the runner's call, where it was made, the threads for
    the log's accounting line, and where to leave the markers."""

    call: RunnerCall
    cwd: str
    threads: int
    marker_dir: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "TaskSpec":
        d = json.loads(text)
        return cls(call=RunnerCall(**d.pop("call")), **d)


def queue_paths(call: RunnerCall) -> Tuple[Path, str]:
    """The ``q/`` dir for a call's files and their base name: ``exp/x/log/a.JOB.log`` ->
    (``exp/x/q``, ``a``), as slurm.pl places them."""
    log = Path(call.log)
    qdir = log.parent.parent / "q" if log.parent.name == "log" else log.parent / "q"
    name = log.name
    if call.var:
        name = name.replace("." + call.var, "").replace(call.var, "")
    name = re.sub(r"\.[A-Za-z]{1,5}$", "", name) or "job"
    return qdir, name


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` through a temporary name in the same dir and a rename."""
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def marker_path(marker_dir: str, job_id: str, task: int) -> Path:
    """Where task ``task`` of array job ``job_id`` leaves its exit status."""
    return Path(marker_dir) / f"done.{job_id}.{task}"


def job_script(spec_path: Path, sbatch_argv: Sequence[str], command: str) -> str:
    """The batch script: run this task's job through :mod:`kdhybrid.parallel.task` with this
    interpreter and this kdhybrid (the cluster's nodes see the same file system)."""
    import kdhybrid

    root = Path(kdhybrid.__file__).resolve().parents[1]
    return (
        "#!/bin/bash\n"
        f"# Written by {PROG} for: {command}\n"
        f"# Submitted with: {' '.join(shlex.quote(a) for a in sbatch_argv)}\n"
        f"export PYTHONPATH={shlex.quote(str(root))}${{PYTHONPATH:+:$PYTHONPATH}}\n"
        f"exec {shlex.quote(sys.executable)} -m kdhybrid.parallel.task {shlex.quote(str(spec_path))} \"$SLURM_ARRAY_TASK_ID\"\n"
    )


# ----------------------------------------------------------------------------- slurm commands


def _slurm(argv: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run a Slurm command; one that does not answer within ``timeout`` seconds (a busy
    controller) comes back with status -1."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise RunnerError(f"{argv[0]} not found: is this a Slurm submit host? (Debian: apt-get install slurm-client)") from None
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(list(argv), -1, "", f"{argv[0]} did not answer within {timeout:.0f} s")


def queued_tasks(job_id: str) -> Optional[Dict[int, Tuple[str, str]]]:
    """The tasks of array job ``job_id`` still in squeue: {task: (state, reason)}; an empty
    dict once the job has left the queue; None when squeue could not be asked (the caller
    tries again later)."""
    r = _slurm(["squeue", "-h", "-r", "-j", job_id, "-o", "%K|%T|%r"])
    if r.returncode != 0:
        return {} if "Invalid job id" in r.stderr else None
    tasks: Dict[int, Tuple[str, str]] = {}
    for line in r.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[0].isdigit():
            tasks[int(parts[0])] = (parts[1], parts[2])
    return tasks


def task_state(job_id: str, task: int) -> str:
    """Slurm's word on a finished task (``JobState=... Reason=... ExitCode=...`` from
    ``scontrol show job``, kept MinJobAge seconds), or '' when it has none."""
    r = _slurm(["scontrol", "-o", "show", "job", f"{job_id}_{task}"])
    if r.returncode != 0:
        return ""
    found = [m.group(0) for key in ("JobState", "Reason", "ExitCode") for m in [re.search(rf"\b{key}=\S+", r.stdout)] if m]
    return " ".join(found)


def cancel(job_id: str, timeout: float = 60.0) -> bool:
    """``scancel`` the job, then wait until squeue no longer lists it; True when it is gone
    within ``timeout`` seconds."""
    _slurm(["scancel", job_id])
    deadline = time.time() + timeout
    while time.time() < deadline:
        if queued_tasks(job_id) == {}:
            return True
        time.sleep(0.2)
    return False


# ----------------------------------------------------------------------------- waiting


@dataclass
class WaitPolicy:
    """How often the runner looks (seconds). Markers are cheap to look for (one directory
    listing): the runner looks every ``marker_share`` of the time waited so far, between
    ``marker_min`` and ``marker_max``, so a task's end is seen at most that share late.
    squeue costs the controller: first after ``queue_first``, then at doubling intervals up
    to ``queue_max``. A task gone from squeue is given ``vanish_grace`` for its marker to
    appear (file systems such as NFS show files late)."""

    marker_min: float = 0.02
    marker_max: float = 1.0
    marker_share: float = 0.03
    queue_first: float = 0.5
    queue_max: float = 10.0
    vanish_grace: float = 5.0


def _markers(marker_dir: str, job_id: str) -> Dict[int, int]:
    """{task: exit status} of the markers job ``job_id``'s tasks have left so far."""
    prefix = f"done.{job_id}."
    found: Dict[int, int] = {}
    with os.scandir(marker_dir) as it:
        for e in it:
            if e.name.startswith(prefix) and e.name[len(prefix):].isdigit():
                text = Path(e.path).read_text().strip()
                found[int(e.name[len(prefix):])] = int(text) if text.lstrip("-").isdigit() else 1
    return found


def wait_for_tasks(job_id: str, spec: TaskSpec, qlog: Path, policy: WaitPolicy = WaitPolicy()) -> List[JobResult]:
    """Wait until every task of the array has a marker or has left the queue without one;
    returns a result per task in task order (the markers are removed). Raises
    :class:`RunnerError` (after cancelling the job) when Slurm will never start it."""
    call = spec.call
    todo = set(call.jobs)
    results: Dict[int, JobResult] = {}
    gone_since: Dict[int, float] = {}
    start = time.time()
    next_queue, queue_gap = start + policy.queue_first, policy.queue_first
    while todo:
        for task, rc in _markers(spec.marker_dir, job_id).items():
            if task in todo:
                results[task] = JobResult(task, rc, call.log_for(task), time.time() - start)
                marker_path(spec.marker_dir, job_id, task).unlink()
                todo.discard(task)
        if todo and time.time() >= next_queue:
            queued = queued_tasks(job_id)
            if queued is not None:
                for task in sorted(todo):
                    if task in queued:
                        gone_since.pop(task, None)
                        state, reason = queued[task]
                        if state == "PENDING" and reason in HOPELESS_REASONS:
                            cancel(job_id)
                            raise RunnerError(f"Slurm will never start job {job_id} ({qlog.with_suffix('.sh')}): "
                                              f"pending with reason {reason}: {HOPELESS_REASONS[reason]}; cancelled it")
                    elif task not in gone_since:
                        gone_since[task] = time.time()
                    elif time.time() - gone_since[task] >= policy.vanish_grace:
                        log = call.log_for(task)
                        rc = read_log_status(log)
                        note = "" if rc is not None else (
                            f"no status in its log; Slurm: {task_state(job_id, task) or 'no record'}; Slurm's output: {qlog}")
                        results[task] = JobResult(task, 1 if rc is None else rc, log, time.time() - start, note)
                        todo.discard(task)
            queue_gap = min(policy.queue_max, queue_gap * 2)
            next_queue = time.time() + (min(queue_gap, 1.0) if gone_since else queue_gap)
        if todo:
            time.sleep(min(policy.marker_max, max(policy.marker_min, policy.marker_share * (time.time() - start))))
    return [results[j] for j in call.jobs]


# ----------------------------------------------------------------------------- the runner


@contextmanager
def _signals_raise() -> Iterator[None]:
    """Inside: SIGINT and SIGTERM raise :class:`Interrupted` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Inside: SIGINT and SIGTERM wait (delivered on leaving), so a submission is never
    half done when the runner is interrupted."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, sigs)


def submit(cfg: SlurmConfig, call: RunnerCall) -> Tuple[str, TaskSpec, Path]:
    """Write the job script and spec to ``q/`` and submit the array; returns (job id, spec,
    Slurm's output file). Raises :class:`RunnerError` with sbatch's message when it refuses."""
    max_jobs = call.int_option("max_jobs_run")
    threads = call.int_option("num_threads", 1)
    flags = cfg.sbatch_flags(call.options)
    qdir, name = queue_paths(call)
    qdir.mkdir(parents=True, exist_ok=True)
    Path(call.log_for(call.first)).parent.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    spec = TaskSpec(call, cwd, threads, str((qdir / "markers").resolve()))
    Path(spec.marker_dir).mkdir(exist_ok=True)
    spec_path, script, qlog = (qdir / f"{name}.json").resolve(), (qdir / f"{name}.sh").resolve(), (qdir / f"{name}.log").resolve()
    array = f"{call.first}-{call.last}" + (f"%{max_jobs}" if max_jobs else "")
    argv = [*cfg.command, "-J", name, *flags, "--parsable", "--chdir", cwd, "--open-mode=append",
            "-o", str(qlog), "-e", str(qlog), "--array", array, str(script)]
    write_atomic(spec_path, spec.to_json())
    write_atomic(script, job_script(spec_path, argv, call.command_for(call.first)), 0o755)
    r = _slurm(argv)
    if r.returncode != 0:
        raise RunnerError(f"sbatch refused the job: {r.stderr.strip() or r.stdout.strip()}\n"
                          f"  command: {' '.join(shlex.quote(a) for a in argv)}")
    job_id = r.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise RunnerError(f"sbatch printed no job id: {r.stdout!r} {r.stderr!r}")
    return job_id, spec, qlog


def run_slurm(call: RunnerCall, policy: WaitPolicy = WaitPolicy()) -> List[JobResult]:
    """Run every job of ``call`` as one Slurm array job and wait for it; the results are in
    job order. Cancels the job when interrupted (SIGINT/SIGTERM raise :class:`Interrupted`
    after the job has left the queue)."""
    cfg = SlurmConfig.load(call.options.get("config"))
    with _signals_raise():
        job_id = None
        try:
            with _signals_held():
                job_id, spec, qlog = submit(cfg, call)
            return wait_for_tasks(job_id, spec, qlog, policy)
        except Interrupted as e:
            if job_id is None:
                raise
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            gone = cancel(job_id)
            raise Interrupted(e.signum, f"interrupted by signal {e.signum}: cancelled Slurm job {job_id}"
                              + ("" if gone else " (still in squeue after 60 s)")) from None


def main(args: Optional[Sequence[str]] = None) -> int:
    """``slurm.pl``-compatible command line (see :data:`USAGE`)."""
    return runner_main(PROG, USAGE, sys.argv[1:] if args is None else args, run_slurm)
