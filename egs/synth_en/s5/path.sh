# Puts kdhybrid's virtualenv and the repository on the paths (sourced by run.sh and steps).
# The repository root: $KDHYBRID_ROOT when set (a recipe copied elsewhere), else ../../..
KDHYBRID_ROOT=${KDHYBRID_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
if [ ! -x "$KDHYBRID_ROOT/.venv/bin/python" ]; then
  echo "path.sh: $KDHYBRID_ROOT/.venv is missing: run 'make venv' in $KDHYBRID_ROOT" 1>&2
  return 1
fi
export PATH="$KDHYBRID_ROOT/.venv/bin:$PWD/steps:$PATH"
export PYTHONPATH="$KDHYBRID_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export LC_ALL=C
