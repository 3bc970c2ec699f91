#!/usr/bin/env bash
# Runs the tuf-conformance client suite against kasane-tuf-client.
# Usage: tuf/conformance/run.sh SUITE_DIR [extra pytest args...]
#   SUITE_DIR: a checkout of the tuf-conformance repository.
# Needs: python3 with the suite's dependencies (set PYTHON, default: python3; a venv made
# with `pip install -e SUITE_DIR` works), and faketime on PATH.
set -euo pipefail
suite="${1:?usage: run.sh SUITE_DIR [pytest args...]}"
shift
suite="$(cd "$suite" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
workspace="$(cd "$here/../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$workspace/target}"
python="${PYTHON:-python3}"

(cd "$workspace" && CARGO_TARGET_DIR="$target_dir" \
    cargo build --release -p kasane-tuf --features client-cli --bin kasane-tuf-client)
client="$target_dir/release/kasane-tuf-client"

report="$(mktemp)"
cd "$suite"
set +e
"$python" -m pytest tuf_conformance --entrypoint "$client" -p no:cacheprovider \
    -q -rfE "$@" | tee "$report"
status=${PIPESTATUS[0]}
set -e
echo "conformance: $(tail -n 1 "$report")"
rm -f "$report"
exit "$status"
