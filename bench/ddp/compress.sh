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
for r in $(seq "$rounds"); do
	GOMAXPROCS=1 taskset -c 0 "$tmp/ddpbench1" --model resnet20 --batch 128 --steps 10 --warmup 2 2>/dev/null | res "r$r rn20 local ours11 none"
	timeout 200 /usr/bin/python3 bench/ddp/torch_ddp.py --ranks 1 --threads 1 --model cifar20 --batch 128 --steps 10 --warmup 2 2>/dev/null | res "r$r rn20 local torch11 none"
	for link in "veth --rate 1gbit" "tun --link tun --rate 1gbit --delay 0.5ms"; do
		read -r lname net <<<"$link"
		read -ra net <<<"$net"
		for c in none bf16; do
			timeout 200 bash bench/ddp/netns.sh "${net[@]}" ours --model resnet20 --batch 64 --steps 10 --warmup 2 --grad-compression $c 2>/dev/null | res "r$r rn20 $lname ours $c"
		done
		for c in none fp16; do
			timeout 200 bash bench/ddp/netns.sh "${net[@]}" torch --model cifar20 --batch 64 --steps 10 --warmup 2 --grad-compression $c 2>/dev/null | res "r$r rn20 $lname torch $c"
		done
	done
done
net=(--link tun --rate 1gbit --delay 0.5ms)
for c in none bf16; do
	timeout 300 bash bench/ddp/netns.sh "${net[@]}" ours --model resnet50 --batch 8 --steps 3 --warmup 1 --grad-compression $c 2>/dev/null | res "r1 rn50 tun ours $c"
done
for c in none fp16; do
	timeout 300 bash bench/ddp/netns.sh "${net[@]}" torch --model rn50 --batch 8 --steps 3 --warmup 1 --grad-compression $c 2>/dev/null | res "r1 rn50 tun torch $c"
done
