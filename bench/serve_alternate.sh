#!/bin/bash
# docs/SERVING.md's side-by-side check of ResNet-50 serving: residual serve
# (port 8080) and ONNX Runtime behind bench/ort_serve.js (port 8090) run at
# once, and bench/serveload alternates 20 s runs at concurrency 1 and 8
# between them, so that the machine's drift falls on both alike.
#
# Usage: bench/serve_alternate.sh CKPT ONNX [ROUNDS] [RESIDUAL_BINARY]: CKPT
# and ONNX the same ResNet-50 (docs/SERVING.md imports the Keras weights
# and exports them). Needs testdata/external/ort (as .ci/run installs it).
# Loopback only; run it on a quiet machine.
set -euo pipefail
ckpt=${1:?usage: bench/serve_alternate.sh CKPT ONNX [ROUNDS] [RESIDUAL_BINARY]}
onnx=${2:?usage: bench/serve_alternate.sh CKPT ONNX [ROUNDS] [RESIDUAL_BINARY]}
rounds=${3:-3}
source "$(dirname "$0")/serve_lib.sh" "${4:-}"
"$bin" serve --model resnet50="$ckpt" --max-batch 8 --grpc-addr "" >"$tmp/residual.log" 2>&1 &
pids+=($!)
(cd "$root" && NODE_PATH=testdata/external/ort/node_modules exec node bench/ort_serve.js "$onnx" 8090 2) >"$tmp/ort.log" 2>&1 &
pids+=($!)
wait_ready serve_alternate.sh "$tmp/residual.log"
sleep 3 # the anchor loads its model meanwhile
summary='import json,sys; d=json.load(sys.stdin); print("%.2f req/s p50 %.0f p99 %.0f ms" % (d["throughput"], d["p50_ms"], d["p99_ms"]))'
for r in $(seq 1 "$rounds"); do
	for c in 1 8; do
		echo "round $r c=$c residual $("$serveload" --model resnet50 --concurrency $c --duration 20s --json | tail -1 | python3 -c "$summary")"
		echo "round $r c=$c ort      $("$serveload" --url http://127.0.0.1:8090 --model m --shape 1,224,224,3 --concurrency $c --duration 20s --json | tail -1 | python3 -c "$summary")"
	done
done
