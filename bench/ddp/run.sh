#!/bin/bash
# The step-time measurements of docs/DISTRIBUTED.md, on one machine: CIFAR
# ResNet-20 (batch 128 in all) and ResNet-50 (224×224, batch 16 in all) as
# 1 process × 2 threads, 1 process × 1 thread, and 2 ranks × 1 thread (each
# half the batch, each bound to its own core), for residual (ddpbench) and
# for PyTorch DDP with Gloo (torch_ddp.py, jemalloc preloaded as the
# anchors run it). Every line it prints that starts with RESULT is one JSON
# result (see ddpbench and torch_ddp.py for the fields); bench/ddp/measure.sh
# runs it with the netns runs and collects the results.
#
# Usage: bench/ddp/run.sh [--quick] [--steps N] [--warmup W] [--side S] [--models "resnet20 resnet50"] [--no-torch | --no-ours]
#   --quick: 1 warm-up and 2 timed steps at batch 8/2 (checks that it runs, measures nothing)
#   --side:  image side for ResNet-50 (default 224; smaller only for smoke tests)
# DDPBENCH names a ddpbench built with -tags mpi (default: built here).
# Run it on a quiet machine: nothing else should use the cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
steps=20 warmup=3 quick=0 torch=1 ours=1 models="resnet20 resnet50" side=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--quick) quick=1 steps=2 warmup=1; shift ;;
	--steps) steps=$2; shift 2 ;;
	--warmup) warmup=$2; shift 2 ;;
	--side) side=$2; shift 2 ;;
	--models) models=$2; shift 2 ;;
	--no-torch) torch=0; shift ;;
	--no-ours) ours=0; shift ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=${DDPBENCH:-$tmp/ddpbench}
[[ -n ${DDPBENCH:-} || $ours -eq 0 ]] || (cd "$root" && CGO_ENABLED=1 go build -tags mpi -o "$bin" ./bench/ddp/ddpbench)
mpi=(mpirun --allow-run-as-root --oversubscribe --bind-to core -x GOMAXPROCS=1 -np 2)

for model in $models; do
	sides=()
	case $model in
	resnet20) global=128 torchname=cifar20 ;;
	resnet50) global=16 torchname=rn50; [[ $side -gt 0 ]] && sides=(--side "$side") ;;
	*) echo "run.sh: unknown model $model (resnet20, resnet50)" >&2; exit 2 ;;
	esac
	[[ $quick -eq 1 ]] && global=8
	half=$((global / 2))
	common=(--model "$model" --steps "$steps" --warmup "$warmup" "${sides[@]}")
	if [[ $ours -eq 1 ]]; then
		echo "# $model: 1 process × 2 threads, batch $global" >&2
		GOMAXPROCS=2 taskset -c 0,1 "$bin" "${common[@]}" --distributed none --batch "$global"
		echo "# $model: 1 process × 1 thread, batch $global" >&2
		GOMAXPROCS=1 taskset -c 0 "$bin" "${common[@]}" --distributed none --batch "$global"
		echo "# $model: 2 ranks × 1 thread, batch $half each" >&2
		"${mpi[@]}" "$bin" "${common[@]}" --distributed mpi --batch "$half"
	fi
	if [[ $torch -eq 1 ]]; then
		tcommon=(--model "$torchname" --steps "$steps" --warmup "$warmup" "${sides[@]}")
		echo "# torch $torchname: 1 × 2 threads, 1 × 1 thread, 2 ranks × 1 thread (Gloo, a core each)" >&2
		taskset -c 0,1 /usr/bin/python3 "$here/torch_ddp.py" "${tcommon[@]}" --threads 2 --batch "$global"
		taskset -c 0 /usr/bin/python3 "$here/torch_ddp.py" "${tcommon[@]}" --threads 1 --batch "$global"
		/usr/bin/python3 "$here/torch_ddp.py" "${tcommon[@]}" --ranks 2 --threads 1 --batch "$half"
	fi
done
