#!/usr/bin/python3
"""Prints the docs/PERFORMANCE.md table from the files bench/compare.sh writes."""
import json
import os
import re
import sys

out = sys.argv[1]


def last_json(path):
    with open(path) as f:
        return json.loads(f.read().strip().splitlines()[-1])


def rss_mb(path):
    try:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(path).read())
        return int(m.group(1)) / 1024 if m else float("nan")
    except OSError:
        return float("nan")


def torch(sec, cl, kind, bf16=False):
    path = os.path.join(out, ("torchbf" if bf16 else "torch") + ("cl_" if cl else "_") + sec + ".txt")
    for line in open(path):
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            if r["name"].endswith(kind):
                return r["median"]
    return float("nan")


rows = [("cifar20-train", "cifar20", "train step"), ("cifar20-infer", "cifar20", "inference"),
        ("cifar56-train", "cifar56", "train step"), ("cifar56-infer", "cifar56", "inference"),
        ("resnet18-train", "rn18", "train step"), ("resnet18-infer", "rn18", "inference"),
        ("resnet50-train", "rn50", "train step"), ("resnet50-infer", "rn50", "inference"),
        ("unet-train", "unet", "train step")]
p = last_json(os.path.join(out, "res_peak.json"))
peak = p["median"]
machine = os.path.join(out, "machine.txt")
if os.path.exists(machine):
    print(" ".join(open(machine).read().split()))
print(f"kernels: {p.get('kernels', '?')}, {p.get('threads', '?')} threads")
print(f"measured FMA peak: {peak:.0f} GFLOP/s (2 threads)")
c = last_json(os.path.join(out, "res_conv3x3.json"))["median"]
print(f"conv3x3 64->64 56x56 b32 forward: {c:.0f} GFLOP/s = {100 * c / peak:.0f}% of peak (direct-convolution FLOPs per second)")
direct = os.path.join(out, "res_conv3x3-direct.json")
if os.path.exists(direct):
    d = last_json(direct)["median"]
    print(f"  on the direct kernels (RESIDUAL_WINOGRAD=0): {d:.0f} GFLOP/s = {100 * d / peak:.0f}% of peak")
print()
print("| benchmark | residual img/s (min–max) | PyTorch NCHW | PyTorch channels-last | ratio to PyTorch's best | residual GFLOP/s (% of peak) | peak RSS residual / PyTorch best layout (MB) |")
print("|---|---|---|---|---|---|---|")
for name, sec, kind in rows:
    r = last_json(os.path.join(out, f"res_{name}.json"))
    a, b = torch(sec, False, kind), torch(sec, True, kind)
    best, bcl = max(a, b), b >= a
    trss = rss_mb(os.path.join(out, ("torchcl_" if bcl else "torch_") + sec + ".time"))
    print(f"| {name} | {r['median']:.1f} ({r['min']:.1f}–{r['max']:.1f}) | {a:.1f} | {b:.1f} | {r['median'] / best:.2f}× | "
          f"{r['gflops']:.0f} ({100 * r['gflops'] / peak:.0f}%) | {rss_mb(os.path.join(out, f'res_{name}.time')):.0f} / {trss:.0f} |")

# The bfloat16 rows (compare.sh's second part), when it ran them.
bf16rows = [("cifar20-train-bf16", "cifar20-train", "cifar20", "bf16-autocast train step"),
            ("resnet50-train-bf16", "resnet50-train", "rn50", "bf16-autocast train step"),
            ("resnet50-infer-bf16", "resnet50-infer", "rn50", "bf16-autocast inference")]
if all(os.path.exists(os.path.join(out, f"res_{name}.json")) for name, _, _, _ in bf16rows):
    print()
    print("| bf16 benchmark | residual img/s (min–max) | ÷ residual fp32 | PyTorch bf16 autocast NCHW | channels-last | ratio to PyTorch's best |")
    print("|---|---|---|---|---|---|")
    for name, fp32, sec, kind in bf16rows:
        r = last_json(os.path.join(out, f"res_{name}.json"))
        f = last_json(os.path.join(out, f"res_{fp32}.json"))
        a, b = torch(sec, False, kind, True), torch(sec, True, kind, True)
        print(f"| {name} | {r['median']:.1f} ({r['min']:.1f}–{r['max']:.1f}) | {r['median'] / f['median']:.2f}× | {a:.1f} | {b:.1f} | "
              f"{r['median'] / max(a, b):.2f}× |")
