#!/usr/bin/env bash
# Makes the denominator lattices of sequence-discriminative training (Kaldi's make_denlats.sh):
# a unigram LM of the training transcripts, its HCLG (the tree of --tree-dir) in k2 form, and the
# lattices of every training utterance searched with the source model (any model dir: final.pt,
# final.pkl or ensemble.json), each arc's frame, pdf, transition-id and graph score kept so that
# training rescores them instead of searching again (kdhybrid.decode.denlats).
# Writes <denlats-dir>/{lat.JOB.pt, denlats.JOB.json, denlats.json, lang_unigram/, graph/, log/}.
# Jobs are atomic and resumable: a re-run redoes only the jobs without denlats.JOB.json.

# Begin configuration section.
nj=2
cmd=steps/run.py
acwt=0.1
beam=13.0
lattice_beam=7.0
max_active=5000
min_active=200
batch_frames=2500
search_frames=1500
tree_dir=       # GMM dir (final.pkl) whose tree the model's pdfs follow; default: <src-model-dir> if it has final.pkl
graph_dir=      # use this graph dir (HCLG.k2.pt, graph.json, phones/) instead of making the unigram one
# End configuration section.

help_message="Usage: $0 [options] <data-dir> <lang-dir> <src-model-dir> <denlats-dir>
e.g.: $0 --nj 4 --tree-dir exp/tri1 data/train data/lang exp/tdnn exp/tdnn_denlats
Options:
  --acwt <float>           acoustic scale (default: $acwt)
  --beam, --lattice-beam, --max-active   search beams (Kaldi's meanings; defaults $beam, $lattice_beam, $max_active)
  --tree-dir <dir>         the GMM dir of the model's tree and transition model (final.pkl)
  --graph-dir <dir>        an existing graph to search instead of the unigram one"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 4 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
data=$1; lang=$2; src=$3; dir=$4
for f in $data/feats.scp $data/text $lang/words.txt $lang/phones/silence.csl; do
  [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }
done
if [ ! -f $src/final.pt ] && [ ! -f $src/final.pkl ] && [ ! -f $src/ensemble.json ]; then
  echo "$0: no model in $src (final.pt, final.pkl or ensemble.json)" 1>&2; exit 1
fi
mkdir -p $dir/log
if [ -z "$graph_dir" ]; then
  tree_dir=${tree_dir:-$src}
  [ -f $tree_dir/final.pkl ] || { echo "$0: no $tree_dir/final.pkl: give --tree-dir, the GMM dir of the model's tree" 1>&2; exit 1; }
  graph_dir=$dir/graph
  if [ ! -f $graph_dir/HCLG.k2.pt ]; then
    cut -s -d' ' -f2- $data/text > $dir/lm_text.txt   # (empty transcripts left out)
    steps/train_lm.sh --order 1 $dir/lm_text.txt $lang $dir/lm/unigram.arpa
    steps/format_lm.sh $lang $dir/lm/unigram.arpa $dir/lang_unigram
    steps/mkgraph.sh $dir/lang_unigram $tree_dir $graph_dir
  fi
fi
for f in $graph_dir/HCLG.k2.pt $graph_dir/graph.json $graph_dir/phones/silence.csl; do
  [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }
done
opts="--acwt $acwt --beam $beam --lattice-beam $lattice_beam --max-active $max_active --min-active $min_active"
opts="$opts --batch-frames $batch_frames --search-frames $search_frames"
if [ "$(cat $dir/denlats_opts 2>/dev/null)" != "$opts $graph_dir $src $data nj=$nj" ]; then
  rm -f $dir/lat.*.pt $dir/denlats.*.json $dir/denlats.json   # different options: start over
  echo "$opts $graph_dir $src $data nj=$nj" > $dir/denlats_opts
fi
if [ -f $dir/denlats.json ]; then echo "$0: $dir is complete"; exit 0; fi
python -c "from kdhybrid.io.datadir import split_data; split_data('$data', $nj)"
todo=""
for j in $(seq $nj); do [ -f $dir/denlats.$j.json ] && [ -f $dir/lat.$j.pt ] || todo="$todo $j"; done
echo "$0: jobs to run:${todo:- none}"
for j in $todo; do
  OMP_NUM_THREADS=1 $cmd $dir/log/make_denlats.$j.log python -m kdhybrid.bin.make_denlats --job $j $opts \
    $graph_dir $data/split${nj}utt/$j $src $dir &
done
fail=0; for j in $todo; do wait -n || fail=$((fail + 1)); done
[ $fail -eq 0 ] || { echo "$0: $fail job(s) failed, see $dir/log/make_denlats.*.log" 1>&2; exit 1; }
python -m kdhybrid.bin.make_denlats --finish $nj $opts $graph_dir $data $src $dir
