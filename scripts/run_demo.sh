#!/usr/bin/env bash
# Run the cutout job on the demo repository and say where the results are.
set -euo pipefail
repo=$1
output=$2
if [ -x .venv/bin/plotImageSubtractionCutouts ] && .venv/bin/python -c "import lsst.analysis.ap.cli" 2>/dev/null; then
    .venv/bin/plotImageSubtractionCutouts "$repo" "$output" --collections DemoCam/runs/demo \
        --sqlitefile "$repo/apdb/apdb.sqlite3" --all --url-root "https://example.org/demo-cutouts/"
    echo "Cutouts: $(cd "$output" && pwd)/images   manifest: $(cd "$output" && pwd)/manifest.csv"
else
    echo "Demo repository ready at $(cd "$repo" && pwd) (the cutout task is not installed yet)."
fi
