#!/bin/sh
# gpt_train.sh LOOM_TRAIN MPIEXEC MODE: the poetry GPT recipe under mpirun,
# shrunk to a tiny model (d_model 32, 1 layer, 2 heads, seq_len 32, vocabulary
# 512, no dropout), 6 steps with a checkpoint at step 3.
#
#   dp      2 ranks x batch 4 equal 1 process x batch 8 (1e-6 relative), and
#           the 2-rank run resumed from its step-3 checkpoint logs steps 4-6
#           bitwise equal to the uninterrupted run.
#   tp2     dist.tp_size=2 on 2 ranks equals one process on the same batch
#           (1e-5, losses, grad norms and the final evaluation); its checkpoint has the one-process layout, and resuming it
#           in one process (TP=1) continues like the one-process run (1e-5);
#           a tp_size that does not divide the ranks, and a model without a
#           tensor-parallel version, stop the job with errors naming them.
#   dp2tp2  4 ranks as DP 2 x TP 2 (batch 4 per DP rank) equal one process x 8
#           (1e-5), also with dist.zero=true (ZeRO-1 over the DP groups); the
#           DP2 x TP2 checkpoint resumes on 2 ranks as TP 2.
#   bf16    train.precision=bf16 (autocast, f32 master weights) on 2 ranks: data
#           parallel (2 x 4) against one process x 8, and tensor parallel 2
#           against one process, within bf16's error (2e-2); the halves' all-
#           reduces of tensor parallelism go through MPI's user reductions.
#   device  train.device=cuda on 2 ranks over host-emulated devices
#           (LOOM_HOST_EMULATION=1: host memory, CPU kernels, the device
#           group's host staging): data parallel, tensor parallel 2 and ZeRO-1
#           each bitwise equal to the same run on the CPU, and a device run
#           resumed from its step-3 checkpoint bitwise equal to the straight
#           one. A tensor left on the host in any collective fails the run.
set -eu
train=$1; mpiexec=$2; mode=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# shellcheck source=tests/dist/run_lib.sh
. "$(dirname "$0")/run_lib.sh"
recipe=$here/../../recipes/poetry-gpt.json
ckpt=checkpoints/step-00000003
tiny="--set model.d_model=32 --set model.n_layers=1 --set model.n_heads=2 --set model.seq_len=32
      --set model.vocab_size=512 --set model.dropout=0.0 --set train.steps=6 --set train.log_every=1
      --set train.eval_every=0 --set train.checkpoint_every=3 --set train.num_workers=0
      --set optim.warmup_steps=2 --set optim.lr=0.01 --set eval.max_batches=1"

case $mode in
dp)
  # shellcheck disable=SC2086
  train one 1 "$recipe" $tiny --set train.batch_size=8
  # shellcheck disable=SC2086
  train dp2 2 "$recipe" $tiny --set train.batch_size=4
  compare "$dir/one" "$dir/dp2" --steps 1-6 --rtol 1e-6 --what "GPT 2 ranks x 4 vs 1 x 8"
  # shellcheck disable=SC2086
  train dp2_resumed 2 "$recipe" $tiny --set train.batch_size=4 --resume "$dir/dp2/$ckpt"
  compare "$dir/dp2" "$dir/dp2_resumed" --steps 4-6 --bitwise --keys loss,grad_norm,lr \
    --what "GPT 2 ranks: 3 steps + --resume + 3 steps vs 6 straight"
  ;;
tp2)
  # shellcheck disable=SC2086
  train one 1 "$recipe" $tiny --set train.batch_size=4
  # shellcheck disable=SC2086
  train tp2 2 "$recipe" $tiny --set train.batch_size=4 --set dist.tp_size=2
  grep -q "tensor parallel 2" "$dir/tp2.log" || { cat "$dir/tp2.log"; echo "FAIL: the run is not tensor parallel"; exit 1; }
  compare "$dir/one" "$dir/tp2" --steps 1-6 --rtol 1e-5 --eval --what "GPT TP 2 vs one process"
  same_layout "$dir/tp2/$ckpt" "$dir/one/$ckpt"
  # shellcheck disable=SC2086
  train tp2_on1 1 "$recipe" $tiny --set train.batch_size=4 --resume "$dir/tp2/$ckpt"
  compare "$dir/one" "$dir/tp2_on1" --steps 4-6 --rtol 1e-5 --what "GPT TP 2 checkpoint resumed at TP 1"
  # shellcheck disable=SC2086
  refused 2 "dist.tp_size 3 must be at least 1 and divide the number of ranks, 2" "$recipe" $tiny --set dist.tp_size=3
  refused 2 "model.kind 'image_classifier' has no tensor-parallel version" "$here/tiny-cnn.json" --set dist.tp_size=2
  ;;
dp2tp2)
  # shellcheck disable=SC2086
  train one 1 "$recipe" $tiny --set train.batch_size=8
  # shellcheck disable=SC2086
  train dp2tp2 4 "$recipe" $tiny --set train.batch_size=4 --set dist.tp_size=2
  grep -q "data parallel 2 x tensor parallel 2" "$dir/dp2tp2.log" || { cat "$dir/dp2tp2.log"; echo "FAIL: not DP 2 x TP 2"; exit 1; }
  compare "$dir/one" "$dir/dp2tp2" --steps 1-6 --rtol 1e-5 --eval --what "GPT DP 2 x TP 2 vs one process"
  same_layout "$dir/dp2tp2/$ckpt" "$dir/one/$ckpt"
  # shellcheck disable=SC2086
  train dp2tp2_on_tp2 2 "$recipe" $tiny --set train.batch_size=8 --set dist.tp_size=2 --resume "$dir/dp2tp2/$ckpt"
  compare "$dir/one" "$dir/dp2tp2_on_tp2" --steps 4-6 --rtol 1e-5 --what "GPT DP 2 x TP 2 checkpoint resumed as TP 2"
  # shellcheck disable=SC2086
  train dp2tp2_zero 4 "$recipe" $tiny --set train.batch_size=4 --set dist.tp_size=2 --set dist.zero=true
  grep -q "data parallel 2 (ZeRO-1) x tensor parallel 2" "$dir/dp2tp2_zero.log" || {
    cat "$dir/dp2tp2_zero.log"; echo "FAIL: not DP 2 (ZeRO-1) x TP 2"; exit 1; }
  compare "$dir/one" "$dir/dp2tp2_zero" --steps 1-6 --rtol 1e-5 --eval --what "GPT DP 2 (ZeRO-1) x TP 2 vs one process"
  same_layout "$dir/dp2tp2_zero/$ckpt" "$dir/one/$ckpt"
  ;;
bf16)
  bf16="--set train.precision=bf16"
  # shellcheck disable=SC2086
  train one 1 "$recipe" $tiny $bf16 --set train.batch_size=8
  # shellcheck disable=SC2086
  train dp2 2 "$recipe" $tiny $bf16 --set train.batch_size=4
  compare "$dir/one" "$dir/dp2" --steps 1-6 --rtol 2e-2 --what "GPT bf16 2 ranks x 4 vs 1 x 8"
  # shellcheck disable=SC2086
  train one4 1 "$recipe" $tiny $bf16 --set train.batch_size=4
  # shellcheck disable=SC2086
  train tp2 2 "$recipe" $tiny $bf16 --set train.batch_size=4 --set dist.tp_size=2
  compare "$dir/one4" "$dir/tp2" --steps 1-6 --rtol 2e-2 --eval --what "GPT bf16 TP 2 vs one process"
  ;;
device)
  for par in dp tp2 zero; do
    case $par in
      dp) extra="" ;;
      tp2) extra="--set dist.tp_size=2" ;;
      zero) extra="--set dist.zero=true" ;;
    esac
    # shellcheck disable=SC2086
    train "cpu_$par" 2 "$recipe" $tiny --set train.batch_size=4 $extra
    # shellcheck disable=SC2086
    (export LOOM_HOST_EMULATION=1; train "dev_$par" 2 "$recipe" $tiny --set train.batch_size=4 --set train.device=cuda $extra)
    grep -q "on cuda:0" "$dir/dev_$par.log" || { cat "$dir/dev_$par.log"; echo "FAIL: not on the device"; exit 1; }
    compare "$dir/cpu_$par" "$dir/dev_$par" --steps 1-6 --bitwise --keys loss,grad_norm,lr --eval \
      --what "GPT 2 ranks ($par) on emulated devices vs the CPU"
  done
  # shellcheck disable=SC2086
  (export LOOM_HOST_EMULATION=1; train dev_resumed 2 "$recipe" $tiny --set train.batch_size=4 --set train.device=cuda \
    --resume "$dir/dev_dp/$ckpt")
  compare "$dir/dev_dp" "$dir/dev_resumed" --steps 4-6 --bitwise --keys loss,grad_norm,lr \
    --what "GPT 2 ranks on emulated devices: 3 steps + --resume + 3 steps vs 6 straight"
  ;;
*)
  echo "gpt_train.sh: unknown mode '$mode' (dp, tp2, dp2tp2, bf16 or device)"; exit 2 ;;
esac
