#!/usr/bin/env bash
# The high-sparsity benchmark on a lent GPU machine (the `device` tool; one H200 here), as one call.
# Here, once:  python scripts/device_pack.py pack --glue-dir ../shared/data/glue --out .dev
#              echo /.dev/ >> .git/info/exclude
#              python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#                --platform manylinux2014_x86_64 -d .dev/whl datasets==5.2.0 omegaconf==2.4.0 dill==0.4.1 \
#                multiprocess==0.70.19 antlr4-python3-runtime==4.13.2     # the machine's image lacks them
#              (the same with -d .dev/whl2 datasets==4.4.1: an older datasets in case its pyarrow is too old)
#              The call: carry [".dev"], timeout_s 590; about 50 MB travel; its records come back in $OUT.
# There:       BERTPRUNE_GIT_COMMIT=<sha> bash scripts/device_high_sparsity.sh   (carry .dev)
#              (ROWS=squad: SQuAD instead of GLUE; see below)
# It sets up, (SMOKE=1: runs a 1-epoch smoke row, stopping if that fails,) trains the teachers, then runs
# the queue of rows below, most important first, JOBS at a time on the one GPU (each run is a small
# model, bound by Python and kernel launches, so several share the GPU). Records land in
# benchmarks/results/high_sparsity.jsonl as each run ends and are copied to $OUT every 10 s, with
# the logs, so a run cut off by the time limit loses only the runs in flight.
set -u
OUT=${OUT:-/tmp/out}
JOBS=${JOBS:-14}
export EPOCHS=${EPOCHS:-20} BUDGET=${BUDGET:-560}
WORK=/tmp/dev
mkdir -p "$OUT" "$WORK/logs"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
: "${BERTPRUNE_GIT_COMMIT:?set BERTPRUNE_GIT_COMMIT to the commit this tree is}"
export BERTPRUNE_GIT_COMMIT
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*"; }

PY=${PY:-python3}
if [ -z "${LOCAL_TEST:-}" ]; then  # LOCAL_TEST=1: a dry run here (CPU; MODEL, GLUE, SQUAD: a tiny model and data)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .dev/whl/*.whl || exit 1
fi
export PYTHONPATH=$PWD/src:/tmp/site
if ! $PY -c "import datasets" 2>"$WORK/logs/datasets.err"; then
  cat "$WORK/logs/datasets.err" | tail -3
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .dev/whl2/*.whl || exit 1
  $PY -c "import datasets" || exit 1
fi
$PY -c "import torch, transformers, datasets, accelerate, bertprune.train
print('torch', torch.__version__, 'transformers', transformers.__version__, 'datasets', datasets.__version__,
      'accelerate', accelerate.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')" || exit 1
if [ -z "${LOCAL_TEST:-}" ]; then
  $PY scripts/device_pack.py unpack --pack .dev --out "$WORK" || exit 1
fi
MODEL=${MODEL:-$WORK/all-MiniLM-L6-v2-fp16}
GLUE=${GLUE:-$WORK/glue}
stamp setup done

# MPS lets the runs' small kernels share the GPU at once instead of taking turns; without it they still run
MPS=
if nvidia-cuda-mps-control -d 2>/dev/null && $PY -c "import torch; torch.zeros(1).cuda()" 2>/dev/null; then
  MPS=1; stamp MPS on
else
  echo quit | nvidia-cuda-mps-control 2>/dev/null; stamp MPS off
fi

sync_out() {
  cp benchmarks/results/high_sparsity.jsonl benchmarks/results/squad.jsonl "$OUT/" 2>/dev/null
  tar czf "$OUT/logs.tgz.tmp" -C "$WORK" logs 2>/dev/null && mv "$OUT/logs.tgz.tmp" "$OUT/logs.tgz"
}
( while sleep 10; do sync_out; done ) &
SYNC=$!
trap 'sync_out; kill $SYNC 2>/dev/null; [ -n "$MPS" ] && echo quit | nvidia-cuda-mps-control' EXIT  # leave the GPU as found

HS=($PY benchmarks/high_sparsity.py --glue-dir "$GLUE" --model "$MODEL" --resume --quiet)

# 1. smoke (SMOKE=1; 75 s): RTE's teacher and one epoch at 90%, records kept apart; a failure stops here.
# Off by default since the code ran on this machine (commit e1ae5e3): a broken run fails within seconds anyway.
if [ -n "${SMOKE:-}" ]; then
  if ! BERTPRUNE_BENCH_RESULTS=$WORK/smoke "${HS[@]}" --out-dir "$WORK/smoke-runs" --tasks rte --recipe sparse-kd \
       --sparsity 0.9 --set train.epochs=1 >"$WORK/logs/smoke.log" 2>&1; then
    tail -40 "$WORK/logs/smoke.log"; exit 1
  fi
  stamp smoke passed
fi

# ROWS=squad: SQuAD v1.1 instead (benchmarks/squad.py; pack with --squad-dir): the dense run (the teacher,
# 2 epochs), then at once the sparse-kd runs at 2 epochs (the CPU's settings) and at E epochs with a mask
# update every E/10 epochs (7 over the pruning phase, as at 2 epochs), each with its dense twin
# (E from the dense run's seconds per step, 376 steps per epoch (12,022 windows / 32), times 2 for KD's
# teacher pass and six runs at once)
if [ "${ROWS:-glue}" = squad ]; then
  SQ=($PY benchmarks/squad.py --squad-dir "${SQUAD:-$WORK/squad}" --model "$MODEL" --resume --quiet)
  "${SQ[@]}" --runs dense-0.0 >"$WORK/logs/squad-dense.log" 2>&1 || { tail -30 "$WORK/logs/squad-dense.log"; exit 1; }
  stamp dense done
  E=$($PY scripts/device_epochs.py benchmarks/results/squad.jsonl --model "$MODEL" --elapsed $(( $(date +%s) - t0 )) \
      --where method=dense --steps-per-epoch 376 --factor 2 --choices 20 10 6 4 --fallback 2)
  stamp "epochs $E"
  every=$($PY -c "print($E / 10)")
  pids=()
  for run in sparse-kd-0.9 sparse-kd-0.8 sparse-kd-0.0; do
    if [ "$E" != 2 ]; then  # 2 epochs is the plain runs' length
      "${SQ[@]}" --runs $run --tag ${E}ep --set train.epochs=$E prune.schedule.every_epochs=$every \
        >"$WORK/logs/squad-$run-${E}ep.log" 2>&1 &
      pids+=($!)
    fi
    "${SQ[@]}" --runs $run >"$WORK/logs/squad-$run.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  for f in "$WORK"/logs/squad-*.log; do echo "$f: $(grep -c . "$f") lines"; done
  stamp squad done
  exit 0
fi

# 2. the teachers (3 epochs, dense), one per task, all at once
pids=()
for t in mrpc stsb rte cola sst2; do
  "${HS[@]}" --teacher-only --tasks $t --seeds 42 >"$WORK/logs/teacher-$t.log" 2>&1 &
  pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done  # not a bare wait: the copying loop never ends
if [ $failed = 1 ]; then  # the queue's runs would each train the missing teacher again, at once, in one folder
  for f in "$WORK"/logs/teacher-*.log; do echo "== $f"; tail -5 "$f"; done; exit 1
fi
stamp teachers done

# epochs: as many as fit (at most EPOCHS), from the teachers' seconds per step (five at once) times 1.5
# for distillation's teacher pass and JOBS runs at once (measured 2026-12-04 on one H200: teachers
# 0.032-0.040 s/step, 14 sparse-kd runs at once 0.035-0.048; a 1-epoch run alone is no guide, its
# median step was 0.26 s: likely because each new batch shape is slow the first time, not measured), and CoLA's 268 steps per
# epoch (the longest task); the records carry the epochs each row got
E=$($PY scripts/device_epochs.py benchmarks/results/high_sparsity.jsonl --model "$MODEL" --elapsed $(( $(date +%s) - t0 )) \
    --where recipe=teacher --steps-per-epoch 268 --factor 1.5 --choices 30 20 15 10 8 5 --fallback 5)
stamp "epochs $E"

# 3. the queue, most important first: one line = one run (its high_sparsity.py arguments and a log name)
q=()
add() { local name=$1; shift; for t in mrpc stsb rte cola sst2; do q+=("$name-$t|--tasks $t $*"); done; }
add f90-s42 --recipe sparse-kd --sparsity 0.9 --seeds 42 --tag fisher-${E}ep --set train.epochs=$E --teacher-seed 42
add d0-s42 --recipe sparse-kd --sparsity 0 --seeds 42 --tag ${E}ep --set train.epochs=$E --teacher-seed 42
add f90-s43 --recipe sparse-kd --sparsity 0.9 --seeds 43 --tag fisher-${E}ep --set train.epochs=$E --teacher-seed 42
add f90-s44 --recipe sparse-kd --sparsity 0.9 --seeds 44 --tag fisher-${E}ep --set train.epochs=$E --teacher-seed 42
add f90-every2-s42 --recipe sparse-kd --sparsity 0.9 --seeds 42 --tag fisher-${E}ep-every2 --set train.epochs=$E prune.schedule.every_epochs=2 --teacher-seed 42
add f80 --recipe sparse-kd --sparsity 0.8 --seeds 42 --tag fisher-${E}ep --set train.epochs=$E --teacher-seed 42
add f95 --recipe sparse-kd --sparsity 0.95 --seeds 42 --tag fisher-${E}ep --set train.epochs=$E --teacher-seed 42
add f1x4 --recipe sparse-kd --sparsity 0.9 --seeds 42 --tag 1x4-${E}ep --set train.epochs=$E prune.granularity=1x4 --teacher-seed 42
add d0-s43 --recipe sparse-kd --sparsity 0 --seeds 43 --tag ${E}ep --set train.epochs=$E --teacher-seed 42
add d0-s44 --recipe sparse-kd --sparsity 0 --seeds 44 --tag ${E}ep --set train.epochs=$E --teacher-seed 42
q=("${q[@]:0:${LIMIT:-${#q[@]}}}")  # LIMIT=n: only the first n runs
printf '%s\n' "${q[@]}" >"$WORK/logs/queue.txt"
run_one() {
  local name=${1%%|*} argv=${1#*|}
  # shellcheck disable=SC2086
  "${HS[@]}" $argv >"$WORK/logs/$name.log" 2>&1 && echo "[$name] $(grep "^{" "$WORK/logs/$name.log" | tail -1)" || echo "[$name] FAILED"
}
export -f run_one; export WORK; export HS_LINE="${HS[*]}"
printf '%s\n' "${q[@]}" | xargs -P "$JOBS" -I{} bash -c 'HS=($HS_LINE); run_one "$@"' _ {}
stamp queue done
