#!/usr/bin/env bash
# The test suite (tiny random models; a few minutes on 2 CPU cores). Extra arguments go to pytest.
source "$(dirname "$0")/env.sh"
exec python -m pytest -q "$@"
