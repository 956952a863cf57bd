#!/usr/bin/python3
"""Writes testdata/torch/models.json: PyTorch outputs and gradients of whole
networks and of every block type, for the Go tests of models/.

Run from the repository root: /usr/bin/python3 testdata/torch/gen_models.py

No weights are stored. Both sides fill every state-dict tensor (and the input)
from the same deterministic integer hash of its name and index, implemented
here in numpy and in Go (internal/fixture.Fill):

    seed = FNV-1a-32(name)
    x    = (i * 2654435761 + seed) mod 2^32, then three rounds of
           x ^= x >> 16; x = x * 0x45d9f3b mod 2^32 (the last without the multiply)
    c    = 2 * x / 2^32 - 1                      in [-1, 1)
    conv/linear weight: c * sqrt(3 / fan_in)     (fan_in = prod(shape[1:]))
    BN weight (rank 1): 1 + 0.25 c; bias: 0.1 c; running_mean: 0.1 c;
    running_var: 1 + 0.25 c; input: c
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

torch.set_num_threads(2)
OUT = os.path.dirname(os.path.abspath(__file__))


def fnv1a(s):
    h = 2166136261
    for b in s.encode():
        h ^= b
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def hashed(name, n):
    i = np.arange(n, dtype=np.uint64)
    x = (i * np.uint64(2654435761) + np.uint64(fnv1a(name))) & np.uint64(0xFFFFFFFF)
    for r in range(3):
        x ^= x >> np.uint64(16)
        if r < 2:
            x = (x * np.uint64(0x45D9F3B)) & np.uint64(0xFFFFFFFF)
    return 2.0 * (x.astype(np.float64) / 4294967296.0) - 1.0


def fill_value(name, shape):
    c = hashed(name, int(np.prod(shape)) if shape else 1)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "weight" and len(shape) >= 2:
        v = c * math.sqrt(3.0 / np.prod(shape[1:]))
    elif leaf == "weight":
        v = 1 + 0.25 * c
    elif leaf in ("bias", "running_mean"):
        v = 0.1 * c
    elif leaf == "running_var":
        v = 1 + 0.25 * c
    else:
        v = c
    return torch.tensor(v.astype(np.float32)).reshape(shape)


def fill(model):
    with torch.no_grad():
        for k, t in model.state_dict().items():
            if k.endswith("num_batches_tracked"):
                continue
            t.copy_(fill_value(k, list(t.shape)))


def T(t):
    t = t.detach().double()
    return {"shape": list(t.shape), "data": [float(v) for v in t.reshape(-1).tolist()]}


def run(name, model, input_shape, attrs, training, grads=True):
    fill(model)
    model.zero_grad(set_to_none=True)
    model.train(training)
    x = fill_value("input", list(input_shape)).requires_grad_(grads)
    out = model(x)
    tensors = {"out": T(out)}
    if grads:
        proj = fill_value("proj", list(out.shape))
        (out * proj).sum().backward()
        tensors["grad.input"] = T(x.grad)
        for k, p in model.named_parameters():
            tensors["grad." + k] = T(p.grad)
        if training:
            for k, v in model.state_dict().items():
                if "running" in k:
                    tensors["after." + k] = T(v)
    return {"op": name, "attrs": dict(attrs, training=training, input=list(input_shape)), "tensors": tensors}


# ---- blocks, mirroring models/resnet field by field ----
def conv(i, o, k, s):
    return nn.Conv2d(i, o, k, s, k // 2, bias=False)


class Block(nn.Module):
    def __init__(self, kind, ordering, cin, width, stride, shortcut, plain, scale, v1):
        super().__init__()
        self.kind, self.ordering, self.plain, self.scale = kind, ordering, plain, scale
        out = width * (4 if kind == "bottleneck" else 1)
        pre = ordering == "preact"
        if kind == "bottleneck":
            s1, s2 = (stride, 1) if v1 else (1, stride)
            self.conv1, self.conv2, self.conv3 = conv(cin, width, 1, s1), conv(width, width, 3, s2), conv(width, out, 1, 1)
            if pre:
                self.bn1, self.bn2, self.bn3 = nn.BatchNorm2d(cin), nn.BatchNorm2d(width), nn.BatchNorm2d(width)
            else:
                self.bn1, self.bn2, self.bn3 = nn.BatchNorm2d(width), nn.BatchNorm2d(width), nn.BatchNorm2d(out)
        else:
            self.conv1, self.conv2 = conv(cin, out, 3, stride), conv(out, out, 3, 1)
            self.bn1, self.bn2 = nn.BatchNorm2d(cin if pre else out), nn.BatchNorm2d(out)
        changes = stride != 1 or cin != out
        self.option_a = None
        self.downsample = None
        if not plain:
            if shortcut == "A" and changes:
                self.option_a = (stride, (out - cin) // 2, out - cin - (out - cin) // 2)
            elif shortcut == "C" or (shortcut == "B" and changes):
                mods = [nn.Conv2d(cin, out, 1, stride, bias=False)]
                if not pre:
                    mods.append(nn.BatchNorm2d(out))
                self.downsample = nn.Sequential(*mods)

    def shortcut(self, x):
        if self.option_a:
            s, b, a = self.option_a
            return F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, b, a))
        return self.downsample(x) if self.downsample is not None else x

    def join(self, branch, x):
        if self.plain:
            return branch
        return branch * self.scale + self.shortcut(x)

    def forward(self, x):
        o, r = self.ordering, F.relu
        if self.kind == "bottleneck":
            if o == "post":
                out = r(self.bn1(self.conv1(x)))
                out = r(self.bn2(self.conv2(out)))
                return r(self.join(self.bn3(self.conv3(out)), x))
            pre = r(self.bn1(x))
            out = self.conv1(pre)
            out = self.conv2(r(self.bn2(out)))
            out = self.conv3(r(self.bn3(out)))
            return self.join(out, pre if self.downsample is not None else x)
        if o == "post":
            out = r(self.bn1(self.conv1(x)))
            return r(self.join(self.bn2(self.conv2(out)), x))
        if o == "bn-after-add":
            out = r(self.bn1(self.conv1(x)))
            return r(self.bn2(self.join(self.conv2(out), x)))
        if o == "relu-before-add":
            out = r(self.bn1(self.conv1(x)))
            return self.join(r(self.bn2(self.conv2(out))), x)
        if o == "relu-preact":
            out = self.bn1(self.conv1(r(x)))
            return self.join(self.bn2(self.conv2(r(out))), x)
        pre = r(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(r(self.bn2(out)))
        return self.join(out, pre if self.downsample is not None else x)


def double_conv(cin, cout, pad, bn):
    layers = [nn.Conv2d(cin, cout, 3, padding=pad, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers += [nn.ReLU()]
    layers += [nn.Conv2d(cout, cout, 3, padding=pad, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers += [nn.ReLU()]
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """Mirrors models/unet (the benchmark anchor's U-Net, with a valid option)."""

    def __init__(self, cin, classes, depth, base, valid, bn):
        super().__init__()
        pad = 0 if valid else 1
        self.valid = valid
        chs = [base * 2 ** i for i in range(depth + 1)]
        self.downs = nn.ModuleList()
        c = cin
        for ch in chs[:-1]:
            self.downs.append(double_conv(c, ch, pad, bn))
            c = ch
        self.bottom = double_conv(chs[-2], chs[-1], pad, bn)
        self.upconvs, self.ups = nn.ModuleList(), nn.ModuleList()
        for ch in reversed(chs[:-1]):
            self.upconvs.append(nn.ConvTranspose2d(ch * 2, ch, 2, stride=2))
            self.ups.append(double_conv(ch * 2, ch, pad, bn))
        self.head = nn.Conv2d(base, classes, 1)

    def forward(self, x):
        skips = []
        for d in self.downs:
            x = d(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, dc, s in zip(self.upconvs, self.ups, reversed(skips)):
            u = up(x)
            if self.valid:
                h, w = u.shape[2], u.shape[3]
                t, l = (s.shape[2] - h) // 2, (s.shape[3] - w) // 2
                s = s[:, :, t:t + h, l:l + w]
            x = dc(torch.cat([s, u], 1))
        return self.head(x)


def main():
    cases = []
    # Every block type, in training mode (batch statistics), with gradients.
    blocks = []
    for ordering in ["post", "bn-after-add", "relu-before-add", "relu-preact", "preact"]:
        blocks.append(("basic", ordering, 4, 8, 2, "B", False, 1.0, False))  # projection
        blocks.append(("basic", ordering, 6, 6, 1, "B", False, 1.0, False))  # identity
    blocks += [
        ("basic", "post", 4, 8, 2, "A", False, 1.0, False),          # option A
        ("basic", "post", 6, 6, 1, "C", False, 1.0, False),          # option C
        ("basic", "post", 4, 8, 2, "B", True, 1.0, False),           # plain
        ("basic", "preact", 6, 6, 1, "B", True, 1.0, False),         # plain pre-activation
        ("basic", "post", 6, 6, 1, "B", False, 1 / math.sqrt(2), False),  # scaled branch
        ("bottleneck", "post", 8, 4, 2, "B", False, 1.0, False),     # v1.5
        ("bottleneck", "post", 8, 4, 2, "B", False, 1.0, True),      # v1
        ("bottleneck", "preact", 8, 4, 2, "B", False, 1.0, False),
        ("bottleneck", "post", 16, 4, 1, "B", False, 1.0, False),    # identity
        ("bottleneck", "post", 8, 4, 2, "B", True, 1.0, False),      # plain
    ]
    torch.manual_seed(0)
    for (kind, ordering, cin, width, stride, sc, plain, scale, v1) in blocks:
        m = Block(kind, ordering, cin, width, stride, sc, plain, scale, v1)
        attrs = dict(kind=kind, ordering=ordering, cin=cin, width=width, stride=stride, shortcut=sc,
                     plain=plain, scale=scale, v1=v1)
        for training in (True, False):
            cases.append(run("block", m, (2, cin, 7, 6), attrs, training))
    # U-Nets: padded with BN (training), valid without BN.
    cases.append(run("unet", UNet(2, 3, 2, 4, False, True), (2, 2, 12, 8),
                     dict(cin=2, classes=3, depth=2, base=4, valid=False, bn=True), True))
    cases.append(run("unet", UNet(1, 2, 2, 4, True, False), (1, 1, 44, 44),
                     dict(cin=1, classes=2, depth=2, base=4, valid=True, bn=False), True))
    # torchvision ResNets at 224x224 in evaluation mode: logits only.
    for arch in ["resnet18", "resnet50"]:
        m = getattr(torchvision.models, arch)(weights=None)
        with torch.no_grad():
            cases.append(run("torchvision", m, (2, 3, 224, 224), dict(arch=arch), False, grads=False))
    data = {"generator": "testdata/torch/gen_models.py", "torch": torch.__version__, "cases": cases}
    with open(os.path.join(OUT, "models.json"), "w") as f:
        json.dump(data, f, separators=(",", ":"))
    print(len(cases), "cases")


if __name__ == "__main__":
    main()
