#!/usr/bin/env bash
# Run the cutout job on the demo repository and say where the results are.
set -euo pipefail
repo=$1
output=$2
# Exit status 1 means some sources failed: the demo has deliberate no-data and
# off-image sources, listed with their reasons in failures.csv.
status=0
.venv/bin/plotImageSubtractionCutouts "$repo" "$output" --collections DemoCam/runs/demo \
    --sqlitefile "$repo/apdb/apdb.sqlite3" --all --url-root "https://example.org/demo-cutouts/" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then
    exit "$status"
fi
.venv/bin/plotDiaObjectSequences "$repo" "$output" --collections DemoCam/runs/demo \
    --sqlitefile "$repo/apdb/apdb.sqlite3" --most-epochs 3 --url-root "https://example.org/demo-cutouts/"
out=$(cd "$output" && pwd)
echo "Demo repository: $(cd "$repo" && pwd)"
echo "Cutouts: $out/images   Zooniverse manifest: $out/manifest.csv   failures: $out/failures.csv"
echo "DiaObject sequences: $out/sequences (contact sheets, GIF/APNG, sequences/manifest.csv)"
