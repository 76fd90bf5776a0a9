#!/usr/bin/env bash
# Your own data, end to end and offline: SST-2 written out as CSV files; a dense model fine-tuned on them
# (the teacher); 90% sparse by the high-sparsity recipe, first with bertprune's loop, then the same recipe
# inside a Hugging Face Trainer (examples/own_trainer.py); the sparsity report; and `bertprune bench`.
# The data settings are the demo's (4,000 training sentences, 64 tokens). About 20 minutes on 2 CPU cores.
#   scripts/own_data.sh [OUT]        # GLUE from $BERTPRUNE_GLUE_DIR (default ../shared/data/glue); OUT default runs/own-data
set -euo pipefail
source "$(dirname "$0")/env.sh"
GLUE=${BERTPRUNE_GLUE_DIR:-../shared/data/glue}
OUT=${1:-runs/own-data}
mkdir -p "$OUT"
python - "$GLUE" "$OUT" <<'PY'
import sys

import pandas as pd

glue, out = sys.argv[1:]
for split in ("train", "dev"):
    pd.read_csv(f"{glue}/SST-2/{split}.tsv", sep="\t", quoting=3).to_csv(f"{out}/sst2-{split}.csv", index=False)
PY
FILES="data.train_file=$OUT/sst2-train.csv data.validation_file=$OUT/sst2-dev.csv data.text_columns=[sentence] data.label_column=label"
SIZE="data.max_length=64 data.train_examples=4000"
set -x
bertprune finetune --recipe demo --task text_classification $FILES $SIZE -o "$OUT/dense" --overwrite --quiet
bertprune distill --recipe sparse-kd --task text_classification --teacher "$OUT/dense" $FILES $SIZE -o "$OUT/sparse-90" --overwrite --quiet
bertprune report "$OUT/sparse-90"
python examples/own_trainer.py --teacher "$OUT/dense" --train-file "$OUT/sst2-train.csv" --validation-file "$OUT/sst2-dev.csv" \
    --text-columns sentence --label-column label --train-examples 4000 --set data.max_length=64 -o "$OUT/trainer-90"
bertprune bench "$OUT/sparse-90" --batch-sizes 1 8 --seq-lens 64
