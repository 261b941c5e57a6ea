"""The session's single-node Slurm cluster (``slurm_cluster``), shared by every test that
asks for it: munged, slurmctld and slurmd started once by kdhybrid.parallel.localcluster
in a fresh /tmp directory, and stopped by pid when the session ends, whether its tests
passed or failed. The daemons die with the pytest process also when it is killed (their
parent-death signal), so an interrupted session leaves none behind.

Without the Slurm commands the fixture fails with what to install; it skips only where it
could not install them anyway (not root)."""
import os

import pytest


@pytest.fixture(scope="session")
def slurm_cluster():
    from kdhybrid.parallel.localcluster import DEBIAN_PACKAGES, LocalSlurmCluster, missing_commands

    missing = missing_commands()
    if missing:
        msg = f"Slurm commands not found: {' '.join(missing)}; install the Debian packages {DEBIAN_PACKAGES}"
        if os.geteuid() != 0:
            pytest.skip(msg + " (as root: local/bootstrap.sh does)")
        pytest.fail(msg + " (local/bootstrap.sh does, as root)")
    cluster = LocalSlurmCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
