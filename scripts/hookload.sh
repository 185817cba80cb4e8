#!/usr/bin/env bash
# The standard end-to-end runs of cmd/hookload: hold at 1,000/s and 5,000/s, a short
# saturate, and the long fault run (≥ 30,000 events while every process class is
# SIGKILLed and restarted in turn, the sink failing, hanging and answering 410/429/500). Each run keeps its files in OUT/<name>/ (config, data, logs,
# report.txt, report.json, timeline.csv, usage.csv); the tables go to OUT/<name>.txt.
#
#   scripts/hookload.sh [OUT]        (default OUT: ./hookload-<date>)
#
# Run it on a quiet machine: every process shares the cores, and the reports show how
# much other work there was ("machine during the load").
#
# A run that loses events or sees a process fail exits 1, and set -e (with pipefail,
# through tee) stops the script there on purpose: the runs after it would measure a
# broken system. Its report is in OUT/<name>/. (A system that merely can't keep up
# exits 0: the report says so.)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-hookload-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
go build -o "$out/hookload" ./cmd/hookload
go build -o "$out/hookrelay" ./cmd/hookrelay # once, for every run
run() {
	local name=$1
	shift
	echo "== hookload $*" >&2
	"$out/hookload" "$@" --hookrelay "$out/hookrelay" --dir "$out/$name" | tee "$out/$name.txt"
}
run hold-1000 hold --rate 1000 --duration 20s
run hold-5000 hold --rate 5000 --duration 30s
run saturate saturate --start 500 --step 500 --step-duration 10s
run faults faults --rate 300 --duration 110s
