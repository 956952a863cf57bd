#!/bin/bash
# Does a one-thread process slow down when a second one runs beside it on
# the other core, without MPI? For each benchmark: alone, then two at once,
# GOMAXPROCS=1, twice. docs/DISTRIBUTED.md uses it to tell the machine's
# shared resources (caches, memory bandwidth, clock) from a rank's own costs.
#
# Usage: bench/ddp/pair.sh [RESIDUAL_BINARY] (default: built here). Run it on
# a quiet machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [[ -z $bin ]]; then
	(cd "$root" && go build -o "$tmp/residual" ./cmd/residual)
	bin=$tmp/residual
fi
out=$tmp
for w in peak cifar20-train resnet50-train; do
	for round in 1 2; do
		echo "== $w alone (round $round)"
		GOMAXPROCS=1 "$bin" bench "$w" --runs 5 2>&1 | tail -1
		echo "== $w two at once (round $round)"
		GOMAXPROCS=1 "$bin" bench "$w" --runs 5 >"$out/a" 2>&1 &
		a=$!
		GOMAXPROCS=1 "$bin" bench "$w" --runs 5 >"$out/b" 2>&1 &
		b=$!
		wait $a || { cat "$out/a" >&2; exit 1; }
		wait $b || { cat "$out/b" >&2; exit 1; }
		tail -1 "$out/a"
		tail -1 "$out/b"
	done
done
