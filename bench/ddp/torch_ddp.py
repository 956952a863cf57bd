#!/usr/bin/python3
"""PyTorch DistributedDataParallel (Gloo, CPU) on the models of ddpbench, for side-by-side step times.

Usage:
  /usr/bin/python3 torch_ddp.py --model cifar20|rn50 --ranks N --threads T [--batch B] [--steps S] [--warmup W]
                                [--side S] [--no-pin] [--plain-malloc]
      starts N local ranks (torch.multiprocessing, rendezvous on 127.0.0.1), each with T threads
  RANK=r WORLD_SIZE=n MASTER_ADDR=a MASTER_PORT=p /usr/bin/python3 torch_ddp.py --model ... --threads T
      runs one rank (bench/ddp/netns.sh starts one per network namespace; set GLOO_SOCKET_IFNAME
      to the interface Gloo must use)

Methodology: that of ../shared/anchors/torch_bench.py (the PyTorch anchors of docs/PERFORMANCE.md),
so that its figures compare with the anchors and with `residual bench`: Debian's python3-torch
run by /usr/bin/python3; the script re-executes itself with jemalloc preloaded (LD_PRELOAD of
Debian's libjemalloc2, with torch_bench.py's MALLOC_CONF; --plain-malloc turns it off; the
RESULT line names the allocator), as PyTorch's CPU tuning guide recommends (on these VMs glibc's
allocator makes PyTorch 2-3x slower); torch.set_num_threads(T) and nothing else about threads;
the same CIFAR ResNet (option A shortcuts, copied below) and torchvision's resnet50;
SGD(lr 0.01, momentum 0.9, weight decay 1e-4); one fixed random batch per rank; the median over
timed steps after warm-up. --batch is per rank; by default the global batch of the anchors (128
for cifar20, 8 for rn50) divided by N. Ranks started here (--ranks N) are each pinned to core
r mod the cores (--no-pin: not), as mpirun --bind-to core pins ddpbench's.

Rank 0 prints one line "RESULT {json}" with the medians in seconds, averaged over the ranks, in
ddpbench's fields: step_s (a DDP step: forward, backward with the bucket all-reduces overlapping
it, optimizer); comm_s (the same bytes all-reduced in DDP's 25 MiB buckets alone, nothing to
overlap: the total communication time); step_nosync_s (the same step under DDP's no_sync(), no
all-reduce at all); exposed_s = step_s − step_nosync_s (the communication the overlap did not
hide, clamped at 0), hidden_s = comm_s − exposed_s and hidden_frac = hidden_s / comm_s; and
img_per_s (the global batch over step_s). With N = 1 the model is not wrapped in DDP (plain
training, as the anchors time it) and the communication fields are 0.
"""
import argparse
import json
import os
import statistics
import sys
import time

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
if ("--plain-malloc" not in sys.argv and os.path.exists(JEMALLOC)
        and JEMALLOC not in os.environ.get("LD_PRELOAD", "")):
    os.environ["LD_PRELOAD"] = JEMALLOC
    os.environ.setdefault("MALLOC_CONF", "oversize_threshold:1,background_thread:true,"
                          "metadata_thp:auto,dirty_decay_ms:-1,muzzy_decay_ms:-1")
    os.execv(sys.executable, [sys.executable] + sys.argv)

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F


class BasicBlockA(nn.Module):
    """CIFAR basic block, option A shortcut: torch_bench.py's."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, cout - cin

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x
        if self.stride != 1 or self.pad:
            sc = x[:, :, ::self.stride, ::self.stride]
            sc = F.pad(sc, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + sc)


class CifarResNet(nn.Module):
    """torch_bench.py's CIFAR ResNet-(6n+2)."""

    def __init__(self, n, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for stage, c in enumerate((16, 32, 64)):
            for i in range(n):
                layers.append(BasicBlockA(cin, c, 2 if (stage > 0 and i == 0) else 1))
                cin = c
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = self.layers(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def build(name):
    if name == "cifar20":
        return CifarResNet(3), 32, 10, 128
    if name == "rn50":
        import torchvision
        return torchvision.models.resnet50(weights=None), 224, 1000, 8
    raise SystemExit(f"unknown model {name!r} (cifar20, rn50)")


def median_steps(fn, warmup, steps):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(steps):
        if dist.is_initialized():
            dist.barrier()
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def worker(rank, world, a, pin=False):
    if pin:
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cores[rank % len(cores)]})
    torch.set_num_threads(a.threads)
    if world > 1:
        dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model, side, classes, global_batch = build(a.model)
    side = a.side or side
    batch = a.batch or max(global_batch // world, 1)
    g = torch.Generator().manual_seed(100 + rank)  # each rank its own batch
    x = torch.randn(batch, 3, side, side, generator=g)
    y = torch.randint(0, classes, (batch,), generator=g)
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=25)  # broadcasts rank 0's state
        if a.grad_compression == "fp16":
            # PyTorch's bf16_compress_hook needs NCCL; with Gloo the
            # half-size hook is fp16_compress_hook (the same bytes).
            from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
            net.register_comm_hook(None, default_hooks.fp16_compress_hook)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()

    step_s = median_steps(step, a.warmup, a.steps)
    comm_s = nosync_s = 0.0
    if world > 1:
        def step_nosync():
            opt.zero_grad(set_to_none=True)
            with net.no_sync():
                F.cross_entropy(net(x), y).backward()
            opt.step()
        nosync_s = median_steps(step_nosync, a.warmup, a.steps)

        n = sum(p.numel() for p in model.parameters())
        per = 25 * (1 << 20) // 4
        dtype = torch.float16 if a.grad_compression == "fp16" else torch.float32
        bufs = [torch.zeros(min(per, n - lo), dtype=dtype) for lo in range(0, n, per)]

        def comm():
            for b in bufs:
                dist.all_reduce(b)
        comm_s = median_steps(comm, a.warmup, a.steps)
    vals = torch.tensor([step_s, comm_s, nosync_s], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(vals)
        vals /= world
    if rank == 0:
        step_s, comm_s, nosync_s = vals.tolist()
        exposed = max(step_s - nosync_s, 0.0) if world > 1 else 0.0
        hidden = max(comm_s - exposed, 0.0)
        print("RESULT " + json.dumps(dict(
            name=f"torch DDP gloo {a.model} b{batch}x{world} ranks x{a.threads} threads", model=a.model,
            grad_compression=a.grad_compression,
            batch_per_rank=batch, ranks=world, threads=torch.get_num_threads(), torch=torch.__version__,
            allocator="jemalloc" if JEMALLOC in os.environ.get("LD_PRELOAD", "") else "default",
            side=side, steps=a.steps, step_s=step_s, comm_s=comm_s, step_nosync_s=nosync_s, exposed_s=exposed,
            hidden_s=hidden, hidden_frac=hidden / comm_s if comm_s > 0 else 0.0,
            img_per_s=batch * world / step_s)), flush=True)
    if world > 1:
        # Meet, then leave without Gloo's teardown: destroy_process_group was
        # seen spinning for ever (a third of the 2-rank runs of 2026-12-04,
        # even after this barrier), holding a core until the time limit.
        # Everything this benchmark reports has been printed by now.
        dist.barrier()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="cifar20")
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=0, help="per rank")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--side", type=int, default=0, help="image side (default: the model's, 32 or 224)")
    p.add_argument("--no-pin", action="store_true", help="do not pin the ranks started here to cores")
    p.add_argument("--plain-malloc", action="store_true")
    p.add_argument("--grad-compression", choices=["none", "fp16"], default="none",
                   help="fp16: DDP's fp16_compress_hook (gradients all-reduced as float16; its bf16 hook needs NCCL)")
    a = p.parse_args()
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        worker(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), a)
        return
    if a.ranks == 1:
        worker(0, 1, a)
        return
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    mp.spawn(worker, args=(a.ranks, a, not a.no_pin), nprocs=a.ranks, join=True)


if __name__ == "__main__":
    main()
