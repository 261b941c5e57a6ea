"""A single-node Slurm cluster on this machine, for tests and benchmarks.

Starts ``munged`` (its own key, socket and pid file), ``slurmctld`` and ``slurmd`` from a
``slurm.conf`` written into one temporary directory, all in the foreground as children of
this process, so that they are known by pid and stopped by pid. Each daemon is started with
the parent-death signal set (``prctl(PR_SET_PDEATHSIG, SIGTERM)``), so the kernel stops it
when the process that started it dies in any way, a SIGKILL included: an interrupted test
session leaves no daemon behind (only its directory in /tmp). Strictly, the signal comes
when the *thread* that started the daemons ends: start the cluster from a thread that
lives as long as it should (the main thread, as pytest's fixtures do).

Needs root (slurmd runs jobs as their submitting user) and the Debian packages slurmctld,
slurmd, slurm-client and munge (``local/bootstrap.sh`` installs them). No systemd is used.
The facts behind the configuration (partitions ``shared`` and ``gpu`` as Kaldi's slurm.pl
expects, scheduling without delays, no accounting database) are in the stack notes.

e.g.::

    with LocalSlurmCluster.start() as cluster:
        subprocess.run(["sbatch", "--wrap", "hostname"], env=cluster.env())
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

#: The commands a cluster needs; their absence is reported by name.
REQUIRED_COMMANDS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "srun", "sinfo")
DEBIAN_PACKAGES = "slurmctld slurmd slurm-client munge"
_PR_SET_PDEATHSIG = 1


class ClusterError(RuntimeError):
    """The cluster could not be started; the message names the daemon and quotes its log."""


#: Where Debian puts the daemons; a PATH without them is common (users, clean shells, CI).
_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def command_path(name: str) -> Optional[str]:
    """The full path of a command: on PATH, else in the sbin dirs; None when neither has it."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN_DIRS))


def missing_commands() -> List[str]:
    """The commands of :data:`REQUIRED_COMMANDS` found neither on PATH nor in the sbin dirs."""
    return [c for c in REQUIRED_COMMANDS if command_path(c) is None]


def _die_with_parent() -> None:
    """preexec_fn: ask the kernel to send SIGTERM when the starting process dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _free_ports(n: int) -> List[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def node_line(mem_reserve_mb: int = 1024) -> str:
    """This machine's ``NodeName=...`` line as ``slurmd -C`` prints it, with RealMemory
    lowered by ``mem_reserve_mb`` (a node that reports less memory than configured is
    drained)."""
    out = subprocess.run([command_path("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("NodeName=")), None)
    if line is None:
        raise ClusterError(f"slurmd -C printed no NodeName line: {out!r}")
    fields = []
    for f in line.split():
        if f.startswith("RealMemory="):
            f = f"RealMemory={max(256, int(f.split('=', 1)[1]) - mem_reserve_mb)}"
        fields.append(f)
    return " ".join(fields)


def write_slurm_conf(d: Path, munge_socket: Path, ctld_port: int, slurmd_port: int) -> Path:
    """A slurm.conf for one node (this host) with everything under ``d``; returns its path."""
    host = socket.gethostname()
    node = node_line()
    fields = dict(f.split("=", 1) for f in node.split())
    node_name = fields["NodeName"]
    # Without a default, a job without --mem gets the whole node's memory (CR_Core_Memory)
    # and jobs run one at a time.
    mem_per_cpu = int(fields["RealMemory"]) // int(fields.get("CPUs", "1"))
    conf = f"""# Single-node cluster written by kdhybrid.parallel.localcluster
ClusterName=kdhybrid
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={d}/jobcomp.txt
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU={mem_per_cpu}
MailProg=/bin/true
ReturnToService=2
KillWait=2
MinJobAge=120
{node} State=UNKNOWN
PartitionName=shared Nodes={node_name} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={node_name} MaxTime=INFINITE State=UP
"""
    path = d / "slurm.conf"
    path.write_text(conf)
    return path


@dataclass
class LocalSlurmCluster:
    """A running single-node cluster: its directory, config and daemons (by pid)."""

    root: Path
    conf: Path
    munge_socket: Path
    procs: Dict[str, subprocess.Popen] = field(default_factory=dict)

    def env(self, base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        """``base`` (default: this process's environment) with ``SLURM_CONF`` set to the cluster's."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        return env

    @property
    def pids(self) -> Dict[str, int]:
        """The daemons' pids by name (munged, slurmctld, slurmd)."""
        return {name: p.pid for name, p in self.procs.items()}

    @classmethod
    def start(cls, parent: Optional[Path] = None, timeout: float = 30.0) -> "LocalSlurmCluster":
        """Start munged, slurmctld and slurmd in a new temporary directory under ``parent``
        (default /tmp) and wait until the node is idle. Raises :class:`ClusterError` (with the
        daemon's log) when one does not come up; nothing is left running then."""
        missing = missing_commands()
        if missing:
            raise ClusterError(f"Slurm commands not found: {' '.join(missing)} "
                               f"(install the Debian packages {DEBIAN_PACKAGES}: local/bootstrap.sh does, as root)")
        # munged refuses a socket whose directory or any parent is not world-executable.
        root = Path(tempfile.mkdtemp(prefix="kdslurm.", dir=str(parent or "/tmp")))
        root.chmod(0o755)
        for sub in ("state", "spool", "munge"):
            (root / sub).mkdir()
        (root / "munge").chmod(0o755)
        sock = root / "munge" / "sock"
        if len(str(sock)) >= 108:
            raise ClusterError(f"munge socket path {sock} is too long for a Unix socket (108 bytes)")
        ctld_port, slurmd_port = _free_ports(2)
        conf = write_slurm_conf(root, sock, ctld_port, slurmd_port)
        cluster = cls(root=root, conf=conf, munge_socket=sock)
        try:
            subprocess.run([command_path("mungekey"), "--create", f"--keyfile={root}/munge/munge.key"], check=True, capture_output=True)
            os.chmod(root / "munge" / "munge.key", 0o600)
            cluster._spawn("munged", [command_path("munged"), "-F", f"--key-file={root}/munge/munge.key", f"--socket={sock}",
                                      f"--pid-file={root}/munge/munged.pid", f"--log-file={root}/munge/munged.log",
                                      f"--seed-file={root}/munge/munged.seed"], root / "munge" / "munged.log")
            cluster._wait_for(lambda: sock.exists(), "munged", root / "munge" / "munged.log", timeout)
            cluster._spawn("slurmctld", [command_path("slurmctld"), "-D", "-f", str(conf)], root / "slurmctld.log")
            cluster._spawn("slurmd", [command_path("slurmd"), "-D", "-f", str(conf)], root / "slurmd.log")
            cluster._wait_for(cluster._node_idle, "slurmd", root / "slurmd.log", timeout)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _spawn(self, name: str, argv: List[str], log: Path) -> None:
        out = open(self.root / f"{name}.stdout", "wb")
        self.procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                            env=self.env(), start_new_session=True, preexec_fn=_die_with_parent)
        out.close()

    def _node_idle(self) -> bool:
        r = subprocess.run(["sinfo", "-h", "-p", "shared", "-N", "-o", "%t"], capture_output=True, text=True, env=self.env())
        return r.returncode == 0 and r.stdout.strip() == "idle"

    def _wait_for(self, ready, name: str, log: Path, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for n, p in self.procs.items():
                if p.poll() is not None:
                    raise ClusterError(f"{n} exited with status {p.returncode} while starting:\n{self._tail(n)}")
            if ready():
                return
            time.sleep(0.1)
        raise ClusterError(f"{name} not ready after {timeout:.0f} s; its log {log}:\n{self._tail(name)}")

    def _tail(self, name: str, lines: int = 15) -> str:
        text = ""
        for f in (self.root / f"{name}.log", self.root / "munge" / f"{name}.log", self.root / f"{name}.stdout"):
            if f.is_file():
                text += f"--- {f}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every job, then stop the daemons by pid (SIGTERM, SIGKILL after ``timeout``
        seconds) in the reverse order of their start, and remove the directory."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            subprocess.run(["scancel", "--full", "--quiet", "--user", str(os.getuid())], env=self.env(),
                           capture_output=True, timeout=timeout)
        for name in reversed(list(self.procs)):
            p = self.procs[name]
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "LocalSlurmCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
