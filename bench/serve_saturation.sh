#!/bin/bash
# docs/SERVING.md's saturation check, back to back so that the machine's
# speed is the same for both: residual bench resnet50-infer, then residual
# serve with 64 clients for 20 s (bench/serveload), then the bench again.
#
# Usage: bench/serve_saturation.sh CKPT [RESIDUAL_BINARY]: CKPT a ResNet-50
# checkpoint (docs/SERVING.md imports the Keras weights). Listens on
# 127.0.0.1:8080. Run it on a quiet machine.
set -euo pipefail
ckpt=${1:?usage: bench/serve_saturation.sh CKPT [RESIDUAL_BINARY]}
source "$(dirname "$0")/serve_lib.sh" "${2:-}"
"$bin" bench resnet50-infer --runs 5 2>&1 | tail -1
"$bin" serve --model resnet50="$ckpt" --max-batch 8 --grpc-addr "" >"$tmp/server.log" 2>&1 &
pids=($!)
wait_ready serve_saturation.sh "$tmp/server.log"
"$serveload" --model resnet50 --concurrency 64 --duration 20s 2>&1 | tail -1
kill -TERM "${pids[0]}"
wait "${pids[0]}" || true
pids=()
"$bin" bench resnet50-infer --runs 5 2>&1 | tail -1
