#!/usr/bin/env bash
# The main job on the bundled sample data: key -> hash every source -> verify -> flags and report.
# Usage: bash scripts/run_sample.sh [OUT_DIR]
#   OUT_DIR      where everything is written (default: out/ in the repository)
#   MATCHKIT     the matchkit command to run (default: the repository's .venv/bin/matchkit if there is one, else
#                `matchkit` on the PATH, e.g. an installed wheel)
#   SAMPLE_DATA  the folder holding the sample extracts (default: sample_data/ beside this script's folder)
# Runs from any folder: relative OUT_DIR, MATCHKIT and SAMPLE_DATA are taken from the current folder.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -z "${MATCHKIT:-}" ]]; then
  if [[ -x "$HERE/.venv/bin/matchkit" ]]; then MATCHKIT="$HERE/.venv/bin/matchkit"; else MATCHKIT=matchkit; fi
fi
SAMPLE="${SAMPLE_DATA:-$HERE/sample_data}"
OUT="${1:-$HERE/out}"
mkdir -p "$OUT"
rm -f "$OUT/shared.key"

# 1. the key custodian creates the shared secret (mode 0600); agencies and the tax bureau receive the file
"$MATCHKIT" key new -o "$OUT/shared.key"
export MATCHKIT_KEY_FILE="$OUT/shared.key"   # the key is named by a file, never given on the command line

# 2. each agency hashes its own extract; 3. the tax bureau hashes its claims
for source in education household civil_affairs only_child medical_insurance claims; do
  input=$(ls "$SAMPLE"/"$source".* | grep -E '\.(csv|xlsx|parquet)$' | head -n 1)
  "$MATCHKIT" hash "$source" "$input" -o "$OUT/$source.parquet" --rejects "$OUT/$source.rejects.csv"
done

# 4. tax staff verify: no key needed
unset MATCHKIT_KEY_FILE
"$MATCHKIT" verify --claims "$OUT/claims.parquet" \
  "$OUT/education.parquet" "$OUT/household.parquet" "$OUT/civil_affairs.parquet" \
  "$OUT/only_child.parquet" "$OUT/medical_insurance.parquet" \
  -o "$OUT/flags.csv" --report "$OUT/report.html"
# the same flags as a workbook for tax staff (Chinese; --lang en for English): reasons explained, summary sheet
"$MATCHKIT" verify --claims "$OUT/claims.parquet" \
  "$OUT/education.parquet" "$OUT/household.parquet" "$OUT/civil_affairs.parquet" \
  "$OUT/only_child.parquet" "$OUT/medical_insurance.parquet" \
  -o "$OUT/flags.xlsx" > /dev/null
echo "flags: $OUT/flags.csv and $OUT/flags.xlsx   report: $OUT/report.html"
