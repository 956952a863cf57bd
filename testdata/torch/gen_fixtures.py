#!/usr/bin/python3
"""Writes the PyTorch golden fixtures that residual's Go tests compare with.

Run from the repository root with Debian's PyTorch (python3-torch 1.13):
    /usr/bin/python3 testdata/torch/gen_fixtures.py
It writes testdata/torch/ops.json, blocks.json and optim.json. Tensors are
stored in PyTorch's layouts (NCHW images, OIHW / IOHW weights); the Go tests
convert them. Every case with gradients uses loss = sum(out * proj) for a
stored random proj, so the stored gradients are vector-Jacobian products.
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(1234)
torch.set_num_threads(2)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)))


def T(t):
    t = t.detach().double() if t.is_floating_point() else t.detach()
    return {"shape": list(t.shape), "data": [float(v) for v in t.reshape(-1).tolist()]}


def case(op, attrs, fn, inputs, params=None, extra=None):
    """fn(*inputs, *params) -> output. Records output and the gradients of
    sum(out*proj) with respect to every floating input and parameter."""
    params = params or {}
    ins = {k: v.clone().requires_grad_(v.is_floating_point()) for k, v in inputs.items()}
    ps = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    out = fn(**ins, **ps)
    tensors = {k: T(v) for k, v in inputs.items()}
    tensors.update({k: T(v) for k, v in params.items()})
    tensors["out"] = T(out)
    if out.requires_grad:
        proj = torch.randn_like(out)
        (out * proj).sum().backward()
        tensors["proj"] = T(proj)
        for k, v in list(ins.items()) + list(ps.items()):
            if v.grad is not None:
                tensors["grad_" + k] = T(v.grad)
    if extra:
        tensors.update({k: T(v) for k, v in extra().items()})
    return {"op": op, "attrs": attrs, "tensors": tensors}


def ops():
    cs = []
    r = torch.randn
    # Convolutions: (N, C, H, W, OC, k, stride, pad, dilation, bias)
    for (n, c, h, w, oc, k, s, p, d, bias) in [
        (2, 3, 5, 6, 4, 3, 1, 1, 1, True),
        (2, 2, 7, 5, 3, 3, 2, 1, 1, False),  # stride 2, odd input
        (1, 3, 6, 6, 2, 1, 2, 0, 1, False),  # 1x1 stride 2 projection
        (1, 2, 9, 8, 3, 7, 2, 3, 1, False),  # 7x7 stem
        (2, 2, 6, 5, 3, 3, 1, 0, 1, True),   # valid
        (1, 2, 7, 7, 2, 3, 1, 2, 2, False),  # dilation 2
    ]:
        attrs = dict(stride=s, pad=p, dilation=d)
        params = {"weight": r(oc, c, k, k)}
        if bias:
            params["bias"] = r(oc)
        cs.append(case("conv2d", attrs, lambda x, weight, bias=None: F.conv2d(x, weight, bias, s, p, d),
                       {"x": r(n, c, h, w)}, params))
    for (n, c, h, w, oc, k, s, p, op_, bias) in [
        (2, 3, 4, 5, 2, 2, 2, 0, 0, True),  # U-Net up-convolution
        (1, 2, 4, 4, 3, 3, 2, 1, 1, False),
        (1, 2, 3, 3, 2, 3, 1, 0, 0, True),
    ]:
        attrs = dict(stride=s, pad=p, output_padding=op_)
        params = {"weight": r(c, oc, k, k)}
        if bias:
            params["bias"] = r(oc)
        cs.append(case("conv_transpose2d", attrs,
                       lambda x, weight, bias=None: F.conv_transpose2d(x, weight, bias, s, p, op_),
                       {"x": r(n, c, h, w)}, params))
    # Batch norm, training mode (batch statistics, running stats updated) and eval.
    for shape, momentum, eps in [((4, 3, 5, 6), 0.1, 1e-5), ((8, 5), 0.1, 1e-5), ((3, 2, 4, 4), 0.3, 1e-3)]:
        c = shape[1]
        rm0, rv0 = r(c), torch.rand(c) + 0.5
        bn = {}

        def train_fn(x, weight, bias):
            rm, rv = rm0.clone(), rv0.clone()
            y = F.batch_norm(x, rm, rv, weight, bias, True, momentum, eps)
            bn["rm"], bn["rv"] = rm, rv
            return y
        cs.append(case("batchnorm_train", dict(momentum=momentum, eps=eps), train_fn,
                       {"x": r(*shape) * 2 + 0.5}, {"weight": r(c), "bias": r(c)},
                       extra=lambda: {"running_mean0": rm0, "running_var0": rv0,
                                      "running_mean": bn["rm"], "running_var": bn["rv"]}))
        cs.append(case("batchnorm_eval", dict(momentum=momentum, eps=eps),
                       lambda x, weight, bias: F.batch_norm(x, rm0, rv0, weight, bias, False, momentum, eps),
                       {"x": r(*shape)}, {"weight": r(c), "bias": r(c)},
                       extra=lambda: {"running_mean0": rm0, "running_var0": rv0}))
    x = r(2, 3, 5, 4)
    cs.append(case("relu", {}, lambda x: F.relu(x), {"x": x}))
    for k, s, p, ceil in [(3, 2, 1, False), (2, 2, 0, False), (3, 2, 0, True)]:
        cs.append(case("maxpool2d", dict(kernel=k, stride=s, pad=p, ceil=ceil),
                       lambda x: F.max_pool2d(x, k, s, p, ceil_mode=ceil), {"x": r(2, 3, 7, 6)}))
    for k, s, p, ceil, cip in [(2, 2, 0, False, True), (3, 2, 1, False, True), (3, 2, 1, False, False),
                               (3, 2, 0, True, True)]:
        cs.append(case("avgpool2d", dict(kernel=k, stride=s, pad=p, ceil=ceil, count_include_pad=cip),
                       lambda x: F.avg_pool2d(x, k, s, p, ceil, cip), {"x": r(2, 3, 7, 6)}))
    cs.append(case("global_avgpool", {}, lambda x: F.adaptive_avg_pool2d(x, 1).flatten(1), {"x": r(2, 4, 3, 5)}))
    cs.append(case("linear", {}, lambda x, weight, bias: F.linear(x, weight, bias), {"x": r(4, 6)},
                   {"weight": r(3, 6), "bias": r(3)}))
    cs.append(case("add", {}, lambda a, b: a + b, {"a": r(2, 3, 4, 4), "b": r(2, 3, 4, 4)}))
    cs.append(case("scale", dict(s=1 / math.sqrt(2)), lambda x: x * (1 / math.sqrt(2)), {"x": r(2, 3, 4)}))
    cs.append(case("concat_channels", {}, lambda a, b: torch.cat([a, b], 1), {"a": r(2, 3, 4, 5), "b": r(2, 2, 4, 5)}))
    cs.append(case("center_crop", dict(h=4, w=3), lambda x: x[:, :, 2:6, 1:4], {"x": r(2, 3, 9, 6)}))
    cs.append(case("subsample_pad", dict(stride=2, before=2, after=2),
                   lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2)), {"x": r(2, 4, 5, 5)}))
    cs.append(case("reflect_pad", dict(pad=2), lambda x: F.pad(x, (2, 2, 2, 2), mode="reflect"), {"x": r(1, 2, 5, 4)}))
    cs.append(case("softmax", dict(axis=1), lambda x: F.softmax(x, 1), {"x": r(4, 7)}))
    cs.append(case("log_softmax", dict(axis=1), lambda x: F.log_softmax(x, 1), {"x": r(4, 7)}))
    tgt = torch.tensor([0, 3, 1, 2, 4, 3])
    cs.append(case("cross_entropy", dict(ignore_index=-100), lambda x, target: F.cross_entropy(x, target),
                   {"x": r(6, 5), "target": tgt}))
    w = torch.rand(5) + 0.1
    tgt2 = torch.tensor([0, 3, 1, 2, 4, 3])
    cs.append(case("cross_entropy", dict(ignore_index=3),
                   lambda x, target: F.cross_entropy(x, target, weight=w, ignore_index=3),
                   {"x": r(6, 5), "target": tgt2}, extra=lambda: {"weight": w}))
    # Per-pixel: logits [N, K, H, W], targets [N, H, W].
    tp = torch.randint(0, 3, (2, 4, 5))
    tp[0, 0, 0] = -100
    cs.append(case("cross_entropy_2d", dict(ignore_index=-100), lambda x, target: F.cross_entropy(x, target),
                   {"x": r(2, 3, 4, 5), "target": tp}))
    cs.append(case("bce_with_logits", {}, lambda x, target: F.binary_cross_entropy_with_logits(x, target),
                   {"x": r(3, 4) * 3, "target": torch.rand(3, 4)}))
    cs.append(case("mse", {}, lambda x, target: F.mse_loss(x, target), {"x": r(3, 4), "target": r(3, 4)}))
    # Segmentation losses, drawn from their own generator so that adding them
    # left every earlier fixture as it was.
    g = torch.Generator().manual_seed(11)
    tseg = torch.tensor([0, 2, 1, 3, 3, 0, 2, 1])
    tseg_ign = torch.tensor([0, 2, -100, 3, 3, 0, 2, -100])
    row_w = torch.rand(8, generator=g) * 3 + 0.1
    cls_w = torch.rand(4, generator=g) + 0.5

    def weighted_ce(x, target):
        valid = target != -100
        t = target.clamp(min=0)
        w = row_w * cls_w[t] * valid
        return (w * F.cross_entropy(x, t, reduction="none")).sum() / w.sum()
    cs.append(case("cross_entropy_rowweight", dict(ignore_index=-100), weighted_ce,
                   {"x": torch.randn(8, 4, generator=g), "target": tseg_ign}, extra=lambda: {"weight": cls_w, "row_weight": row_w}))

    def dice(x, target):
        valid = (target != -100).unsqueeze(1).to(x.dtype)
        p = F.softmax(x, 1) * valid
        onehot = F.one_hot(target.clamp(min=0), x.shape[1]).to(x.dtype) * valid
        inter, psum, gsum = (p * onehot).sum(0), p.sum(0), onehot.sum(0)
        return 1 - ((2 * inter + 1) / (psum + gsum + 1)).mean()
    cs.append(case("dice", dict(ignore_index=-100), dice, {"x": torch.randn(8, 4, generator=g) * 2, "target": tseg}))
    cs.append(case("dice", dict(ignore_index=-100), dice, {"x": torch.randn(8, 4, generator=g), "target": tseg_ign}))
    return cs


class PostActBlock(nn.Module):
    """He et al. 2015 basic block with a projection (option B) shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.downsample(x))


class PreActBlock(nn.Module):
    """He et al. 2016 full pre-activation basic block, identity shortcut."""

    def __init__(self, c):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c)
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + x


def randomize(m):
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.2)
                mod.running_mean.normal_(0, 0.2)
                mod.running_var.uniform_(0.5, 1.5)


def block_case(name, m, x, training):
    randomize(m)
    m.train(training)
    state0 = {k: T(v) for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
    xg = x.clone().requires_grad_(True)
    out = m(xg)
    proj = torch.randn_like(out)
    (out * proj).sum().backward()
    tensors = {"x": T(x), "out": T(out), "proj": T(proj), "grad_x": T(xg.grad)}
    for k, v in state0.items():
        tensors["param." + k] = v
    for k, p in m.named_parameters():
        tensors["grad." + k] = T(p.grad)
    for k, v in m.state_dict().items():
        if "running" in k:
            tensors["after." + k] = T(v)
    return {"op": name, "attrs": {"training": training}, "tensors": tensors}


def blocks():
    torch.manual_seed(99)
    cs = []
    for training in (True, False):
        cs.append(block_case("postact_block", PostActBlock(3, 4, 2), torch.randn(2, 3, 7, 7), training))
        cs.append(block_case("preact_block", PreActBlock(4), torch.randn(2, 4, 6, 5), training))
    return cs


def optim_cases():
    torch.manual_seed(7)
    cs = []
    p0 = [torch.randn(3, 4), torch.randn(4)]
    grads = [[torch.randn(3, 4), torch.randn(4)] for _ in range(3)]
    configs = [
        ("sgd", dict(lr=0.1, momentum=0.9, weight_decay=1e-4)),
        ("sgd", dict(lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)),
        ("sgd", dict(lr=0.05, momentum=0.5, dampening=0.2)),
        ("sgd", dict(lr=0.1)),
        ("adam", dict(lr=0.01, weight_decay=1e-2)),
        ("adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
        ("adamw", dict(lr=0.01, weight_decay=0.1)),
        # Zero betas, which PyTorch accepts: beta1 = 0 keeps no first moment
        # (RMSprop-like), beta2 = 0 only the last squared gradient.
        ("adam", dict(lr=0.01, betas=(0.0, 0.999), weight_decay=1e-2)),
        ("adamw", dict(lr=0.01, betas=(0.0, 0.99), weight_decay=0.1)),
        ("adam", dict(lr=0.01, betas=(0.9, 0.0), eps=1e-6)),
    ]
    for kind, cfg in configs:
        ps = [p.clone().requires_grad_(True) for p in p0]
        # Two groups: the matrix with the config's weight decay, the vector without.
        groups = [{"params": [ps[0]]}, {"params": [ps[1]], "weight_decay": 0.0}]
        opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind](groups, **cfg)
        tensors = {"p0.0": T(p0[0]), "p0.1": T(p0[1])}
        for s, g in enumerate(grads):
            for p, gv in zip(ps, g):
                p.grad = gv.clone()
            opt.step()
            tensors[f"step{s}.0"], tensors[f"step{s}.1"] = T(ps[0]), T(ps[1])
        cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}
        cs.append({"op": kind, "attrs": cfg, "tensors": tensors})
    # The gradients, keyed plainly.
    for c in cs:
        for s, g in enumerate(grads):
            c["tensors"][f"grad{s}.0"], c["tensors"][f"grad{s}.1"] = T(g[0]), T(g[1])
    # Schedules: the learning rate at each of 12 steps.
    sched = []
    for name, mk in [
        ("multistep", lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [3, 7], 0.1)),
        ("cosine", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10, eta_min=0.001)),
        ("linear_warmup", lambda o: torch.optim.lr_scheduler.LinearLR(o, 0.25, 1.0, 4)),
    ]:
        o = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        s = mk(o)
        lrs = []
        for _ in range(12):
            lrs.append(o.param_groups[0]["lr"])
            o.step()
            s.step()
        sched.append({"op": "schedule_" + name, "attrs": {}, "tensors": {"lr": T(torch.tensor(lrs, dtype=torch.float64))}})
    return cs + sched


def main():
    for name, fn in [("ops", ops), ("blocks", blocks), ("optim", optim_cases)]:
        data = {"generator": "testdata/torch/gen_fixtures.py", "torch": torch.__version__, "cases": fn()}
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(data, f, separators=(",", ":"))
        print(name, len(data["cases"]), "cases")


if __name__ == "__main__":
    main()
