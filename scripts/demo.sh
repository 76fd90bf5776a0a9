#!/usr/bin/env bash
# The main job: dense vs gradually pruned all-MiniLM-L6-v2 on SST-2 (about 6 minutes on a 2-core AMD EPYC VM, up to ~10 on a slower 2-core CPU).
# Data: $BERTPRUNE_GLUE_DIR (a folder in the official GLUE layout) if set, else the Hugging Face hub.
# Extra arguments go to `bertprune demo` (see `bertprune demo --help`).
source "$(dirname "$0")/env.sh"
exec bertprune demo "$@"
