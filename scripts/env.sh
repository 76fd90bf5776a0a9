# Sourced by scripts/demo.sh and scripts/test.sh: create or reuse ./.venv and install what bertprune
# needs. torch is installed first, pinned to 2.13.0 (the CPU wheel on this kind of machine): left to
# the resolver, an unpinned torch pulls the CUDA build, gigabytes of it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BERTPRUNE_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[bertprune] creating virtual environment $VENV" >&2
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
STAMP="$VENV/.bertprune-installed"
WANT="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "[bertprune] installing dependencies into $VENV" >&2
  python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  python -m pip install --quiet "torch==2.13.0"
  python -m pip install --quiet -e "$ROOT[test]"
  echo "$WANT" > "$STAMP"
fi
export TOKENIZERS_PARALLELISM=false
cd "$ROOT"
