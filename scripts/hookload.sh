#!/usr/bin/env bash
# The standard end-to-end load runs of cmd/hookload: hold at 1,000/s and 5,000/s, then
# a short saturate. Each run keeps its files in OUT/<name>/ (config, data, logs,
# report.txt, report.json, timeline.csv, usage.csv); the tables go to OUT/<name>.txt.
#
#   scripts/hookload.sh [OUT]        (default OUT: ./hookload-<date>)
#
# Run it on a quiet machine: every process shares the cores, and the reports show how
# much other work there was ("machine during the load").
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-hookload-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
go build -o "$out/hookload" ./cmd/hookload
run() {
	local name=$1
	shift
	echo "== hookload $*" >&2
	"$out/hookload" "$@" --dir "$out/$name" | tee "$out/$name.txt"
}
run hold-1000 hold --rate 1000 --duration 20s
run hold-5000 hold --rate 5000 --duration 30s
run saturate saturate --start 500 --step 500 --step-duration 10s
