#!/usr/bin/python3
"""Writes sampler.json: the shards torch.utils.data.DistributedSampler gives
each rank, for the Sampler tests (go test ./distributed/ reads the file;
PyTorch is needed only to regenerate it: /usr/bin/python3 gen_sampler.py).

Each case records the epoch's global order (torch's permutation for shuffle,
else 0..n-1) and every rank's indices, so that the test can check
Sampler.Shard against torch whatever RNG made the permutation."""
import json

import torch
from torch.utils.data import DistributedSampler

cases = []
for n, size, shuffle, drop_last, seed, epoch in [
    (10, 3, False, False, 0, 0),
    (10, 3, False, True, 0, 0),
    (10, 3, True, False, 7, 2),
    (10, 3, True, True, 7, 2),
    (2, 5, False, False, 0, 0),   # fewer samples than ranks: padding repeats the order
    (2, 5, True, False, 1, 0),
    (12, 4, True, False, 3, 1),   # divisible: no padding
    (1001, 2, True, False, 42, 5),
    (1001, 3, True, True, 42, 5),
]:
    data = list(range(n))
    ranks = []
    for r in range(size):
        s = DistributedSampler(data, num_replicas=size, rank=r, shuffle=shuffle, seed=seed, drop_last=drop_last)
        s.set_epoch(epoch)
        ranks.append(list(iter(s)))
        length = len(s)
    if shuffle:
        g = torch.Generator()
        g.manual_seed(seed + epoch)
        order = torch.randperm(n, generator=g).tolist()
    else:
        order = data
    cases.append({"n": n, "size": size, "shuffle": shuffle, "drop_last": drop_last,
                  "seed": seed, "epoch": epoch, "len": length, "order": order, "ranks": ranks})

with open("sampler.json", "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases}, f, separators=(",", ":"))
    f.write("\n")
