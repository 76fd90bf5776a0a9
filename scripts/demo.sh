#!/usr/bin/env bash
# The main job: dense vs gradually pruned all-MiniLM-L6-v2 on SST-2 (about 8 minutes on 2 CPU cores).
# Data: $BERTPRUNE_GLUE_DIR (a folder in the official GLUE layout) if set, else the Hugging Face hub.
# Extra arguments go to `bertprune demo` (see `bertprune demo --help`).
source "$(dirname "$0")/env.sh"
exec bertprune demo "$@"
