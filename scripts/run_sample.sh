#!/usr/bin/env bash
# The main job on the bundled sample data: key -> hash every source -> verify -> flags and report.
# Usage: bash scripts/run_sample.sh [OUT_DIR]   (default: out/)
set -euo pipefail
cd "$(dirname "$0")/.."
MATCHKIT="${MATCHKIT:-.venv/bin/matchkit}"
OUT="${1:-out}"
mkdir -p "$OUT"
rm -f "$OUT/shared.key"

# 1. the key custodian creates the shared secret (mode 0600); agencies and the tax bureau receive the file
"$MATCHKIT" key new -o "$OUT/shared.key"
export MATCHKIT_KEY_FILE="$OUT/shared.key"   # the key is named by a file, never given on the command line

# 2. each agency hashes its own extract; 3. the tax bureau hashes its claims
for source in education household civil_affairs only_child medical_insurance claims; do
  input=$(ls sample_data/"$source".* | grep -E '\.(csv|xlsx|parquet)$' | head -n 1)
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
