#!/usr/bin/env bash
# The one command behind docs/benchmarks.md: every criterion bench, then the
# report (tables, ratios, machine, docs/img/benchmarks.svg).
#
#   scripts/bench_all.sh                      # full run (what the docs quote)
#   scripts/bench_all.sh -- --measurement-time 3   # arguments go to `cargo bench`
#
# Run it on a quiet machine: every figure is compared with a floor measured
# in the same run, but other load still moves cross-process figures.
set -euo pipefail
cd "$(dirname "$0")/.."
command="scripts/bench_all.sh${*:+ $*}"
# A full run starts from nothing, so no figure of an earlier run (or of a
# bench id since renamed) reaches the report.
if [ "$#" -eq 0 ]; then
    rm -rf target/criterion
fi
cargo bench "$@"
python3 scripts/bench_report.py --command "$command"
