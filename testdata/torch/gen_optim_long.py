#!/usr/bin/python3
"""Writes testdata/torch/optim_long.json: ten steps of torch.optim's SGD
(Nesterov, weight decay), Adam and AdamW driven by learning-rate schedulers
(warm-up then multi-step, cosine, warm-up then cosine via SequentialLR,
stepped after every optimizer step) over two parameter groups with their
own learning rates (the second without weight decay): the rate of each
group before every step, the parameters after every step, and the
optimizer's state after step 5 (momentum_buffer; exp_avg and exp_avg_sq),
which residual's tests load to resume and continue.

Run from the repository root with Debian's PyTorch (python3-torch 1.13):
    /usr/bin/python3 testdata/torch/gen_optim_long.py
The format is gen_fixtures.py's; float32 values are written as their
shortest decimals (checked to read back exactly).
"""
import json
import os

import numpy as np
import torch

torch.manual_seed(77)
OUT = os.path.dirname(os.path.abspath(__file__))
STEPS, RESUME = 10, 5


def T(t, dtype=np.float32):
    t = t.detach()
    vals = []
    for v in t.reshape(-1).tolist():
        s = float(repr(dtype(v)))
        assert dtype(s) == dtype(v)
        vals.append(s)
    return {"shape": list(t.shape), "data": vals}


def cases():
    lrs = torch.optim.lr_scheduler
    configs = [
        ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
         lambda o: lrs.SequentialLR(o, [lrs.LinearLR(o, 0.1, 1.0, 3), lrs.MultiStepLR(o, [4, 7], 0.1)], [3]),
         dict(warmup=3, start_factor=0.1, milestones=[4, 7], gamma=0.1)),
        ("adam", dict(lr=0.01, weight_decay=1e-4), lambda o: lrs.CosineAnnealingLR(o, 10), dict(cosine=10)),
        ("adamw", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.05),
         lambda o: lrs.SequentialLR(o, [lrs.LinearLR(o, 0.25, 1.0, 2), lrs.CosineAnnealingLR(o, 8)], [2]),
         dict(warmup=2, start_factor=0.25, cosine=8)),
    ]
    p0 = [torch.randn(4, 3), torch.randn(3)]
    grads = [[torch.randn(4, 3), torch.randn(3)] for _ in range(STEPS)]
    cs = []
    for kind, cfg, sched, sattrs in configs:
        ps = [p.clone().requires_grad_(True) for p in p0]
        groups = [{"params": [ps[0]]}, {"params": [ps[1]], "lr": cfg["lr"] / 5, "weight_decay": 0.0}]
        opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind](groups, **cfg)
        s = sched(opt)
        tensors = {"p0.0": T(p0[0]), "p0.1": T(p0[1])}
        lr0, lr1 = [], []
        for step in range(STEPS):
            lr0.append(opt.param_groups[0]["lr"])
            lr1.append(opt.param_groups[1]["lr"])
            for p, g in zip(ps, grads[step]):
                p.grad = g.clone()
            opt.step()
            s.step()
            tensors[f"step{step}.0"], tensors[f"step{step}.1"] = T(ps[0]), T(ps[1])
            tensors[f"grad{step}.0"], tensors[f"grad{step}.1"] = T(grads[step][0]), T(grads[step][1])
            if step == RESUME - 1:
                for i, p in enumerate(ps):
                    for k, v in opt.state[p].items():
                        if k != "step":
                            tensors[f"state{RESUME}.{i}.{k}"] = T(v)
        tensors["lr0"] = T(torch.tensor(lr0, dtype=torch.float64), np.float64)
        tensors["lr1"] = T(torch.tensor(lr1, dtype=torch.float64), np.float64)
        attrs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}
        attrs.update(sattrs, lr1=cfg["lr"] / 5, resume=RESUME)
        cs.append({"op": kind, "attrs": attrs, "tensors": tensors})
    return cs


if __name__ == "__main__":
    data = {"generator": "testdata/torch/gen_optim_long.py", "torch": torch.__version__, "cases": cases()}
    with open(os.path.join(OUT, "optim_long.json"), "w") as f:
        json.dump(data, f, separators=(",", ":"))
    print("optim_long", len(data["cases"]), "cases")
