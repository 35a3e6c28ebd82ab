#!/usr/bin/env bash
# Reproduces the main tables and plots of docs/RESULTS.md (release build; about 15 minutes on 2 cores);
# the defaults, standardisation and ablation tables come from Benchmarks/sweep.py (commands in RESULTS.md).
#   Benchmarks/run_results.sh [OUT_DIR]       (default: results-out; the plots are also copied to docs/results/)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results-out}
swift build -c release --scratch-path .build-sim-release --product flexmoe-server
BIN=.build-sim-release/release/flexmoe-server
mkdir -p Benchmarks/data
# UCI digits in their raw 0..16 pixel units: the defaults standardise inputs with federated statistics.
[ -f Benchmarks/data/digits-raw.csv ] || python3 Benchmarks/make_digits_csv.py --raw Benchmarks/data/digits-raw.csv

run() {  # name, then simulate flags
    local name=$1; shift
    local start=$SECONDS
    "$BIN" simulate "$@" --strategy flex,greedy,random,fedavg-dense,fedavg-dense-matched --seeds 1,2,3,4,5 --rounds 40 --capacity boards --out "$OUT/$name" --quiet | tee "$OUT/$name.txt"
    echo "$name: $((SECONDS - start)) s" | tee -a "$OUT/times.txt"
    mkdir -p "docs/results/$name"
    cp "$OUT/$name"/{accuracy,load_cv,heatmap_flex,heatmap_greedy}.svg "$OUT/$name/summary.json" "docs/results/$name/"
}
mkdir -p "$OUT"
: > "$OUT/times.txt"
run synthetic-dirichlet --dataset synthetic --split dirichlet:0.3 --clients 64 --experts 16
run synthetic-dirichlet01 --dataset synthetic --split dirichlet:0.1 --clients 64 --experts 16
run synthetic-classes2  --dataset synthetic --split classes:2     --clients 64 --experts 16
run digits-dirichlet    --dataset csv:Benchmarks/data/digits-raw.csv --split dirichlet:0.3 --clients 32 --experts 8
run digits-dirichlet01  --dataset csv:Benchmarks/data/digits-raw.csv --split dirichlet:0.1 --clients 32 --experts 8
run digits-classes2     --dataset csv:Benchmarks/data/digits-raw.csv --split classes:2     --clients 32 --experts 8
# The tables of docs/RESULTS.md, from the summaries above.
python3 Benchmarks/results_tables.py "$OUT" | tee "$OUT/tables.md"
