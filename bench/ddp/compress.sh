#!/bin/bash
# Gradient compression over slow links, as docs/DISTRIBUTED.md measures it:
# residual (ddpbench --grad-compression none / bf16) and PyTorch DDP
# (torch_ddp.py --grad-compression none / fp16) in turn, 2 ranks × 1 thread
# over the 1 Gbit/s veth and the 1 Gbit/s + 0.5 ms linkemu link (netns.sh),
# ResNet-20 in ROUNDS rounds with both libraries' 1 × 1 thread alongside,
# then ResNet-50 once over the latency link. As root, on a quiet machine;
# prints each RESULT line prefixed with round, model, link, library and
# compression. About 6 minutes with 2 rounds on the 2-core AVX-512 VM.
#
# Usage: bench/ddp/compress.sh [ROUNDS]
set -uo pipefail # a failed run leaves its line out; the others still run
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
rounds=${1:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/ddpbench1" ./bench/ddp/ddpbench
CGO_ENABLED=1 go build -tags mpi -o "$tmp/ddpbench" ./bench/ddp/ddpbench
export DDPBENCH=$tmp/ddpbench
res() { grep '^RESULT' | sed "s/^/$1 /" || true; }
# pairs ROUND MODEL LINK LIMIT_S NETNS_ARGS... -- BENCH_ARGS...: both
# libraries over the link, each without and with its compression (residual
# bf16, PyTorch fp16).
pairs() {
	local round=$1 model=$2 lname=$3 lim=$4 net=() lib m half ours_model torch_model c
	shift 4
	while [[ $1 != -- ]]; do net+=("$1"); shift; done
	shift
	case $model in rn20) ours_model=resnet20 torch_model=cifar20 ;; rn50) ours_model=resnet50 torch_model=rn50 ;; esac
	for lib in "ours $ours_model bf16" "torch $torch_model fp16"; do
		read -r lib m half <<<"$lib"
		for c in none "$half"; do
			timeout "$lim" bash bench/ddp/netns.sh "${net[@]}" "$lib" --model "$m" "$@" --grad-compression $c 2>/dev/null | res "$round $model $lname $lib $c"
		done
	done
}
for r in $(seq "$rounds"); do
	GOMAXPROCS=1 taskset -c 0 "$tmp/ddpbench1" --model resnet20 --batch 128 --steps 10 --warmup 2 2>/dev/null | res "r$r rn20 local ours11 none"
	timeout 200 /usr/bin/python3 bench/ddp/torch_ddp.py --ranks 1 --threads 1 --model cifar20 --batch 128 --steps 10 --warmup 2 2>/dev/null | res "r$r rn20 local torch11 none"
	for link in "veth --rate 1gbit" "tun --link tun --rate 1gbit --delay 0.5ms"; do
		read -r lname net <<<"$link"
		read -ra net <<<"$net"
		pairs r$r rn20 "$lname" 200 "${net[@]}" -- --batch 64 --steps 10 --warmup 2
	done
done
pairs r1 rn50 tun 300 --link tun --rate 1gbit --delay 0.5ms -- --batch 8 --steps 3 --warmup 1
