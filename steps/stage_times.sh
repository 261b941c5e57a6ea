# Sourced by recipes (run.sh, steps/hybrid_recipe.sh) after path.sh: each stage's wall time.
#   stage_begin N TITLE   logs "Stage N: TITLE" and closes the stage before it, if any
#   stage_end             closes the current stage (the script's exit with status 0 does it too)
# A closed stage appends its record to exp/stage_times.jsonl (python -m kdhybrid.bin.stage_time;
# the last record of a stage counts); a stage that fails records nothing.
_stage_n=
_stage_title=
_stage_t0=
stage_begin() {
  stage_end
  _stage_n=$1; _stage_title=$2; _stage_t0=$(date +%s)
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) Stage $1: $2"
}
stage_end() {
  [ -n "$_stage_n" ] || return 0
  python -m kdhybrid.bin.stage_time --stage "$_stage_n" --seconds $(( $(date +%s) - _stage_t0 )) \
    --title "$_stage_title" exp/stage_times.jsonl
  _stage_n=
}
trap '_stage_rc=$?; [ $_stage_rc = 0 ] && stage_end; exit $_stage_rc' EXIT
