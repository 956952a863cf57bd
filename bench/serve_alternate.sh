#!/bin/bash
# docs/SERVING.md's side-by-side check: residual serve (port 8080) and ONNX
# Runtime behind bench/ort_serve.js (port 8090, 2 threads) run at once, and
# bench/serveload alternates runs between them at each load, so that the
# machine's drift falls on both alike.
#
# Usage: bench/serve_alternate.sh CKPT ONNX [ROUNDS] [RESIDUAL_BINARY]: CKPT
# and ONNX the same model (docs/SERVING.md imports the Keras ResNet-50 and
# exports it). The environment may set SHAPE (the anchor's input N,H,W,C;
# default 1,224,224,3), SERVE_ARGS (residual serve's flags; default
# --max-batch 8), DURATION (of each run; default 20s), WARMUP (serveload's
# unmeasured lead-in before each run; default 2s) and LOADS (serveload flags
# per load, separated by ';'; default one client, then 8).
# Needs testdata/external/ort (as .ci/run installs it). Loopback only; run
# it on a quiet machine.
set -euo pipefail
ckpt=${1:?usage: bench/serve_alternate.sh CKPT ONNX [ROUNDS] [RESIDUAL_BINARY]}
onnx=${2:?usage: bench/serve_alternate.sh CKPT ONNX [ROUNDS] [RESIDUAL_BINARY]}
rounds=${3:-3}
shape=${SHAPE:-1,224,224,3}
duration=${DURATION:-20s}
warmup=${WARMUP:-2s}
IFS=';' read -r -a loads <<<"${LOADS:---concurrency 1;--concurrency 8}"
source "$(dirname "$0")/serve_lib.sh" "${4:-}"
# shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
"$bin" serve --model m="$ckpt" ${SERVE_ARGS:---max-batch 8} --grpc-addr "" >"$tmp/residual.log" 2>&1 &
pids+=($!)
(cd "$root" && NODE_PATH=testdata/external/ort/node_modules exec node bench/ort_serve.js "$onnx" 8090 2) >"$tmp/ort.log" 2>&1 &
pids+=($!)
wait_ready serve_alternate.sh "$tmp/residual.log"
sleep 3 # the anchor loads its model meanwhile
summary='import json,sys; d=json.load(sys.stdin); print("%.1f req/s p50 %.2f p90 %.2f p99 %.2f ms, %d errors" % (d["throughput"], d["p50_ms"], d["p90_ms"], d["p99_ms"], len(d["errors"])))'
for r in $(seq 1 "$rounds"); do
	for load in "${loads[@]}"; do
		# shellcheck disable=SC2086 # $load is serveload's flags
		echo "round $r $load residual $("$serveload" --model m $load --duration "$duration" --warmup "$warmup" --json | tail -1 | python3 -c "$summary")"
		# shellcheck disable=SC2086
		echo "round $r $load ort      $("$serveload" --url http://127.0.0.1:8090 --model m --shape "$shape" $load --duration "$duration" --warmup "$warmup" --json | tail -1 | python3 -c "$summary")"
	done
done
