#!/usr/bin/env bash
# The keyless mode (SPEC §7) on the bundled sample data: no shared secret anywhere.
#   agencies: key new-oprf -> seal;  tax bureau: request;  agencies: answer;  tax bureau: open -> verify
# Usage: bash scripts/run_sample_keyless.sh [OUT_DIR]   (default: out_keyless/)
set -euo pipefail
cd "$(dirname "$0")/.."
MATCHKIT="${MATCHKIT:-.venv/bin/matchkit}"
OUT="${1:-out_keyless}"
YEAR=2024
rm -rf "$OUT"
mkdir -p "$OUT/agency" "$OUT/bureau"
SOURCES="education household civil_affairs only_child medical_insurance"

# 1. each agency, once: its own OPRF key (mode 0600), never shared; 2. each period: a sealed table of its extract
for source in $SOURCES; do
  input=$(ls sample_data/"$source".* | grep -E '\.(csv|xlsx|parquet)$' | head -n 1)
  "$MATCHKIT" key new-oprf -o "$OUT/agency/$source.oprf"
  "$MATCHKIT" seal "$source" "$input" --oprf-key "$OUT/agency/$source.oprf" --tax-year "$YEAR" \
    -o "$OUT/bureau/$source.table.parquet" --rejects "$OUT/agency/$source.rejects.csv" \
    --audit-log "$OUT/agency/$source.audit.log"
done

# 3. tax bureau: blinded request for its determined list (the claims file); the STATE stays with the bureau
"$MATCHKIT" request sample_data/claims.csv -o "$OUT/bureau/request.parquet" --state "$OUT/bureau/request.state" \
  --rejects "$OUT/bureau/claims.rejects.csv"

# 4. each agency answers the request under its own key (capped, logged)
for source in $SOURCES; do
  "$MATCHKIT" answer "$OUT/bureau/request.parquet" --oprf-key "$OUT/agency/$source.oprf" \
    -o "$OUT/bureau/$source.answer.parquet" --max-elements 100000 --audit-log "$OUT/agency/$source.audit.log"
done

# 5. tax bureau: open exactly the listed people's rows, then verify as usual (no key needed)
args=()
for source in $SOURCES; do
  args+=(--answer "$source=$OUT/bureau/$source.answer.parquet" --table "$source=$OUT/bureau/$source.table.parquet")
done
"$MATCHKIT" open --state "$OUT/bureau/request.state" "${args[@]}" -o "$OUT/bureau/opened"
"$MATCHKIT" verify --claims "$OUT/bureau/opened/claims.parquet" \
  "$OUT/bureau/opened/education.parquet" "$OUT/bureau/opened/household.parquet" \
  "$OUT/bureau/opened/civil_affairs.parquet" "$OUT/bureau/opened/only_child.parquet" \
  "$OUT/bureau/opened/medical_insurance.parquet" -o "$OUT/bureau/flags.csv" --report "$OUT/bureau/report.html"
rm -f "$OUT/bureau/request.state"   # the request's blinds and local-token secret: done with them
echo "flags: $OUT/bureau/flags.csv   report: $OUT/bureau/report.html"
