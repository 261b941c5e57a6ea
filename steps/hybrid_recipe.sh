#!/usr/bin/env bash
# The stages every kdhybrid recipe shares, after its own corpus preparation (stage 0 of
# egs/<corpus>/s5/run.sh, which writes data/{train,dev,...}, data/local/dict and
# data/local/lm/lm_text.txt). Run from the recipe dir; egs/*/s5/run.sh calls it.
#   1  lang dir data/lang (word-position-dependent phones, L.fst, L_disambig.fst)
#   2  n-gram LMs (kaldingram), Kaldi's pair: a Kneser-Ney 3-gram (data/lang_test_tglarge) that
#      rescores every decode's lattices, and the graph LM pruned from it (data/lang_test_tgsmall;
#      --tgsmall-prune); optionally (--fglarge true) a 4-gram (data/lang_test_fglarge); n-gram
#      counts, perplexity and OOV rate of each on the evaluation sets in the log and
#      data/local/lm/lm.json
#   3  fbank features (conf/fbank.conf) and per-speaker CMVN for every split
#   4  monophone GMM-HMM (flat start; on the --mono-subset shortest utterances when set,
#      then aligned on all of data/train -> exp/mono_ali) -> exp/mono
#   5  the triphone GMM-HMMs, as Kaldi's recipes: tri1 (deltas) -> exp/tri1_ali; with
#      --gmm-final tri3 (the default) also tri2 (LDA+MLLT, exp/tri2, exp/tri2_ali) and tri3
#      (SAT with fMLLR, exp/tri3); then the final system's alignments exp/<gmm-final>_ali and
#      exp/<gmm-final>_ali_dev (the senone labels of the neural models) and, when the corpus
#      has them, phone-boundary agreement with reference timings; with --speed-perturb true also
#      the 3-way speed-perturbed training data, aligned by the final GMM; with fbank inputs
#      (--nnet-feats fbank, or --gmm-final tri1) the neural models' lhotse cuts data/cuts
#   6  decoding graph exp/<gmm-final>/graph_tgsmall; the final GMM decoded on --gmm-decode-sets
#      (tri3 in two passes, steps/decode_fmllr.sh), lattices rescored with --rescore-lang when set;
#      with fMLLR inputs (--nnet-feats fmllr and tri3, the default) the neural models' data dirs
#      data-fmllr-tri3/{train,dev} (steps/make_fmllr_feats.sh; dev adapted to the first-pass
#      transcript, as every test set is when a neural model decodes it) and their cuts
#   7  the acoustic model zoo on the final GMM's senone labels, frame cross-entropy, each
#      trained until dev cross-entropy stops improving: exp/<arch> for each of --zoo (configs
#      conf/<arch>.yaml); their learning curves in exp/zoo_learning_curves.png
#   8  decode tri1 (its own graph), the final GMM and the zoo on --decode-sets (k2 lattices, tgsmall; rescored with --rescore-lang)
#   9  teacher ensembles of the zoo: posterior fusion (exp/ensemble_posterior) and logit
#      fusion (exp/ensemble_logit), weights by dev frame CE (--ens-criterion wer: the
#      --ens-candidates best by CE are decoded on dev and the lowest WER wins); decoded; the
#      oracle of every pair/triple on dev (exp/oracle_dev.json)
#  10  the teacher's top-k posteriors of the training data (exp/ensemble_logit/post_k<topk>_train)
#  11  the default essence student (conf/student.yaml, multitask on hard + top-k labels)
#      -> exp/student_k<topk>, decoded
#  12  RESULTS.md from the decode dirs (python -m kdhybrid.bin.results), with the zoo's
#      learning curves beside it (learning_curves.png)
#  13  the full grid (not in the default run): top-k students for k in {1,5,10,20,40,all}
#      with and without hard labels, label interpolation, member-initialised and small
#      students, 3 seeds of baseline and default student; all decoded on --grid-sets;
#      RESULTS.md rewritten with every row
#  14  sequence training (not in the default run; after stage 11 or 13): for each of
#      --seq-models (default: every member of the zoo and the default student)
#      its numerator alignment of the training data (steps/align_nnet.sh, exp/<m>_ali), its
#      denominator lattices (steps/make_denlats.sh, exp/<m>_denlats) and a copy fine-tuned
#      with --seq-criterion (steps/train_sequence.sh: exp/<m>_<criterion>, dev WER each
#      epoch), decoded; the logit-fusion ensemble of the zoo and its sequence-trained members,
#      weights searched over all of them (exp/ensemble_logit_<criterion>), decoded;
#      RESULTS.md rewritten with their rows and claims
#  15  LM-to-AM distillation (Lee & Chang; not in the default run, after stage 8): unit LMs
#      of --lm-units on the LM text (steps/train_unit_lm.sh, exp/unit_lm/<unit>), their
#      frame-wise posteriors of the training data (steps/dump_lm_posteriors.sh), the
#      baseline's architecture and config trained with auxiliary heads, one run per entry of
#      --lm-ablation (exp/<baseline>_lm_<units>), and label interpolation of the senone LM's
#      targets into the main head (exp/<baseline>_lminterp_senone); with --lm-sweep, the
#      stability experiment: the senone head at each weight (exp/<baseline>_lm_senone_w<w>)
#      against interpolation at each lambda (exp/<baseline>_lminterp_senone_l<w>); all decoded;
#      RESULTS.md rewritten with their rows and claims

# Begin configuration section.
stage=1
stop_stage=100
nj=2
train_cmd=steps/run.py
decode_cmd=steps/run.py
nnet_cmd=           # neural network training: empty trains here (progress on the console); e.g.
                    # "steps/slurm.py --num-threads 2" makes each training one cluster job
splits="train dev test"
tgsmall_prune=1e-5  # relative-entropy threshold of the graph LM, pruned from the rescoring 3-gram tglarge: on synth_en
                    # 1e-5 gives a 1.1 M-arc HCLG (mkgraph ~40 s), 3e-6 3.7 M (~2 min), 1e-6 7.1 M (~4 min)
fglarge=false       # also a 4-gram (data/lang_test_fglarge; --rescore-lang data/lang_test_fglarge to use it)
fglarge_prune=1e-8  # ... its relative-entropy threshold
tri1_leaves=1200
tri1_gauss=8000
tri2_leaves=2000    # tri2 (LDA+MLLT) and tri3 (SAT)
tri2_gauss=12000
tri3_leaves=2000
tri3_gauss=12000
tri23_iters=35      # EM iterations of tri2 and tri3 (Kaldi's 35)
gmm_final=tri3      # the GMM whose alignments label the neural models: tri3 or tri1
mono_subset=        # train mono on this many shortest utterances (Kaldi's --shortest); empty: all
gmm_beam=10         # alignment beams of the triphone systems (Kaldi's 10; the retry beam is
gmm_retry_beam=100  # only used for utterances that fail at --gmm-beam)
gmm_decode_sets="dev"  # stage 6's GMM decodes
speed_perturb=false # the zoo (the teachers) trains on 0.9/1.0/1.1 speed-perturbed copies of data/train, aligned
                    # again by the final GMM (stage 5: data/train_sp, exp/<gmm-final>_ali_sp; <nnet-data>/cuts_sp).
                    # Off: on synth_en's default tier the fMLLR TDNN gained frame accuracy (dev 51.7% against 50.5%)
                    # but no WER (dev 25.73 against 25.77, test 25.48 against 25.68 and 26.26 for two seeds, p = 0.81)
                    # for 1.7x the time an epoch (~330 s against ~190 s) and ~7 min of perturbation and realignment
nnet_feats=fmllr    # the neural models' inputs: fmllr, the final GMM's LDA+MLLT+fMLLR features (Kaldi's nnet1
                    # recipes; data-fmllr-tri3/<set>; on synth_en's default tier a TDNN's dev frame accuracy after
                    # 3 epochs rose from 28.1% to 38.2%), or fbank (data/<set>, fbank + per-speaker CMVN); with
                    # --gmm-final tri1 (no speaker adaptation) always fbank
gmm_seed=1          # seeds the GMM stages' Gaussian mix-up (same corpus and seed: byte-identical models)
zoo="tdnn tdnn_seed2 blstm"  # stage 7: <arch> (conf/<arch>.yaml) or <arch>_seed<N>; the first is the baseline
decode_sets="dev test"   # the core's test sets (stages 8-12)
grid_sets="dev test test_heldout"  # stage 13 decodes every system of the table on these
decode_opts="--beam 13 --max-active 7000 --lattice-beam 6"  # neural models' decodes (Kaldi's decode.sh defaults)
gmm_decode_opts="--beam 13 --max-active 7000 --lattice-beam 6"  # GMM decodes (the same)
nnet_acwt=0.125     # search acoustic scale of neural models and ensembles (GMMs: 0.1): near their best LM weight
                    # (8-9 on dev), so the lattices hold the paths rescoring wants. On synth_en's default tier the
                    # fMLLR TDNN's dev WER (tglarge): acwt 0.25, beam 10, max-active 2000, lattice-beam 4: 30.07;
                    # acwt 0.125, lattice-beam 6: 26.46; and beam 13, max-active 7000: 25.77 (twice the search time)
scoring_opts="--min-lmwt 3 --max-lmwt 17"
ens_criterion=ce    # the ensemble weights' criterion: ce (dev frame cross-entropy) or wer
ens_candidates=3    # weight vectors decoded on dev when --ens-criterion wer
rescore_lang=data/lang_test_tglarge  # the large LM that rescores every decode's lattices (n-best); empty: none
grid_full=true      # stage 13 with the full-distribution (k = all) dump and students
small_hidden=128    # the small student of stage 13
small_layers=4
topk=10             # the dump's and the default student's k
student_config=conf/student.yaml
seq_models=         # stage 14's networks; default: the zoo's members and student_k<topk>
seq_criterion=smbr  # stage 14's criterion: smbr | mmi | bmmi
seq_opts=           # more steps/train_sequence.sh options for stage 14, e.g. "--epochs 2 --lr 2e-5"
lm_units="monophone senone subword"  # stage 15's unit LMs
lm_ablation="monophone senone subword monophone,senone,subword"  # stage 15's runs: the heads of each (comma-separated)
lm_head_weight=0.3  # stage 15: every head's weight alpha_u
lm_interp=0.3       # stage 15: the label interpolation's lambda (empty: no interpolation run)
lm_seconds=600      # stage 15: each unit LSTM's training budget (wall clock)
lm_sweep=           # stage 15: head weights = interpolation lambdas of the stability experiment, e.g. "0.1 0.3 0.5 0.7 0.9"
lm_topk=16          # stage 15: units kept per frame in the dumps
lm_student=monophone,senone,subword  # stage 15: the essence student (k=$topk) with these LM heads as well (empty: none)
phone_timings=      # corpus meta jsonl with reference phone timings (synth_en), optional
# End configuration section.

help_message="Usage: $0 [options]   (from a recipe dir: egs/<corpus>/s5)
e.g.: $0 --stage 4 --stop-stage 5 --tri1-leaves 200 --tri1-gauss 1500"

. steps/parse_options.sh || exit 1
set -euo pipefail

log() { echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }
. steps/stage_times.sh  # stage_begin: each finished stage's wall time in exp/stage_times.jsonl (RESULTS.md shows them)
run_start=${KDHYBRID_RUN_START:-$(date +%s)}  # run.sh exports its own start (stage 0 included)

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  stage_begin 1 "lang dir"
  steps/prepare_lang.sh data/local/dict "<UNK>" data/local/lang_tmp data/lang
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  stage_begin 2 "n-gram LMs and G.fst"
  lm=data/local/lm
  evals=$(for x in $splits; do [ $x != train ] && [ -f data/$x/text ] && echo -n "data/$x/text "; done)
  vocab=$([ -f $lm/vocab.txt ] && echo $lm/vocab.txt || true)  # the LM vocabulary stage 0 chose (else: data/lang's words)
  steps/train_lm.sh --order 3 --pruned "$tgsmall_prune $lm/tgsmall.arpa" --vocab "$vocab" --num-workers $nj \
    --dev-text "$evals" --report $lm/lm.json $lm/lm_text.txt data/lang $lm/tglarge.arpa
  steps/format_lm.sh data/lang $lm/tgsmall.arpa data/lang_test_tgsmall
  steps/format_lm.sh data/lang $lm/tglarge.arpa data/lang_test_tglarge
  if $fglarge; then
    steps/train_lm.sh --order 4 --prune $fglarge_prune --vocab "$vocab" --num-workers $nj --dev-text "$evals" \
      --report $lm/lm_fglarge.json $lm/lm_text.txt data/lang $lm/fglarge.arpa
    steps/format_lm.sh data/lang $lm/fglarge.arpa data/lang_test_fglarge
  fi
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  stage_begin 3 "fbank features and CMVN"
  for x in $splits; do
    steps/make_fbank.sh --nj $nj --cmd "$train_cmd" data/$x exp/make_fbank/$x fbank
    steps/compute_cmvn_stats.sh data/$x exp/make_fbank/$x fbank
  done
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  stage_begin 4 "monophone system"
  if [ -n "$mono_subset" ]; then
    python -m kdhybrid.bin.subset_data_dir --shortest $mono_subset data/train data/train_mono
    steps/train_mono.sh --nj $nj --cmd "$train_cmd" --seed $gmm_seed data/train_mono data/lang exp/mono
    steps/align.sh --nj $nj --cmd "$train_cmd" --beam $gmm_beam --retry-beam $gmm_retry_beam data/train data/lang exp/mono exp/mono_ali
  else
    steps/train_mono.sh --nj $nj --cmd "$train_cmd" --seed $gmm_seed data/train data/lang exp/mono
  fi
fi
mono_ali=exp/mono$([ -n "$mono_subset" ] && echo _ali || true)
ali=exp/${gmm_final}_ali   # the neural models' labels
case $nnet_feats in fmllr|fbank) ;; *) echo "$0: --nnet-feats must be fmllr or fbank, got '$nnet_feats'" 1>&2; exit 1 ;; esac
nd=data   # the neural models' data dirs and cuts: data/<set> (fbank) or data-fmllr-tri3/<set>
[ $nnet_feats = fmllr ] && [ $gmm_final = tri3 ] && nd=data-fmllr-$gmm_final

nnet_data() {  # nnet_data <set>: the neural models' data dir $nd/<set>, made when missing (fMLLR inputs)
  local x=$1 tdir
  [ $nd = data ] || [ -f $nd/$x/feats.scp ] && return 0
  case $x in
    train) tdir=$ali ;;
    train_sp) tdir=${ali}_sp ;;
    *) dec exp/$gmm_final $x; tdir=exp/$gmm_final/decode_tgsmall_$x ;;  # test-time adaptation: tri3's first pass
  esac
  steps/make_fmllr_feats.sh --nj $nj --cmd "$train_cmd" --transform-dir $tdir $nd/$x data/$x exp/$gmm_final exp/make_fmllr/$x fmllr
}

nnet_cuts() {  # the neural models' lhotse cuts: $nd/cuts/{train,dev} (and $nd/cuts_sp/train with --speed-perturb)
  local x
  for x in train dev $($speed_perturb && echo train_sp || true); do nnet_data $x; done
  for x in train dev; do
    python -m kdhybrid.bin.make_cuts --ali-dir $ali$([ $x = dev ] && echo _dev || true) $nd/$x $nd/cuts/$x
  done
  if $speed_perturb; then
    python -m kdhybrid.bin.make_cuts --ali-dir ${ali}_sp $nd/train_sp $nd/cuts_sp/train  # names the copies left out
    ln -sfn ../cuts/dev $nd/cuts_sp/dev
  fi
}

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  stage_begin 5 "triphone systems (tri1 $tri1_leaves leaves, $tri1_gauss Gaussians$([ $gmm_final = tri3 ] && echo "; tri2, tri3") ) and alignments"
  beams="--beam $gmm_beam --retry-beam $gmm_retry_beam"
  steps/train_deltas.sh --nj $nj --cmd "$train_cmd" --seed $gmm_seed $beams $tri1_leaves $tri1_gauss data/train data/lang $mono_ali exp/tri1
  steps/align.sh --nj $nj --cmd "$train_cmd" $beams data/train data/lang exp/tri1 exp/tri1_ali
  case $gmm_final in
    tri1)
      steps/align.sh --nj $nj --cmd "$train_cmd" $beams data/dev data/lang exp/tri1 exp/tri1_ali_dev ;;
    tri3)
      steps/train_lda_mllt.sh --nj $nj --cmd "$train_cmd" --seed $gmm_seed $beams --num-iters $tri23_iters \
        $tri2_leaves $tri2_gauss data/train data/lang exp/tri1_ali exp/tri2
      steps/align.sh --nj $nj --cmd "$train_cmd" $beams data/train data/lang exp/tri2 exp/tri2_ali
      steps/train_sat.sh --nj $nj --cmd "$train_cmd" --seed $gmm_seed $beams --num-iters $tri23_iters \
        $tri3_leaves $tri3_gauss data/train data/lang exp/tri2_ali exp/tri3
      steps/align_fmllr.sh --nj $nj --cmd "$train_cmd" $beams data/train data/lang exp/tri3 exp/tri3_ali
      steps/align_fmllr.sh --nj $nj --cmd "$train_cmd" $beams data/dev data/lang exp/tri3 exp/tri3_ali_dev ;;
    *) echo "$0: --gmm-final must be tri1 or tri3, not $gmm_final" 1>&2; exit 1 ;;
  esac
  if [ -n "$phone_timings" ]; then
    for x in $(echo tri1 $gmm_final | tr ' ' '\n' | sort -u); do
      python -m kdhybrid.bin.gmm_report exp/${x}_ali data/lang $phone_timings
    done
  fi
  if $speed_perturb; then
    log "Stage 5: speed-perturbed training data (0.9/1.0/1.1), its features and $gmm_final alignments"
    [ -f data/train_sp/utt2spk ] || steps/perturb_data_dir_speed_3way.sh data/train data/train_sp
    if [ ! -f data/train_sp/cmvn.scp ]; then
      steps/make_fbank.sh --nj $nj --cmd "$train_cmd" data/train_sp exp/make_fbank/train_sp fbank
      steps/compute_cmvn_stats.sh data/train_sp exp/make_fbank/train_sp fbank
    fi
    if [ $gmm_final = tri3 ]; then
      steps/align_fmllr.sh --nj $nj --cmd "$train_cmd" $beams data/train_sp data/lang exp/tri3 ${ali}_sp
    else
      steps/align.sh --nj $nj --cmd "$train_cmd" $beams data/train_sp data/lang exp/tri1 ${ali}_sp
    fi
  fi
  if [ $nd = data ]; then
    log "Stage 5: the neural models' cuts (fbank + CMVN)"
    nnet_cuts
  fi
fi

dec() {  # dec <model-dir> <sets>: decode (k2, tgsmall lattices) unless scored already, rescore with --rescore-lang (tglarge)
  local m=$1 x acwt=0.1 graph=exp/$gmm_final/graph_tgsmall  # neural models: the tree of their labels
  [ -f $m/final.pkl ] && graph=$m/graph_tgsmall  # a GMM: its own tree's graph
  [ -f $m/final.pkl ] || acwt=$nnet_acwt
  for x in $2; do
    local d=data
    [ -f $m/final.pkl ] || { nnet_data $x; d=$nd; }  # a neural model decodes its own inputs
    if [ ! -f $m/decode_tgsmall_$x/wer.json ]; then
      if [ -f $m/final.alimdl.pkl ]; then
        steps/decode_fmllr.sh --nj $nj --cmd "$decode_cmd" --decode-opts "--acwt $acwt $gmm_decode_opts" \
          --scoring-opts "$scoring_opts" $graph data/$x $m/decode_tgsmall_$x
      else
        steps/decode.sh --nj $nj --cmd "$decode_cmd" --acwt $acwt $([ -f $m/final.pkl ] && echo $gmm_decode_opts || echo $decode_opts) \
          --scoring-opts "$scoring_opts" $graph $d/$x $m/decode_tgsmall_$x
      fi
    fi
    if [ -n "$rescore_lang" ] && [ ! -f $m/decode_${rescore_lang##*_}_$x/wer.json ]; then
      steps/lmrescore.sh data/lang_test_tgsmall $rescore_lang $d/$x $m/decode_tgsmall_$x $m/decode_${rescore_lang##*_}_$x
    fi
  done
}

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  stage_begin 6 "decoding graph of $gmm_final, decoded on $gmm_decode_sets"
  steps/mkgraph.sh data/lang_test_tgsmall exp/$gmm_final exp/$gmm_final/graph_tgsmall
  dec exp/$gmm_final "$gmm_decode_sets"
  if [ $nd != data ]; then
    log "Stage 6: the neural models' inputs: $gmm_final's fMLLR-adapted features ($nd) and cuts"
    nnet_cuts
  fi
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  stage_begin 7 "acoustic model zoo (frame cross-entropy on $gmm_final senones)"
  zoo_data="$nd/train $ali"; zoo_cuts=$nd/cuts
  $speed_perturb && { zoo_data="$nd/train_sp ${ali}_sp"; zoo_cuts=$nd/cuts_sp; }
  for m in $zoo; do  # <arch> (conf/<arch>.yaml) or <arch>_seed<N> (the same config, seed N)
    [ -f exp/$m/final.pt ] || steps/train_nnet.sh --cmd "$nnet_cmd" --config conf/${m%_seed*}.yaml --cuts $zoo_cuts \
      $([ "$m" != "${m%_seed*}" ] && echo "--set-opts seed=${m##*_seed}" || true) \
      --dev-data $nd/dev --dev-ali ${ali}_dev $zoo_data exp/$m
  done
  python -m kdhybrid.bin.plot_learning_curves --out exp/zoo_learning_curves.png --title "the zoo on $gmm_final's senones" \
    $(for a in $zoo; do echo -n "exp/$a "; done)
fi

if [ $stage -le 8 ] && [ $stop_stage -ge 8 ]; then
  stage_begin 8 "decode the GMMs and the zoo on $decode_sets"
  [ -f exp/tri1/graph_tgsmall/HCLG.k2.pt ] || steps/mkgraph.sh data/lang_test_tgsmall exp/tri1 exp/tri1/graph_tgsmall
  for m in $(echo tri1 $gmm_final | tr ' ' '\n' | sort -u) $zoo; do dec exp/$m "$decode_sets"; done
fi

members=$(for a in $zoo; do echo -n "exp/$a "; done)
base_arch=${zoo%% *}; base_arch=${base_arch%_seed*}  # the baseline's config: conf/<base_arch>.yaml
case "${zoo%% *}" in *_seed*) echo "$0: --zoo: the first member is the hard-label baseline; give it as <arch>, not ${zoo%% *}" 1>&2; exit 1 ;; esac
if [ $stage -le 9 ] && [ $stop_stage -ge 9 ]; then
  stage_begin 9 "teacher ensembles of $zoo (posterior and logit fusion), decoded; oracle"
  for fusion in posterior logit; do
    [ -f exp/ensemble_$fusion/ensemble.json ] || \
      steps/make_ensemble.sh --fusion $fusion --dev-cuts $nd/cuts/dev --dev-data $nd/dev --criterion $ens_criterion \
        --candidates $ens_candidates --graph exp/$gmm_final/graph_tgsmall --nj $nj --cmd "$decode_cmd" \
        --decode-opts "--acwt $nnet_acwt $decode_opts" --scoring-opts "$scoring_opts" exp/ensemble_$fusion $members
    # the core decodes the posterior-fusion ensemble on dev only (its weights); stage 13 the rest
    dec exp/ensemble_$fusion "$([ $fusion = logit ] && echo $decode_sets || echo dev)"
  done
  python -m kdhybrid.bin.oracle --out exp/oracle_dev.json data/dev $(for a in $zoo; do echo -n "exp/$a/decode_tgsmall_dev "; done)
  # the GMMs, the members and the teacher side by side (test sets at dev's LM weight)
  python -m kdhybrid.bin.compare --sets "$decode_sets" --lms "tgsmall ${rescore_lang:+${rescore_lang##*_}}" \
    $(echo tri1 $gmm_final | tr ' ' '\n' | sort -u | sed 's|^|exp/|') $members exp/ensemble_logit | tee exp/compare_zoo.txt
fi

post=exp/ensemble_logit/post_k${topk}_train
if [ $stage -le 10 ] && [ $stop_stage -ge 10 ]; then
  stage_begin 10 "top-$topk posteriors of the logit-fusion teacher on the training data"
  steps/dump_teacher_posteriors.sh --nj $nj --cmd "$train_cmd" --topk $topk $nd/train exp/ensemble_logit $post
fi

if [ $stage -le 11 ] && [ $stop_stage -ge 11 ]; then
  stage_begin 11 "the essence student (top-$topk, multitask), decoded"
  [ -f exp/student_k$topk/final.pt ] || \
    steps/train_student.sh --cmd "$nnet_cmd" --config $student_config --cuts $nd/cuts \
      --dev-data $nd/dev $nd/train $ali $post exp/student_k$topk
  dec exp/student_k$topk "$decode_sets"
fi

results() {  # results <sets> <notes...>
  local sets=$1; shift
  local notes=()
  for n in "$@"; do if [ -n "$n" ]; then notes+=(--note "$n"); fi; done
  local figs=()
  if [ -f exp/zoo_learning_curves.png ]; then
    cp exp/zoo_learning_curves.png learning_curves.png
    figs+=(--figure "learning_curves.png:The zoo's learning curves (dev frame cross-entropy and accuracy per epoch)")
  fi
  python -m kdhybrid.bin.results --sets "$sets" --baseline ${zoo%% *} --ensemble ensemble_logit --student student_k$topk \
    --post-dir $post --archive results "${notes[@]}" "${figs[@]}" RESULTS.md > /dev/null  # results/: what it was written from
}
elapsed() { local t=$(( $(date +%s) - $1 )); echo "$((t / 60)) min $((t % 60)) s"; }
table_sets() {  # the sets of RESULTS.md: the full grid's once stage 13 has run (the table keeps its columns), else the core's
  [ -f exp/results_grid_time.txt ] && echo $grid_sets || echo $decode_sets
}
run_notes() {  # the wall-time lines of the stages run so far (core, grid, sequence training, LM heads)
  local f
  for f in core grid seq lm; do cat exp/results_${f}_time.txt 2>/dev/null || true; done
}

if [ $stage -le 12 ] && [ $stop_stage -ge 12 ]; then
  stage_begin 12 "RESULTS.md"
  first=${KDHYBRID_RUN_STAGE:-$stage}
  core_note="Core (\`./run.sh --stage $first --stop-stage 12\`, stages $first-12) wall time to this table on this machine ($(nproc) cores): $(elapsed $run_start)."
  echo "$core_note" > exp/results_core_time.txt
  results "$decode_sets" "$core_note"
  log "RESULTS.md written"
fi

if [ $stage -le 13 ] && [ $stop_stage -ge 13 ]; then
  # The full grid of issue 9 on the same teacher and training: top-k students for k in
  # {1, 5, 10, 20, 40, all}, each with and without the hard labels; label interpolation;
  # a member-initialised student; a smaller student; 3 seeds of the baseline and of the
  # default student. Every system of the table is decoded on $grid_sets.
  stage_begin 13 "the full distillation grid"
  t13=$(date +%s)
  student() {  # student <name> <post-dir> <set-opts> [train_student.sh options]
    local name=$1 p=$2 o=$3; shift 3
    [ -f exp/$name/final.pt ] || steps/train_student.sh --cmd "$nnet_cmd" --config $student_config --cuts $nd/cuts "$@" --set-opts "$o" \
      --dev-data $nd/dev $nd/train $ali $p exp/$name
    dec exp/$name "$grid_sets"
    results "$grid_sets" "$(run_notes)" "Full grid (\`./run.sh --stage 13\`): still running, $(elapsed $t13) so far when this table was written."
  }
  # in order of importance, so that a stopped grid has the rows that matter most
  for m in tri1 $zoo ensemble_posterior ensemble_logit student_k$topk; do dec exp/$m "$grid_sets"; done
  for seed in 2 3; do
    [ -f exp/${zoo%% *}_seed$seed/final.pt ] || steps/train_nnet.sh --cmd "$nnet_cmd" --config conf/${base_arch}.yaml --cuts $nd/cuts --set-opts "seed=$seed" \
      --dev-data $nd/dev $nd/train $ali exp/${zoo%% *}_seed$seed
    dec exp/${zoo%% *}_seed$seed "$grid_sets"
    student student_k${topk}_seed$seed $post "seed=$seed"
  done
  pk=exp/ensemble_logit/post_k
  steps/dump_teacher_posteriors.sh --nj $nj --cmd "$train_cmd" --topk 40 $nd/train exp/ensemble_logit ${pk}40_train
  for k in 1 5 20; do
    steps/dump_teacher_posteriors.sh --nj $nj --cmd "$train_cmd" --topk $k --from-dump ${pk}40_train $nd/train exp/ensemble_logit ${pk}${k}_train
  done
  for k in 1 5 20 40; do student student_k$k ${pk}${k}_train "distill.objective=multitask"; done
  student student_interp_k$topk $post "distill.objective=interpolation distill.alpha=0.5"
  student student_init_k$topk $post "" --init-from exp/${zoo%% *}/final.pt
  student student_small_k$topk $post "model.hidden=$small_hidden model.num_layers=$small_layers"
  for k in 1 5 10 20 40; do student student_k${k}_nohard ${pk}${k}_train "distill.objective=multitask distill.hard_weight=0"; done
  if $grid_full; then
    steps/dump_teacher_posteriors.sh --nj $nj --cmd "$train_cmd" --topk 0 $nd/train exp/ensemble_logit ${pk}all_train
    student student_kall ${pk}all_train "distill.objective=full"
    student student_kall_nohard ${pk}all_train "distill.objective=full distill.hard_weight=0"
  fi
  echo "Full grid (\`./run.sh --stage 13\`) wall time on this machine ($(nproc) cores): $(elapsed $t13)." > exp/results_grid_time.txt
  results "$grid_sets" "$(run_notes)"
  log "RESULTS.md written (full grid)"
fi

if [ $stage -le 14 ] && [ $stop_stage -ge 14 ]; then
  seq_models=${seq_models:-"$zoo student_k$topk"}
  stage_begin 14 "$seq_criterion training of $seq_models"
  t14=$(date +%s)
  sets=$(table_sets)
  for m in $seq_models; do  # every model checked before the first one's hours of work
    [ -f exp/$m/final.pt ] || { echo "$0: stage 14: no exp/$m/final.pt (stages 7 and 11 make the zoo and the student)" 1>&2; exit 1; }
  done
  for m in $seq_models; do
    s=exp/${m}_$seq_criterion
    if [ ! -f $s/final.pt ]; then
      a=exp/${m}_ali
      aligned=true  # every job's ali.J.gz (each written atomically when its job ends)
      for j in $(seq $(cat $a/num_jobs 2>/dev/null || echo 1)); do [ -f $a/ali.$j.gz ] || aligned=false; done
      $aligned || steps/align_nnet.sh --nj $nj --cmd "$train_cmd" --tree-dir exp/$gmm_final $nd/train data/lang exp/$m $a
      # one unigram graph for all (the models share the tree of $gmm_final): the first model's
      g=exp/${seq_models%% *}_denlats/graph
      steps/make_denlats.sh --nj $nj --cmd "$train_cmd" --tree-dir exp/$gmm_final \
        $([ "$m" != "${seq_models%% *}" ] && echo "--graph-dir $g" || true) $nd/train data/lang exp/$m exp/${m}_denlats
      steps/train_sequence.sh --cmd "$nnet_cmd" --criterion $seq_criterion --resume true $seq_opts \
        --dev-data $nd/dev --graph-dir exp/$gmm_final/graph_tgsmall $nd/train $a exp/${m}_denlats exp/$m $s
    fi
    dec $s "$sets"
  done
  seq_members=$(for m in $seq_models; do case " $zoo " in *" $m "*) echo -n "exp/${m}_$seq_criterion ";; esac; done)
  if [ -n "$seq_members" ]; then
    e=exp/ensemble_logit_$seq_criterion
    # weight grid: C(1/step + n - 1, n - 1) vectors, 3003 for 6 members at 0.1. Dev frame CE gives sequence-trained members
    # weight 0 (on synth_en's default tier: tdnn_smbr's dev CE 2.088 against its source's 2.063; the CE-best mix of tdnn,
    # tdnn_seed2, blstm and tdnn_smbr was [0.3, 0.3, 0.4, 0.0]), so dev WER chooses among the CE-best vector of each share
    # of the sequence-trained members (0 to 1 at the grid step: 6 dev decodes for the default 6 members)
    n=$(echo $members $seq_members | wc -w)
    if [ -f $e/ensemble.json ] && [ "$(python -c "import json; print(*json.load(open('$e/ensemble.json'))['members'])")" != "$(echo $members $seq_members)" ]; then
      log "Stage 14: $e has other members than $(echo $members $seq_members): made again"
      rm -rf $e
    fi
    [ -f $e/ensemble.json ] || \
      steps/make_ensemble.sh --fusion logit --dev-cuts $nd/cuts/dev --dev-data $nd/dev \
        --grid-step $([ $n -ge 5 ] && echo 0.2 || echo 0.1) \
        --criterion wer --share-of $(echo $seq_members | wc -w) --graph exp/$gmm_final/graph_tgsmall --nj $nj --cmd "$decode_cmd" \
        --decode-opts "--acwt $nnet_acwt $decode_opts" --scoring-opts "$scoring_opts" $e $members $seq_members
    dec $e "$sets"
  fi
  echo "Sequence training (\`./run.sh --stage 14\`, $seq_criterion of $seq_models) wall time on this machine ($(nproc) cores): $(elapsed $t14)." \
    > exp/results_seq_time.txt
  results "$sets" "$(run_notes)"
  log "RESULTS.md written (sequence training)"
fi

if [ $stage -le 15 ] && [ $stop_stage -ge 15 ]; then
  base=${zoo%% *}; conf=conf/$base_arch.yaml  # the hard-label baseline and its config
  stage_begin 15 "LM-to-AM distillation: unit LMs ($lm_units), $base with LM heads ($lm_ablation)"
  t15=$(date +%s)
  sets=$(table_sets)
  for u in $(echo $lm_ablation $lm_student | tr ', ' '\n\n' | sort -u) $([ -n "$lm_interp$lm_sweep" ] && echo senone || true); do
    [[ " $lm_units " == *" $u "* ]] || { echo "$0: stage 15: unit '$u' (--lm-ablation, --lm-student, or senone for --lm-interp/--lm-sweep) is not in --lm-units '$lm_units'" 1>&2; exit 1; }
  done
  for u in $lm_units; do
    steps/train_unit_lm.sh --cmd "$train_cmd" --unit $u --max-seconds $lm_seconds \
      $([ $u = senone ] && echo "--max-train-tokens 3000000" || true) data/local/lm/lm_text.txt data/lang $ali exp/unit_lm/$u
    steps/dump_lm_posteriors.sh --nj $nj --cmd "$train_cmd" --topk $lm_topk --cuts $nd/cuts/train \
      $nd/train data/lang $ali exp/unit_lm/$u exp/unit_lm/$u/post_train
  done
  lm_heads_run() {  # lm_heads_run <name> <units, comma-separated> <weight>: the baseline with those heads, decoded
    local u o=""
    for u in ${2//,/ }; do
      [ -f exp/unit_lm/$u/post_train/post.scp ] || { echo "$0: stage 15: $u is not in --lm-units" 1>&2; exit 1; }
      o="$o lm_heads.posts.$u=exp/unit_lm/$u/post_train/post.scp lm_heads.weights.$u=$3"
    done
    [ -f exp/$1/final.pt ] || steps/train_nnet.sh --cmd "$nnet_cmd" --config $conf --cuts $nd/cuts --set-opts "$o" --resume true \
      --dev-data $nd/dev --dev-ali ${ali}_dev $nd/train $ali exp/$1
    dec exp/$1 "$sets"
  }
  lm_student_run() {  # lm_student_run <units, comma-separated>: the essence student with those LM heads as well, decoded
    local n=student_k${topk}_lm_${1//,/_} o="" u
    for u in ${1//,/ }; do
      [ -f exp/unit_lm/$u/post_train/post.scp ] || { echo "$0: stage 15: $u is not in --lm-units" 1>&2; exit 1; }
      o="$o lm_heads.posts.$u=exp/unit_lm/$u/post_train/post.scp lm_heads.weights.$u=$lm_head_weight"
    done
    [ -f exp/$n/final.pt ] || steps/train_student.sh --cmd "$nnet_cmd" --config $student_config --cuts $nd/cuts --resume true \
      --set-opts "$o" --dev-data $nd/dev $nd/train $ali $post exp/$n
    dec exp/$n "$sets"
  }
  lm_interp_run() {  # lm_interp_run <name> <lambda>: the senone LM's targets interpolated into the main head, decoded
    [ -f exp/unit_lm/senone/post_train/post.scp ] || { echo "$0: stage 15: label interpolation needs the senone LM (--lm-units)" 1>&2; exit 1; }
    [ -f exp/$1/final.pt ] || steps/train_student.sh --cmd "$nnet_cmd" --config $conf --cuts $nd/cuts --resume true \
      --set-opts "distill.objective=interpolation distill.alpha=$2" --dev-data $nd/dev \
      $nd/train $ali exp/unit_lm/senone/post_train exp/$1
    dec exp/$1 "$sets"
  }
  for heads in $lm_ablation; do lm_heads_run ${base}_lm_${heads//,/_} $heads $lm_head_weight; done
  [ -n "$lm_interp" ] && lm_interp_run ${base}_lminterp_senone $lm_interp
  [ -n "$lm_student" ] && lm_student_run $lm_student  # the combination none of the papers measured
  same() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 == b + 0) }'; }  # same <x> <y>: equal as numbers
  for w in $lm_sweep; do  # the stability experiment: the senone head's weight against interpolation's lambda
    # a point the ablation (senone head at --lm-head-weight) or the --lm-interp run already trained is that model, linked
    # (unless a run of that point's own is there: a dir, not a link, trained before or begun, is finished instead)
    h=exp/${base}_lm_senone_w$w i=exp/${base}_lminterp_senone_l$w
    if same $w $lm_head_weight && [[ " $lm_ablation " == *" senone "* ]] && { [ -L $h ] || [ ! -e $h ]; }; then ln -sfn ${base}_lm_senone $h
    else lm_heads_run ${h#exp/} senone $w; fi
    if [ -n "$lm_interp" ] && same $w $lm_interp && { [ -L $i ] || [ ! -e $i ]; }; then ln -sfn ${base}_lminterp_senone $i
    else lm_interp_run ${i#exp/} $w; fi
  done
  echo "LM-to-AM distillation (\`./run.sh --stage 15\`: unit LMs $lm_units; heads $lm_ablation) wall time on this machine ($(nproc) cores): $(elapsed $t15)." \
    > exp/results_lm_time.txt
  results "$sets" "$(run_notes)"
  log "RESULTS.md written (LM-to-AM distillation)"
fi
