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
root=$(cd "$(dirname "$0")/.." && pwd)
ckpt=${1:?usage: bench/serve_alternate.sh CKPT ONNX [ROUNDS] [RESIDUAL_BINARY]}
onnx=${2:?usage: bench/serve_alternate.sh CKPT ONNX [ROUNDS] [RESIDUAL_BINARY]}
rounds=${3:-3}
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]:-}"; do kill -TERM "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
bin=${4:-}
if [[ -z $bin ]]; then
	(cd "$root" && go build -o "$tmp/residual" ./cmd/residual)
	bin=$tmp/residual
fi
(cd "$root" && go build -o "$tmp/serveload" ./bench/serveload)
"$bin" serve --model resnet50="$ckpt" --max-batch 8 --grpc-addr "" >"$tmp/residual.log" 2>&1 &
pids+=($!)
(cd "$root" && NODE_PATH=testdata/external/ort/node_modules exec node bench/ort_serve.js "$onnx" 8090 2) >"$tmp/ort.log" 2>&1 &
pids+=($!)
ready=0
for _ in $(seq 1 120); do curl -sf 127.0.0.1:8080/v2/health/ready >/dev/null && ready=1 && break; sleep 1; done
if [[ $ready -eq 0 ]]; then
	echo "serve_alternate.sh: residual was not ready after 120 s:" >&2
	cat "$tmp/residual.log" >&2
	exit 1
fi
sleep 3 # the anchor loads its model meanwhile
summary='import json,sys; d=json.load(sys.stdin); print("%.2f req/s p50 %.0f p99 %.0f ms" % (d["throughput"], d["p50_ms"], d["p99_ms"]))'
for r in $(seq 1 "$rounds"); do
	for c in 1 8; do
		echo "round $r c=$c residual $("$tmp/serveload" --model resnet50 --concurrency $c --duration 20s --json | tail -1 | python3 -c "$summary")"
		echo "round $r c=$c ort      $("$tmp/serveload" --url http://127.0.0.1:8090 --model m --shape 1,224,224,3 --concurrency $c --duration 20s --json | tail -1 | python3 -c "$summary")"
	done
done
