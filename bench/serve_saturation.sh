#!/bin/bash
# docs/SERVING.md's saturation check, back to back so that the machine's
# speed is the same for both: residual bench resnet50-infer, then residual
# serve with 64 clients for 20 s (bench/serveload), then the bench again.
#
# Usage: bench/serve_saturation.sh CKPT [RESIDUAL_BINARY]: CKPT a ResNet-50
# checkpoint (docs/SERVING.md imports the Keras weights). Listens on
# 127.0.0.1:8080. Run it on a quiet machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ckpt=${1:?usage: bench/serve_saturation.sh CKPT [RESIDUAL_BINARY]}
tmp=$(mktemp -d)
server=
trap 'if [[ -n $server ]]; then kill -TERM $server 2>/dev/null || true; fi; rm -rf "$tmp"' EXIT
bin=${2:-}
if [[ -z $bin ]]; then
	(cd "$root" && go build -o "$tmp/residual" ./cmd/residual)
	bin=$tmp/residual
fi
(cd "$root" && go build -o "$tmp/serveload" ./bench/serveload)
"$bin" bench resnet50-infer --runs 5 2>&1 | tail -1
"$bin" serve --model resnet50="$ckpt" --max-batch 8 --grpc-addr "" >"$tmp/server.log" 2>&1 &
server=$!
ready=0
for _ in $(seq 1 120); do curl -sf 127.0.0.1:8080/v2/health/ready >/dev/null && ready=1 && break; sleep 1; done
if [[ $ready -eq 0 ]]; then
	echo "serve_saturation.sh: the server was not ready after 120 s:" >&2
	cat "$tmp/server.log" >&2
	exit 1
fi
"$tmp/serveload" --model resnet50 --concurrency 64 --duration 20s 2>&1 | tail -1
kill -TERM $server
wait $server || true
server=
"$bin" bench resnet50-infer --runs 5 2>&1 | tail -1
