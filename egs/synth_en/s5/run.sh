#!/usr/bin/env bash
# synth_en: the main kdhybrid recipe on the embedded synthetic English corpus.
#
# Stages (./run.sh --stage N --stop-stage M; each stage reads only what earlier ones wrote):
#   0  build the corpus from the Debian TTS engines and prepare it: lhotse manifests,
#      Kaldi data dirs data/{train,dev,test,test_heldout}, dict dir, LM text
# and the stages every recipe shares (steps/hybrid_recipe.sh):
#   1  lang dir data/lang (word-position-dependent phones, L.fst, L_disambig.fst)
#   2  n-gram LMs (kaldingram): a Kneser-Ney 3-gram that rescores every decode's lattices
#      (data/lang_test_tglarge) and the graph LM pruned from it (data/lang_test_tgsmall);
#      with --fglarge true also a 4-gram (data/lang_test_fglarge); n-gram counts, perplexity
#      and OOV rate on the evaluation sets in data/local/lm/lm.json
#   3  fbank features (conf/fbank.conf) and per-speaker CMVN for every split
#   4  monophone GMM-HMM (flat start, on the 1000 shortest training utterances of the default
#      tier, then aligned on all) -> exp/mono
#   5  triphone GMM-HMMs as Kaldi's recipes: tri1 (deltas), tri2 (LDA+MLLT), tri3 (SAT, fMLLR)
#      -> exp/tri{1,2,3}; alignments exp/tri3_ali (the senone labels of the neural models) and
#      their phone-boundary agreement with the synthesiser's timings (exp/tri3_ali/boundaries.json)
#   6  decoding graph exp/tri3/graph_tgsmall (+ k2 form); tri3 decoded on dev in two passes
#      (speaker-independent, then fMLLR), rescored with tglarge (exp/tri3/decode_tglarge_dev);
#      the neural models' inputs: tri3's LDA+MLLT+fMLLR features data-fmllr-tri3/{train,dev}
#      (Kaldi's nnet1 way; --nnet-feats fbank: fbank + CMVN) and their cuts
#   7  the acoustic model zoo on the tri3 senone labels, frame cross-entropy: exp/{tdnn,
#      tdnn_seed2,blstm} (configs conf/<arch>.yaml); exp/tdnn is also the hard-label baseline
#   8  tri1, tri3 and the zoo decoded on dev and test (k2 lattices, tgsmall; rescored with tglarge)
#   9  teacher ensembles: exp/ensemble_{posterior,logit} (weights by dev CE, or by dev WER
#      among the 3 best by CE with --ens-criterion wer: ~4 min more a fusion), decoded (the
#      posterior-fusion one on dev only; stage 13 decodes it on the rest); oracle
#  10  the logit-fusion teacher's top-10 posteriors of data/train (Kaldi Posterior archives)
#  11  the essence student exp/student_k10 (conf/student.yaml), decoded
#  12  RESULTS.md (python -m kdhybrid.bin.results) from the decode dirs
# Stages 0-12 are the default run (make demo). Three more stages, each run on its own:
#  13  the full grid: students for k in {1,5,10,20,40,all} with and without the hard labels,
#      label interpolation, a member-initialised and a small student, 3 seeds of the
#      baseline and of the default student; every system decoded on dev, test and
#      test_heldout; RESULTS.md rewritten with all rows and the grid's wall time
#  14  sequence training: sMBR copies of the members and the student (numerator alignments,
#      denominator lattices; exp/tdnn_smbr, ..., exp/student_k10_smbr), the logit ensemble of
#      the CE and sMBR members (exp/ensemble_logit_smbr); all decoded; RESULTS.md rewritten
#  15  LM-to-AM distillation (Lee & Chang): LSTM LMs over monophones, senones and subwords
#      (exp/unit_lm/<unit>), their frame-wise posteriors of data/train, the baseline with an
#      auxiliary head for each unit alone and for all three (exp/tdnn_lm_<units>), and label
#      interpolation of the senone LM's targets (exp/tdnn_lminterp_senone), and the essence student
#      with the three LM heads as well (exp/student_k10_lm_monophone_senone_subword); RESULTS.md rewritten
#
# e.g.: ./run.sh                         # stages 0-12 (the demo)
#       ./run.sh --stage 13              # then the full grid
#       ./run.sh --stage 14              # then sequence training
#       ./run.sh --stage 15              # then the LM heads
#       ./run.sh --tier tiny             # stages 0-12 on the small tier
#       ./run.sh --stage 3 --stop-stage 3

stage=0
stop_stage=12       # the demo; stages 13-15 run on their own (--stage N)
tier=default        # corpus tier: tiny | default | large
nj=$(nproc)
tgsmall_prune=1e-5  # relative-entropy threshold of the graph LM, pruned from the rescoring 3-gram (tglarge)
fglarge=false       # true: stage 2 also builds a 4-gram (data/lang_test_fglarge)
fglarge_prune=1e-8  # ... its relative-entropy threshold
rescore_lang=data/lang_test_tglarge  # the LM that rescores every decode (empty: none)
zoo="tdnn tdnn_seed2 blstm"  # stage 7's members: <arch> (conf/<arch>.yaml) or <arch>_seed<N> (that config, seed N)
ens_criterion=ce    # stage 9's ensemble weights: ce (dev frame cross-entropy) or wer (dev WER)
tri1_leaves=        # default: by tier (tiny 200, default 1200, large 2000)
tri1_gauss=         # default: by tier (tiny 1500, default 8000, large 15000)
tri23_leaves=       # tri2 and tri3, default: by tier (tiny 200, default 2000, large 2500)
tri23_gauss=        # default: by tier (tiny 1500, default 12000, large 15000)
mono_subset=        # mono's shortest utterances, default: by tier (tiny all, default 1000, large 2000)
gmm_final=tri3      # the GMM whose alignments label the neural models (tri3, or tri1 to skip tri2/tri3)
nnet_feats=fmllr    # the neural models' inputs: fmllr (tri3's LDA+MLLT+fMLLR features) or fbank (+ CMVN)
seq_models=         # stage 14's networks (default: the zoo's members and student_k10)
seq_criterion=smbr  # stage 14's criterion: smbr | mmi | bmmi
seq_opts=           # stage 14: more steps/train_sequence.sh options, e.g. "--epochs 2 --lr 2e-5"
lm_units="monophone senone subword"  # stage 15's unit LMs
lm_ablation="monophone senone subword monophone,senone,subword"  # stage 15's runs: the heads of each
lm_head_weight=0.3  # stage 15: each head's weight
lm_interp=0.3       # stage 15: the label interpolation's lambda (empty: none)
lm_sweep=           # stage 15: the stability experiment's weights, e.g. "0.1 0.3 0.5 0.7 0.9" (2 runs each)
lm_topk=16          # stage 15: units kept per frame in the frame-wise LM posteriors
lm_student=monophone,senone,subword  # stage 15: the essence student with these LM heads as well (empty: none)
lm_seconds=         # stage 15: each unit LSTM's training budget in seconds, default: by tier (tiny 60, else 600)
speed_perturb=false # the zoo trains on 3-way speed-perturbed copies of data/train, aligned again by the final GMM

. ./path.sh || exit 1
. ./cmd.sh || exit 1
. steps/parse_options.sh || exit 1
set -euo pipefail

log() { echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }
. steps/stage_times.sh  # stage 0's wall time in exp/stage_times.jsonl (hybrid_recipe.sh records the rest)
splits="train dev test test_heldout"
[ $stage -ge 13 ] && [ $stop_stage -lt $stage ] && stop_stage=$stage  # stages 13-15 run on their own
export KDHYBRID_RUN_START=$(date +%s) KDHYBRID_RUN_STAGE=$stage  # for the wall time in RESULTS.md

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  stage_begin 0 "build and prepare synth_en ($tier tier)"
  local/prepare_synth_en.sh --tier $tier --nj $nj data
  stage_end
fi

case $tier in
  tiny) : ${lm_seconds:=60} ${tri1_leaves:=200} ${tri1_gauss:=1500} ${tri23_leaves:=200} ${tri23_gauss:=1500} ;;
  large) : ${lm_seconds:=600} ${tri1_leaves:=2000} ${tri1_gauss:=15000} ${tri23_leaves:=2500} ${tri23_gauss:=15000} ${mono_subset:=2000} ;;
  *) : ${lm_seconds:=600} ${tri1_leaves:=1200} ${tri1_gauss:=8000} ${tri23_leaves:=2000} ${tri23_gauss:=12000} ${mono_subset:=1000} ;;
esac

if [ $stop_stage -ge 1 ]; then
  steps/hybrid_recipe.sh --stage $([ $stage -gt 1 ] && echo $stage || echo 1) --stop-stage $stop_stage --nj $nj \
    --train-cmd "$train_cmd" --decode-cmd "$decode_cmd" --nnet-cmd "${nnet_cmd:-}" --splits "$splits" \
    --tgsmall-prune $tgsmall_prune --fglarge-prune $fglarge_prune --fglarge $fglarge --rescore-lang "$rescore_lang" \
    --tri1-leaves $tri1_leaves --tri1-gauss $tri1_gauss \
    --tri2-leaves $tri23_leaves --tri2-gauss $tri23_gauss --tri3-leaves $tri23_leaves --tri3-gauss $tri23_gauss \
    --mono-subset "$mono_subset" --gmm-final $gmm_final --nnet-feats $nnet_feats --speed-perturb $speed_perturb \
    --zoo "$zoo" --seq-models "$seq_models" --seq-criterion $seq_criterion --seq-opts "$seq_opts" \
    --lm-units "$lm_units" --lm-ablation "$lm_ablation" --lm-head-weight $lm_head_weight --lm-interp "$lm_interp" --lm-sweep "$lm_sweep" --lm-seconds $lm_seconds --lm-topk $lm_topk --lm-student "$lm_student" --ens-criterion $ens_criterion --phone-timings corpus/synth_en_$tier/meta/train.utts.jsonl
fi

log "Done."
