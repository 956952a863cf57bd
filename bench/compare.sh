#!/usr/bin/env bash
# Measures residual and PyTorch side by side on this machine, one job at a
# time, each under /usr/bin/time -v for its peak memory, and prints the
# table of docs/PERFORMANCE.md. Needs Debian's python3-torch,
# python3-torchvision and libjemalloc2, and ../shared/anchors/torch_bench.py
# (or TORCH_BENCH=PATH); ONNX Runtime's row needs testdata/external/ort
# (.ci/run installs it). Run nothing else meanwhile: PyTorch's threads meet
# at a barrier after every operation and suffer most from a busy machine.
#
# ResNet-50 and CIFAR ResNet-20 are also run in bfloat16: residual's bf16
# benchmarks against PyTorch's autocast (torch_bench.py --bf16).
#
# Running time: about 4 minutes on the 2-core AVX-512 machine (2026-12-05),
# 4 minutes 10 s on a 2-core AVX2-only machine before the bf16 rows
# (2026-12-03).
#
#   bash bench/compare.sh [OUTDIR]     measure, then print the table
#   bash bench/compare.sh --check      check the prerequisites, build, and
#                                      print what would run (no benchmark)
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
case "${1:-}" in
-h | --help)
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
  ;;
-n | --check) check=true; shift ;;
-*) echo "compare.sh: unknown option $1 (--check, --help)" >&2; exit 2 ;;
esac
out=${1:-/tmp/residual-compare}
torch_bench=${TORCH_BENCH:-../shared/anchors/torch_bench.py}
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
ort=testdata/external/ort/node_modules
# torch_bench.py's sections and residual's benchmarks, paired; bf16pairs
# are also run in bfloat16 (residual's NAME-bf16 benchmarks, PyTorch's
# autocast).
pairs="cifar20:cifar20 cifar56:cifar56 rn18:resnet18 rn50:resnet50 unet:unet"
bf16pairs="cifar20:cifar20 rn50:resnet50"
bf16benches="cifar20-train-bf16 resnet50-train-bf16 resnet50-infer-bf16"
# bf16of R prints residual's bf16 benchmarks of model R, each after a space.
bf16of() { for b in $bf16benches; do case $b in "$1"-*) printf ' %s' "$b" ;; esac; done; }

# Prerequisites, checked before anything runs.
fail() { echo "compare.sh: $*" >&2; exit 1; }
[ -x /usr/bin/time ] || fail "/usr/bin/time is missing (apt-get install time)"
[ -x /usr/bin/python3 ] || fail "/usr/bin/python3 is missing"
[ -f "$torch_bench" ] || fail "no $torch_bench (set TORCH_BENCH to torch_bench.py's path)"
# torch_bench.py preloads jemalloc only if it is installed, and silently runs
# PyTorch 2-5x slower without it: refuse rather than publish such ratios.
[ -f "$jemalloc" ] || fail "no $jemalloc (apt-get install libjemalloc2): PyTorch would run without jemalloc"
mkdir -p "$out"
go build -o "$out/residual" ./cmd/residual
known=$("$out/residual" bench --help 2>&1 | sed -n 's/.*names: \(.*\) (default: all).*/\1/p')
for sec in $pairs; do
  r=${sec##*:}
  for b in "$r-train" $([ "$r" != unet ] && echo "$r-infer") peak conv3x3; do
    case ", $known," in *", $b,"*) ;; *) fail "residual bench has no benchmark $b (it has: $known)" ;; esac
  done
done
for b in $bf16benches; do
  case ", $known," in *", $b,"*) ;; *) fail "residual bench has no benchmark $b (it has: $known)" ;; esac
done

if $check; then
  /usr/bin/python3 "$torch_bench" --help > /dev/null || fail "$torch_bench --help failed"
  "$out/residual" version | grep -E '^(go|kernels|cpus) '
  grep -m1 'model name' /proc/cpuinfo || true
  echo "would run, in this order (each under /usr/bin/time -v, results in $out):"
  echo "  residual bench peak, conv3x3 (and conv3x3 with RESIDUAL_WINOGRAD=0) --runs 7 --warmup 2"
  for sec in $pairs; do
    t=${sec%%:*} r=${sec##*:}
    case " $bf16pairs " in
    *" $sec "*)
      echo "  residual bench $r-train $r-infer$(bf16of "$r"); torch_bench.py $t, $t --channels-last, $t --bf16, $t --bf16 --channels-last" ;;
    *) echo "  residual bench $r-train$([ "$r" != unet ] && echo " $r-infer"); torch_bench.py $t, then $t --channels-last" ;;
    esac
  done
  if [ -d "$ort/onnxruntime-node" ]; then
    echo "  ONNX Runtime on residual's exported resnet50 (node bench/ort_bench.js)"
  else
    echo "  (no ONNX Runtime row: $ort/onnxruntime-node is missing)"
  fi
  echo "  GOMAXPROCS=1 residual bench peak, conv3x3, cifar20-train; torch_bench.py conv; bench/table.py"
  exit 0
fi

grep -m1 'model name' /proc/cpuinfo > "$out/machine.txt" || true
grep -m1 '^flags' /proc/cpuinfo | grep -o 'avx512f\|avx2' | sort -u | tr '\n' ' ' >> "$out/machine.txt" || true
res() { /usr/bin/time -v "$out/residual" bench "$1" --json --runs 7 --warmup 2 > "$out/res_$1.json" 2> "$out/res_$1.time"; }
# Each model's residual and PyTorch runs follow each other, so that the
# machine's drift (it is shared) falls on both sides of a ratio alike.
for n in peak conv3x3; do res "$n"; done
# The same convolution on the direct kernels (its GFLOP/s above are the
# direct convolution's FLOPs over Winograd's time).
RESIDUAL_WINOGRAD=0 "$out/residual" bench conv3x3 --json --runs 7 --warmup 2 > "$out/res_conv3x3-direct.json"
# ONNX Runtime (npm onnxruntime-node, as .ci/run installs it) on residual's
# own ResNet-50 exported to ONNX: resnet50-infer's model, batch and threads.
for sec in $pairs; do
  t=${sec%%:*} r=${sec##*:}
  res "$r-train"
  if [ "$r" != unet ]; then res "$r-infer"; fi
  # The bfloat16 benchmarks of the models in bf16pairs right after their
  # fp32 ones, so that a bf16 ÷ fp32 ratio spans seconds, not minutes.
  bf=false
  case " $bf16pairs " in *" $sec "*) bf=true ;; esac
  if $bf; then
    for b in $(bf16of "$r"); do res "$b"; done
  fi
  /usr/bin/time -v /usr/bin/python3 "$torch_bench" "$t" --runs 7 --warmup 2 > "$out/torch_$t.txt" 2> "$out/torch_$t.time"
  /usr/bin/time -v /usr/bin/python3 "$torch_bench" "$t" --runs 7 --warmup 2 --channels-last > "$out/torchcl_$t.txt" 2> "$out/torchcl_$t.time"
  if $bf; then
    /usr/bin/time -v /usr/bin/python3 "$torch_bench" "$t" --bf16 --runs 7 --warmup 2 > "$out/torchbf_$t.txt" 2> "$out/torchbf_$t.time"
    /usr/bin/time -v /usr/bin/python3 "$torch_bench" "$t" --bf16 --runs 7 --warmup 2 --channels-last > "$out/torchbfcl_$t.txt" 2> "$out/torchbfcl_$t.time"
  fi
  if [ "$r" = resnet50 ] && [ -d "$ort/onnxruntime-node" ]; then
    "$out/residual" export onnx --model resnet50 --out "$out/resnet50.onnx" > /dev/null
    # ort_bench.js: model, batch, side, timed runs (after 3 warm-ups), threads.
    NODE_PATH=$ort /usr/bin/time -v node bench/ort_bench.js "$out/resnet50.onnx" 8 224 7 2 > "$out/ort_resnet50.json" 2> "$out/ort_resnet50.time"
    echo "ONNX Runtime resnet50 inference (batch 8, 2 threads): $(cat "$out/ort_resnet50.json")"
  fi
done
for n in peak conv3x3 cifar20-train; do
  GOMAXPROCS=1 "$out/residual" bench "$n" --json --runs 5 --warmup 1 > "$out/res1_$n.json"
done
/usr/bin/python3 "$torch_bench" conv > "$out/torch_conv.txt" 2>&1
/usr/bin/python3 bench/table.py "$out"
