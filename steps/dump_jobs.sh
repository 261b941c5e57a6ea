# Sourced by the steps that dump frame-wise posteriors (dump_teacher_posteriors.sh,
# dump_lm_posteriors.sh): the resumable per-job run they share. Needs $nj and $cmd.
#
#   resumable_dump <module> <data-dir> <post-dir> "<options>" <args>...
#
# runs job j as   python -m <module> --job j <options> <data-dir>/split<nj>utt/j <args>... <post-dir>
# and then        python -m <module> --finish <nj> <options> <data-dir> <args>... <post-dir>.
# A finished dump made with the same options, arguments and job count is kept as it is; any
# other starts over; a re-run after a kill redoes only the jobs without dump.JOB.json.
resumable_dump() {
  local module=$1 data=$2 dir=$3 opts=$4
  shift 4
  local made="$opts $* $data nj=$nj" todo="" j
  if [ -f $dir/post.json ] && [ "$(cat $dir/dump_opts 2>/dev/null)" == "$made" ]; then
    echo "$0: $dir is complete"; return 0
  fi
  if [ "$(cat $dir/dump_opts 2>/dev/null)" != "$made" ]; then
    rm -f $dir/post.* $dir/dump.*.json   # different options: start over
    echo "$made" > $dir/dump_opts
  fi
  python -c "from kdhybrid.io.datadir import split_data; split_data('$data', $nj)"
  for j in $(seq $nj); do [ -f $dir/dump.$j.json ] || todo="$todo $j"; done
  echo "$0: jobs to run:${todo:- none}"
  for j in $todo; do
    $cmd $dir/log/dump.$j.log python -m $module --job $j $opts $data/split${nj}utt/$j "$@" $dir &
  done
  wait
  python -m $module --finish $nj $opts $data "$@" $dir
}
