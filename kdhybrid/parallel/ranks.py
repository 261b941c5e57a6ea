"""Data-parallel ranks: where a training process finds its rank, the world size and the
rendezvous address, and how the ranks are started.

Two ways to start N ranks of ``python -m <module> <args>`` (:func:`launch_ranks`):

* on this machine: N child processes with torchrun's variables (RANK, LOCAL_RANK,
  WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT=a free port). torch 1.13's ``torchrun``
  fails on Python 3.11 (its ``Std`` IntFlag lookup returns None for 0 under 3.11's enum
  rules), hence this small launcher;
* inside a Slurm job (a batch script, e.g. a ``steps/slurm.py --num-tasks N`` job):
  ``srun --ntasks N``, one rank per task, on as many nodes as the job has. Each rank then
  reads Slurm's variables (:func:`rendezvous_from_env`): SLURM_PROCID (rank),
  SLURM_STEP_NUM_TASKS (world size), SLURM_LOCALID (local rank), and as the rendezvous the
  first node of SLURM_STEP_NODELIST (where srun puts rank 0) at a port derived from the
  job and step ids. MASTER_ADDR and MASTER_PORT, when set, win.

The process group's backend follows the device the model trains on (:func:`backend_for`):
gloo for CPU tensors, nccl for CUDA tensors.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence

#: MASTER_PORT under Slurm without one given: PORT_BASE + (job id * 16 + step id) % PORT_SPAN.
PORT_BASE, PORT_SPAN = 20000, 20000


class RendezvousError(ValueError):
    """The environment names a data-parallel run but not all of it; the message says which variable."""


@dataclass(frozen=True)
class Rendezvous:
    """One rank's place in a data-parallel run.

    :param source: where it came from: ``env`` (torchrun's variables) or ``slurm``.
    """

    rank: int
    local_rank: int
    world_size: int
    master_addr: str
    master_port: int
    source: str

    @property
    def init_method(self) -> str:
        """The ``init_method`` of ``torch.distributed.init_process_group``."""
        return f"tcp://{self.master_addr}:{self.master_port}"


def expand_hostlist(spec: str) -> List[str]:
    """Slurm's compressed host list in full: ``gpu[01-03,07],cpu5`` ->
    ``["gpu01", "gpu02", "gpu03", "gpu07", "cpu5"]`` (zero padding kept)."""
    hosts: List[str] = []
    for m in re.finditer(r"([^,\[]+)(?:\[([^\]]*)\])?([^,]*)", spec):
        prefix, ranges, suffix = m.group(1), m.group(2), m.group(3)
        if ranges is None:
            hosts.append(prefix + suffix)
            continue
        for part in ranges.split(","):
            a, _, b = part.partition("-")
            if not a.isdigit() or (b and not b.isdigit()):
                raise RendezvousError(f"bad host list {spec!r}: range {part!r}")
            width = len(a)
            for i in range(int(a), int(b or a) + 1):
                hosts.append(f"{prefix}{i:0{width}d}{suffix}")
    return hosts


def _int(env: Mapping[str, str], name: str) -> int:
    v = env.get(name)
    if v is None or not v.isdigit():
        raise RendezvousError(f"{name} is {'not set' if v is None else repr(v)}: a non-negative integer is needed")
    return int(v)


def rendezvous_from_env(env: Optional[Mapping[str, str]] = None) -> Optional[Rendezvous]:
    """This process's rank in a data-parallel run, or None when it runs alone.

    torchrun's variables (RANK and WORLD_SIZE, with MASTER_ADDR and MASTER_PORT) come first;
    else, in a task of a Slurm step (SLURM_STEP_NUM_TASKS and SLURM_PROCID set, as srun sets
    them; a batch script itself has no step variables), Slurm's. Raises
    :class:`RendezvousError` naming a missing or malformed variable."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        world = _int(env, "WORLD_SIZE")
        if world <= 1:
            return None
        if "MASTER_ADDR" not in env:
            raise RendezvousError("WORLD_SIZE > 1 but MASTER_ADDR is not set")
        return Rendezvous(_int(env, "RANK"), _int(env, "LOCAL_RANK") if "LOCAL_RANK" in env else 0, world,
                          env["MASTER_ADDR"], _int(env, "MASTER_PORT"), "env")
    if "SLURM_STEP_NUM_TASKS" in env and "SLURM_PROCID" in env:
        world = _int(env, "SLURM_STEP_NUM_TASKS")
        if world <= 1:
            return None
        if "MASTER_ADDR" in env:
            addr = env["MASTER_ADDR"]
        else:
            nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or ""
            hosts = expand_hostlist(nodes)
            if not hosts:
                raise RendezvousError("SLURM_STEP_NODELIST is not set: cannot tell where rank 0 runs")
            addr = hosts[0]
        if "MASTER_PORT" in env:
            port = _int(env, "MASTER_PORT")
        else:
            port = PORT_BASE + (_int(env, "SLURM_JOB_ID") * 16 + _int(env, "SLURM_STEP_ID")) % PORT_SPAN
        return Rendezvous(_int(env, "SLURM_PROCID"), _int(env, "SLURM_LOCALID") if "SLURM_LOCALID" in env else 0,
                          world, addr, port, "slurm")
    return None


def backend_for(device_type: str) -> str:
    """The process group backend for tensors on ``device_type``: nccl for ``cuda``, else gloo."""
    return "nccl" if device_type == "cuda" else "gloo"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_slurm_batch(env: Optional[Mapping[str, str]] = None) -> bool:
    """True in a Slurm job's batch script (or salloc shell), where srun starts job steps;
    False outside Slurm and inside a step's task."""
    env = os.environ if env is None else env
    return "SLURM_JOB_ID" in env and "SLURM_STEP_ID" not in env


def srun_argv(nproc: int, command: Sequence[str], env: Optional[Mapping[str, str]] = None) -> List[str]:
    """The srun command line that starts ``command`` as ``nproc`` ranks in this Slurm job.
    Raises :class:`RendezvousError` when the job has fewer tasks than ``nproc``."""
    env = os.environ if env is None else env
    have = int(env.get("SLURM_NTASKS", "1"))
    if nproc > have:
        raise RendezvousError(
            f"{nproc} ranks wanted but Slurm job {env.get('SLURM_JOB_ID')} has {have} task(s) (SLURM_NTASKS): "
            f"submit it with {nproc} tasks (steps/slurm.py --num-tasks {nproc}, or sbatch --ntasks {nproc})")
    return ["srun", "--ntasks", str(nproc), "--kill-on-bad-exit=1", *command]


def launch_local(nproc: int, command: Sequence[str]) -> int:
    """Start ``command`` as ``nproc`` local ranks (torchrun's variables) and wait; when one
    fails the others are stopped. Returns the first non-zero exit status, else 0."""
    port = free_port()
    procs = []
    for rank in range(nproc):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_WORLD_SIZE=str(nproc),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen(list(command), env=env))
    rc = 0
    while procs:
        for pr in list(procs):
            r = pr.poll()
            if r is None:
                continue
            procs.remove(pr)
            if r != 0 and rc == 0:
                rc = r
                for other in procs:
                    other.terminate()
        time.sleep(0.2)
    return rc


def launch_ranks(nproc: int, module: str, args: Sequence[str]) -> int:
    """Run ``python -m module args`` as ``nproc`` data-parallel ranks: through srun inside
    a Slurm job (:func:`in_slurm_batch`), else as local processes. Returns the exit status."""
    command = [sys.executable, "-m", module, *args]
    if in_slurm_batch():
        argv = srun_argv(nproc, command)
        print(f"launch: {nproc} ranks in Slurm job {os.environ['SLURM_JOB_ID']}: {' '.join(argv[:4])} ...", file=sys.stderr, flush=True)
        return subprocess.call(argv)
    return launch_local(nproc, command)
