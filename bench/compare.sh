#!/usr/bin/env bash
# Measures residual and PyTorch side by side on this machine, one job at a
# time, each under /usr/bin/time -v for its peak memory, and prints the
# table of docs/PERFORMANCE.md. Needs Debian's python3-torch and
# python3-torchvision and ../shared/anchors/torch_bench.py. Takes about 5
# minutes on 2 cores; run nothing else meanwhile.
#
#   bash bench/compare.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/residual-compare}
mkdir -p "$out"
go build -o "$out/residual" ./cmd/residual
res() { /usr/bin/time -v "$out/residual" bench "$1" --json --runs 7 --warmup 2 > "$out/res_$1.json" 2> "$out/res_$1.time"; }
# Each model's residual and PyTorch runs follow each other, so that the
# machine's drift (it is shared) falls on both sides of a ratio alike.
for n in peak conv3x3; do res "$n"; done
# The same convolution on the direct kernels (its GFLOP/s above are the
# direct convolution's FLOPs over Winograd's time).
RESIDUAL_WINOGRAD=0 "$out/residual" bench conv3x3 --json --runs 7 --warmup 2 > "$out/res_conv3x3-direct.json"
# ONNX Runtime (npm onnxruntime-node, as .ci/run installs it) on residual's
# own ResNet-50 exported to ONNX: resnet50-infer's model, batch and threads.
ort=testdata/external/ort/node_modules
for sec in cifar20:cifar20 cifar56:cifar56 rn18:resnet18 rn50:resnet50 unet:unet; do
  t=${sec%%:*} r=${sec##*:}
  res "$r-train"
  if [ "$r" != unet ]; then res "$r-infer"; fi
  /usr/bin/time -v /usr/bin/python3 ../shared/anchors/torch_bench.py "$t" --runs 7 --warmup 2 > "$out/torch_$t.txt" 2> "$out/torch_$t.time"
  /usr/bin/time -v /usr/bin/python3 ../shared/anchors/torch_bench.py "$t" --runs 7 --warmup 2 --channels-last > "$out/torchcl_$t.txt" 2> "$out/torchcl_$t.time"
  if [ "$r" = resnet50 ] && [ -d "$ort/onnxruntime-node" ]; then
    "$out/residual" export onnx --model resnet50 --out "$out/resnet50.onnx" > /dev/null
    NODE_PATH=$ort /usr/bin/time -v node bench/ort_bench.js "$out/resnet50.onnx" 8 224 7 2 > "$out/ort_resnet50.json" 2> "$out/ort_resnet50.time"
    echo "ONNX Runtime resnet50 inference (batch 8, 2 threads): $(cat "$out/ort_resnet50.json")"
  fi
done
for n in peak conv3x3 cifar20-train; do
  GOMAXPROCS=1 "$out/residual" bench "$n" --json --runs 5 --warmup 1 > "$out/res1_$n.json"
done
/usr/bin/python3 ../shared/anchors/torch_bench.py conv > "$out/torch_conv.txt" 2>&1
/usr/bin/python3 bench/table.py "$out"
