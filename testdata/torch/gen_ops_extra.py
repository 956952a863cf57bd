#!/usr/bin/python3
"""Writes testdata/torch/ops_extra.json: PyTorch's results for the public
autograd operations and geometries that ops.json leaves out — Gemm with
transposes, alpha, beta and every bias shape it takes, batched MatMul, Mul,
Sum, Crop, constant and replicate Pad, Softmax/LogSoftmax over an image's
channel and row axes, convolutions with rectangular kernels, per-axis
strides and dilations and asymmetric (TensorFlow SAME) padding, transposed
convolutions with dilation, dilated and rectangular max pooling, and
cross-entropy summed (reduction="sum") and per pixel with class weights
and label smoothing.

Run from the repository root with Debian's PyTorch (python3-torch 1.13):
    /usr/bin/python3 testdata/torch/gen_ops_extra.py
The format is gen_fixtures.py's (loss = sum(out * proj) for a stored random
proj; tensors in PyTorch's layouts), read by autograd's
TestTorchGoldenOpsExtra. Asymmetric padding, which F.conv2d does not take,
is F.pad followed by an unpadded convolution.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import case  # noqa: E402

torch.manual_seed(2024)
torch.set_num_threads(2)
OUT = os.path.dirname(os.path.abspath(__file__))


def conv_transpose_cases(rows):
    """Transposed convolutions, one case per row of (N, C, H, W, OC,
    (kh, kw), stride, pad, output_padding, dilation, bias), drawing the
    weight, bias and input in that order."""
    cs = []
    r = torch.randn
    for (nb, c, h, w, oc, ks, st, p, op_, dl, bias) in rows:
        params = {"weight": r(c, oc, *ks)}
        if bias:
            params["bias"] = r(oc)
        cs.append(case("conv_transpose2d", dict(stride=list(st), pad=list(p), output_padding=list(op_), dilation=list(dl)),
                       lambda x, weight, bias=None, st=st, p=p, op_=op_, dl=dl:
                       F.conv_transpose2d(x, weight, bias, st, p, op_, 1, dl), {"x": r(nb, c, h, w)}, params))
    return cs


def cases():
    cs = []
    r = torch.randn
    # Gemm: alpha·op(a)·op(b) + beta·c, M=3, K=4, N=5.
    m, k, n = 3, 4, 5
    for ta, tb, alpha, beta, cshape in [
        (False, False, 1.0, 1.0, None),
        (True, False, 0.5, 2.0, [n]),
        (False, True, 1.5, 0.5, [m, 1]),
        (True, True, -1.0, 1.0, [m, n]),
        (False, False, 2.0, 3.0, []),
        (False, True, 1.0, -0.5, [1, n]),
    ]:
        ins = {"a": r(k, m) if ta else r(m, k), "b": r(n, k) if tb else r(k, n)}
        if cshape is not None:
            ins["c"] = r(cshape)

        def gemm(a, b, c=None, ta=ta, tb=tb, alpha=alpha, beta=beta):
            y = alpha * ((a.t() if ta else a) @ (b.t() if tb else b))
            return y if c is None else y + beta * c
        cs.append(case("gemm", dict(trans_a=ta, trans_b=tb, alpha=alpha, beta=beta), gemm, ins))
    cs.append(case("matmul", {}, lambda a, b: a @ b, {"a": r(3, 4), "b": r(4, 2)}))
    cs.append(case("matmul", {}, lambda a, b: a @ b, {"a": r(2, 3, 4), "b": r(2, 4, 5)}))
    cs.append(case("mul", {}, lambda a, b: a * b, {"a": r(2, 3, 3, 2), "b": r(2, 3, 3, 2)}))
    cs.append(case("sum", {}, lambda x: x.sum(), {"x": r(1, 2, 3, 4)}))
    cs.append(case("crop", dict(top=1, left=2, h=3, w=3), lambda x: x[:, :, 1:4, 2:5], {"x": r(1, 2, 6, 5)}))
    # pads are [top, left, bottom, right]; F.pad takes (left, right, top, bottom).
    cs.append(case("pad", dict(pads=[0, 1, 3, 2], mode="constant", value=0.5),
                   lambda x: F.pad(x, (1, 2, 0, 3), value=0.5), {"x": r(1, 2, 3, 4)}))
    cs.append(case("pad", dict(pads=[2, 1, 1, 2], mode="replicate", value=0.0),
                   lambda x: F.pad(x, (1, 2, 2, 1), mode="replicate"), {"x": r(1, 2, 3, 4)}))
    # Softmax over NCHW axis 1 (channels) and 2 (rows).
    for axis in (1, 2):
        cs.append(case("softmax", dict(axis=axis, nchw=True), lambda x, a=axis: F.softmax(x, a), {"x": r(2, 3, 3, 4) * 2}))
        cs.append(case("log_softmax", dict(axis=axis, nchw=True), lambda x, a=axis: F.log_softmax(x, a), {"x": r(2, 3, 3, 4) * 2}))
    # Convolutions: (N, C, H, W, OC, (kh, kw), stride, dilation, pads t,l,b,r, bias)
    for (nb, c, h, w, oc, ks, st, dl, pads, bias) in [
        (1, 2, 7, 6, 3, (3, 1), (2, 1), (1, 2), [0, 1, 2, 0], True),
        (1, 2, 6, 7, 3, (2, 3), (1, 2), (1, 1), [1, 0, 0, 1], False),
        (1, 2, 6, 6, 2, (3, 3), (2, 2), (1, 1), [0, 0, 1, 1], False),  # TF SAME, stride 2, even input
        (1, 2, 9, 9, 2, (7, 7), (2, 2), (1, 1), [2, 2, 3, 3], True),   # TF SAME 7×7 stem on an odd input
    ]:
        params = {"weight": r(oc, c, *ks)}
        if bias:
            params["bias"] = r(oc)

        def conv(x, weight, bias=None, st=st, dl=dl, pads=pads):
            t, lft, b, rt = pads
            return F.conv2d(F.pad(x, (lft, rt, t, b)), weight, bias, st, 0, dl)
        cs.append(case("conv2d", dict(stride=list(st), dilation=list(dl), pads=pads), conv, {"x": r(nb, c, h, w)}, params))
    cs += conv_transpose_cases([
        (1, 2, 4, 3, 3, (3, 3), (2, 2), (1, 1), (1, 1), (2, 2), True),
        (1, 3, 3, 4, 2, (3, 2), (2, 1), (1, 0), (1, 0), (2, 1), False),
    ])
    # Max pooling with dilation, and with a rectangular kernel and stride.
    for ks, st, p, dl, ceil in [((3, 3), (2, 2), (1, 1), (2, 2), False), ((3, 3), (2, 2), (1, 1), (2, 2), True),
                                ((2, 3), (1, 2), (0, 1), (1, 1), False)]:
        cs.append(case("maxpool2d", dict(kernel=list(ks), stride=list(st), pad=list(p), dilation=list(dl), ceil=ceil),
                       lambda x, ks=ks, st=st, p=p, dl=dl, ceil=ceil: F.max_pool2d(x, ks, st, p, dl, ceil_mode=ceil),
                       {"x": r(1, 2, 9, 8)}))
    # Cross-entropy: summed; summed with weights, ignored targets and
    # smoothing; per pixel with weights, smoothing and ignored pixels.
    tgt = torch.tensor([0, 3, 1, 2, 4, 3, 2])
    w = torch.rand(5) + 0.1
    cs.append(case("cross_entropy", dict(ignore_index=-100, sum=True),
                   lambda x, target: F.cross_entropy(x, target, reduction="sum"), {"x": r(7, 5) * 2, "target": tgt}))
    cs.append(case("cross_entropy", dict(ignore_index=3, sum=True, label_smoothing=0.2),
                   lambda x, target: F.cross_entropy(x, target, weight=w, ignore_index=3, reduction="sum", label_smoothing=0.2),
                   {"x": r(7, 5) * 2, "target": tgt.clone()}, extra=lambda: {"weight": w}))
    tp = torch.randint(0, 4, (2, 3, 5))
    tp[0, 1, 2] = tp[1, 2, 4] = -100
    w4 = torch.rand(4) + 0.2
    cs.append(case("cross_entropy_2d", dict(ignore_index=-100, label_smoothing=0.1),
                   lambda x, target: F.cross_entropy(x, target, weight=w4, label_smoothing=0.1),
                   {"x": r(2, 4, 3, 5) * 2, "target": tp}, extra=lambda: {"weight": w4}))
    return cs


def shortest(cs):
    """Writes each float32 value as the shortest decimal that reads back as
    it (through float64, as Go's encoding/json and float32() read it),
    which halves the file; checked value by value."""
    for c in cs:
        for t in c["tensors"].values():
            out = []
            for v in t["data"]:
                s = float(repr(np.float32(v)))
                assert np.float32(s) == np.float32(v) and float(np.float32(v)) == v, (c["op"], v)
                out.append(s)
            t["data"] = out
    return cs


if __name__ == "__main__":
    data = {"generator": "testdata/torch/gen_ops_extra.py", "torch": torch.__version__, "cases": shortest(cases())}
    with open(os.path.join(OUT, "ops_extra.json"), "w") as f:
        json.dump(data, f, separators=(",", ":"))
    print("ops_extra", len(data["cases"]), "cases")
