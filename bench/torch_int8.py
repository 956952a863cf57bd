#!/usr/bin/python3
"""PyTorch's int8 ResNet-50 inference, the anchor of QUANTIZATION.md's speed table.

torchvision's ResNet-50 (random weights, as residual's resnet50-infer-int8 quantizes a randomly
initialised model), FX graph-mode post-training quantization with
get_default_qconfig_mapping("onednn") on the oneDNN quantized engine (Debian's PyTorch 1.13 has
no x86 or fbgemm engine), calibrated on two random batches, batch 8 at 224², 2 threads, in NCHW
and channels-last, each run eagerly and as TorchScript (torch.jit.trace, then torch.jit.freeze). Run as ../shared/anchors/torch_bench.py runs PyTorch: re-executed with
jemalloc preloaded (libjemalloc2), as PyTorch's CPU tuning guide recommends. Prints one JSON
line per layout and mode: images/s, median (and min, max) of --runs timed passes after --warmup.

    /usr/bin/python3 bench/torch_int8.py [--runs 7] [--warmup 2]

With --conv3x3 it times one quantized convolution instead, the shape of residual's
conv3x3-int8 benchmark (batch 32, 64 → 64 channels, 56×56, 3×3, padding 1, ReLU fused as in
residual's epilogue, quint8 activations, per-output-channel qint8 weights), in both layouts,
in GOP/s (two operations per multiply-add), and the same convolution in float32 and under
bf16 autocast for comparison.

    /usr/bin/python3 bench/torch_int8.py --conv3x3 [--runs 21]
"""
import argparse
import json
import os
import statistics
import sys
import time

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
if os.path.exists(JEMALLOC) and JEMALLOC not in os.environ.get("LD_PRELOAD", ""):
    os.environ["LD_PRELOAD"] = JEMALLOC
    os.execv(sys.executable, [sys.executable] + sys.argv)

import torch  # noqa: E402
import torchvision  # noqa: E402
from torch.ao.quantization import get_default_qconfig_mapping  # noqa: E402
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--conv3x3", action="store_true", help="time conv3x3-int8's convolution alone")
    a = p.parse_args()
    torch.set_num_threads(2)
    torch.backends.quantized.engine = "onednn"
    torch.manual_seed(0)
    if a.conv3x3:
        conv3x3(a)
        return
    for channels_last, jit in ((False, False), (True, False), (False, True), (True, True)):
        model = torchvision.models.resnet50().eval()
        x = torch.randn(a.batch, 3, 224, 224)
        prepared = prepare_fx(model, get_default_qconfig_mapping("onednn"), example_inputs=(x,))
        with torch.no_grad():
            for _ in range(2):
                prepared(torch.randn(a.batch, 3, 224, 224))
        q = convert_fx(prepared)
        if channels_last:
            q = q.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        if jit:
            with torch.no_grad():
                q = torch.jit.freeze(torch.jit.trace(q, x))
        with torch.no_grad():
            for _ in range(a.warmup):
                q(x)
            ts = []
            for _ in range(a.runs):
                t0 = time.perf_counter()
                q(x)
                ts.append(time.perf_counter() - t0)
        rates = sorted(a.batch / t for t in ts)
        print(json.dumps(dict(name="torchvision resnet50 int8 (FX, onednn)" + (" channels_last" if channels_last else "") + (" jit-frozen" if jit else ""),
                              unit="img/s", median=statistics.median(rates), min=rates[0], max=rates[-1], runs=a.runs,
                              batch=a.batch, threads=torch.get_num_threads(),
                              allocator="jemalloc" if JEMALLOC in os.environ.get("LD_PRELOAD", "") else "default")))
        sys.stdout.flush()


def conv3x3(a):
    """One 3×3 convolution in int8 (oneDNN), float32 and bf16 autocast, GOP/s."""
    import torch.nn.intrinsic.quantized as nniq  # torch.ao.nn.intrinsic in later releases
    n, c, oc, hw = 32, 64, 64, 56
    ops = 2.0 * n * hw * hw * oc * 9 * c
    x = torch.rand(n, c, hw, hw)
    w = torch.randn(oc, c, 3, 3) * 0.05
    qx = torch.quantize_per_tensor(x, 1 / 255, 0, torch.quint8)
    qw = torch.quantize_per_channel(w, w.abs().amax(dim=(1, 2, 3)) / 127, torch.zeros(oc, dtype=torch.long), 0, torch.qint8)
    qconv = nniq.ConvReLU2d(c, oc, 3, padding=1)
    qconv.set_weight_bias(qw, torch.zeros(oc))
    qconv.scale, qconv.zero_point = 0.05, 0
    fconv = torch.nn.Conv2d(c, oc, 3, padding=1).eval()

    def run(name, fn):
        with torch.no_grad():
            for _ in range(a.warmup):
                fn()
            ts = []
            for _ in range(a.runs):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
        rates = sorted(ops / t / 1e9 for t in ts)
        print(json.dumps(dict(name=name, unit="GOP/s", median=statistics.median(rates), min=rates[0], max=rates[-1],
                              runs=a.runs, threads=torch.get_num_threads(),
                              allocator="jemalloc" if JEMALLOC in os.environ.get("LD_PRELOAD", "") else "default")))
        sys.stdout.flush()

    for cl in (False, True):
        fmt = torch.channels_last if cl else torch.contiguous_format
        lay = " channels_last" if cl else " NCHW"
        qxl, xl = qx.contiguous(memory_format=fmt), x.contiguous(memory_format=fmt)
        fl = fconv.to(memory_format=fmt)
        run("conv3x3 64->64 56x56 b32 int8 ConvReLU2d (onednn)" + lay, lambda: qconv(qxl))
        run("conv3x3 64->64 56x56 b32 float32" + lay, lambda: fl(xl))

        def bf():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return fl(xl)
        run("conv3x3 64->64 56x56 b32 bf16 autocast" + lay, bf)


if __name__ == "__main__":
    main()
