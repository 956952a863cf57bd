#!/usr/bin/python3
"""Writes testdata/torch/finetune.json: PyTorch's results for the fine-tuning
recipe pieces residual implements — cross-entropy with label smoothing,
clip_grad_norm_, and warm-up followed by cosine or multi-step schedules.

Run from the repository root with Debian's PyTorch (python3-torch 1.13):
    /usr/bin/python3 testdata/torch/gen_finetune.py
The format is gen_fixtures.py's (the Go tests read it with internal/fixture).
"""
import json
import os

import torch
import torch.nn.functional as F

from gen_fixtures import T, case

torch.manual_seed(4321)
OUT = os.path.dirname(os.path.abspath(__file__))


def cases():
    cs = []
    r = torch.randn
    tgt = torch.tensor([0, 3, 1, 2, 4, 3])
    cs.append(case("cross_entropy", dict(ignore_index=-100, label_smoothing=0.1),
                   lambda x, target: F.cross_entropy(x, target, label_smoothing=0.1), {"x": r(6, 5) * 2, "target": tgt}))
    w = torch.rand(5) + 0.1
    cs.append(case("cross_entropy", dict(ignore_index=3, label_smoothing=0.25),
                   lambda x, target: F.cross_entropy(x, target, weight=w, ignore_index=3, label_smoothing=0.25),
                   {"x": r(6, 5) * 2, "target": tgt.clone()}, extra=lambda: {"weight": w}))
    tp = torch.randint(0, 3, (2, 4, 5))
    tp[0, 0, 0] = -100
    cs.append(case("cross_entropy_2d", dict(ignore_index=-100, label_smoothing=0.1),
                   lambda x, target: F.cross_entropy(x, target, label_smoothing=0.1), {"x": r(2, 3, 4, 5), "target": tp}))
    # clip_grad_norm_: two gradients, clipped to max_norm (one case clips,
    # one does not).
    for max_norm in (1.0, 100.0):
        g1, g2 = r(3, 4) * 2, r(5)
        p1, p2 = torch.zeros(3, 4, requires_grad=True), torch.zeros(5, requires_grad=True)
        p1.grad, p2.grad = g1.clone(), g2.clone()
        norm = torch.nn.utils.clip_grad_norm_([p1, p2], max_norm)
        cs.append({"op": "clip_grad_norm", "attrs": {"max_norm": max_norm}, "tensors": {
            "g1": T(g1), "g2": T(g2), "out1": T(p1.grad), "out2": T(p2.grad), "norm": T(norm.reshape(1))}})
    # Warm-up (LinearLR from start_factor over W steps) then cosine over
    # the rest or multi-step, chained with SequentialLR, lr 0.1.
    for name, then in [("warmup_cosine", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=15)),
                       ("warmup_multistep", lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[6, 11], gamma=0.1))]:
        p = torch.zeros(1, requires_grad=True)
        o = torch.optim.SGD([p], lr=0.1)
        warm = torch.optim.lr_scheduler.LinearLR(o, start_factor=0.01, total_iters=5)
        s = torch.optim.lr_scheduler.SequentialLR(o, [warm, then(o)], milestones=[5])
        lrs = []
        for _ in range(20):
            lrs.append(o.param_groups[0]["lr"])
            o.step()
            s.step()
        cs.append({"op": name, "attrs": {"warmup": 5, "start_factor": 0.01}, "tensors": {"lr": T(torch.tensor(lrs, dtype=torch.float64))}})
    return cs


if __name__ == "__main__":
    import sys
    sys.path.insert(0, OUT)
    data = {"generator": "testdata/torch/gen_finetune.py", "torch": torch.__version__, "cases": cases()}
    with open(os.path.join(OUT, "finetune.json"), "w") as f:
        json.dump(data, f, separators=(",", ":"))
    print("finetune", len(data["cases"]), "cases")
