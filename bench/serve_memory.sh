#!/bin/bash
# docs/SERVING.md's memory check of ResNet-50 serving: residual serve
# (--max-batch 8) under 15 s of 8 clients, 15 s of 64, then 160 req/s
# (about 9× saturation) for 20 s; the resident set (VmRSS) and its peak
# (VmHWM) after each, and the Go heap in use and idle at the end.
#
# Usage: bench/serve_memory.sh CKPT [RESIDUAL_BINARY]: CKPT a ResNet-50
# checkpoint (docs/SERVING.md imports the Keras weights). Listens on
# 127.0.0.1:8080.
set -euo pipefail
ckpt=${1:?usage: bench/serve_memory.sh CKPT [RESIDUAL_BINARY]}
source "$(dirname "$0")/serve_lib.sh" "${2:-}"
"$bin" serve --model resnet50="$ckpt" --max-batch 8 --max-delay 0 --grpc-addr "" >"$tmp/server.log" 2>&1 &
pids=($!)
wait_ready serve_memory.sh "$tmp/server.log"
rss() { awk '/VmRSS|VmHWM/ {printf "%s %d MB  ", $1, $2/1024}' "/proc/${pids[0]}/status"; }
echo "ready: $(rss)"
"$serveload" --model resnet50 --concurrency 8,64 --duration 15s 2>&1 | grep -E '^(concurrency|rate)=' | cut -c1-110
echo "before the overload: $(rss)"
"$serveload" --model resnet50 --rates 160 --duration 20s --max-requests 400000 --timeout 10s 2>&1 | grep -E '^(concurrency|rate)='
echo "after the overload: $(rss)"
curl -s 127.0.0.1:8080/metrics | grep -E '^go_memstats_heap_(inuse|idle)_bytes'
