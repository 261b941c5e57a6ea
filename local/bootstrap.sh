#!/usr/bin/env bash
# Bootstraps the project's virtual environment in .venv with the one pin set that
# works on this stack (see README.md, "Installation"), and the Debian tools the
# recipe needs. Idempotent: a finished venv is left alone unless its inputs changed
# (the Makefile decides that by comparing setup.py with .venv/.kdhybrid-stamp).
#
# Usage: local/bootstrap.sh [--venv .venv] [--python python3] [--no-system]
# e.g.:  local/bootstrap.sh --venv .venv
set -euo pipefail

venv=.venv
python=python3
system=true
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) venv=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --no-system) system=false; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "$0: unknown option $1" >&2; exit 1 ;;
  esac
done

log() { echo "[bootstrap $(date +%H:%M:%S)] $*"; }

# ---- system tools (Debian packages) -----------------------------------------
# sox and the TTS engines build the embedded corpus; the text packages give its
# prompts and LM text; libfst-tools gives OpenFst's fstinfo for independent checks;
# Slurm and munge (about 13 MB; no service is started) let the tests run steps/slurm.py
# against a real single-node cluster (kdhybrid.parallel.localcluster).
apt_pkgs="sox espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
fortunes fortunes-min wordnet-base bible-kjv libfst-tools slurmctld slurmd slurm-client munge"
if $system; then
  missing=""
  for p in $apt_pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "installing Debian packages:$missing"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -q >/dev/null
      apt-get install -y -q --no-install-recommends $missing >/dev/null
    else
      echo "Missing Debian packages:$missing" >&2
      echo "Install them with:  sudo apt-get install -y$missing" >&2
      exit 1
    fi
  fi
fi

# ---- virtual environment -----------------------------------------------------
if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv with $($python --version 2>&1)"
  $python -m venv "$venv"
fi
py="$venv/bin/python"
pyminor=$($py -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')
export PIP_DISABLE_PIP_VERSION_CHECK=1
# pip 24.1+ rejects k2's wheel names (py3.11 is not a valid tag component), so keep
# a pip that still accepts them.
$py -m pip install -q --upgrade "pip>=23,<24.1" wheel "setuptools<70"

# torch first: k2 1.23.4 is built against torch 1.13.1 exactly.
log "installing torch==1.13.1 (large: ~2 GB with its nvidia-* dependencies)"
$py -m pip install -q "torch==1.13.1" "numpy<2"

# k2: the registry has one py3.X-none-any wheel per Python minor version and pip
# reads 'py3.9' as the tag set {py3, 9}, so it may pick any of them. Ask pip which
# links exist and install the one for this interpreter by its address.
if ! $py -c "import k2" 2>/dev/null; then
  log "looking up the k2 1.23.4 wheel for Python $pyminor"
  tmp=$(mktemp -d)
  url=$($py -m pip download -vvv --no-deps "k2==1.23.4" -d "$tmp" 2>&1 \
        | grep -o "https://[^ ]*/k2-1\.23\.4-py${pyminor}-none-any\.whl[^ ]*" | head -n 1 || true)
  rm -rf "$tmp"
  if [ -z "$url" ]; then
    echo "bootstrap: no k2-1.23.4-py${pyminor}-none-any.whl in the package index; k2 1.23.4 supports Python 3.7-3.11" >&2
    exit 1
  fi
  log "installing ${url##*/}"
  $py -m pip install -q --no-deps "${url%%#*}"
fi

log "installing kdhybrid and its pinned dependencies (setup.py)"
$py -m pip install -q -e ".[dev]"

log "verifying imports"
# kaldi_hmm_gmm before kaldifst would not matter with the pinned 1.7.17, but keep the
# order that is safe with either (stack notes: the other order can hang with 1.8).
$py - <<'PY'
import k2, kaldi_hmm_gmm, kaldifst, lhotse, torch, kaldiio, kaldi_native_io, numpy
from importlib.metadata import version
assert torch.__version__.startswith("1.13.1"), torch.__version__
assert lhotse.__version__.startswith("1.31.1"), lhotse.__version__
print(f"ok: torch {torch.__version__}, k2 {version('k2')}, lhotse {lhotse.__version__}, numpy {numpy.__version__}")
PY
log "done"
