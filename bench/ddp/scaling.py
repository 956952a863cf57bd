#!/usr/bin/python3
"""A model (not a measurement) of data-parallel scaling: ring all-reduce against a step's compute.

Usage:
  scaling.py --compute-s 0.9 --grad-mb 97.5 --gbit 10 [--latency-us 50] [--buckets 5] [--overlap 0.6]
             [--ranks 1,2,4,8,16,32,64]
  scaling.py --from RESULT.json --gbit 1 ...     # compute, gradient bytes and buckets from a
                                                 # ddpbench RESULT line (1 process: step_s)

Per step, N ranks each computing a batch B in compute_s seconds (weak scaling: the global batch
grows with N) exchange the gradients with a ring all-reduce, which sends and receives
2(N-1)/N of the gradient bytes through each rank's link and takes 2(N-1) latency-bound rounds
per bucket:

    comm(N)   = 2(N-1)/N * bytes / bandwidth  +  buckets * 2(N-1) * latency
    hidden(N) = min(comm(N), overlap * compute_s)   # the part the backward pass covers
    step(N)   = compute_s + comm(N) - hidden(N)
    speed-up  = N * compute_s / step(N),  efficiency = compute_s / step(N)

overlap is the fraction of the step during which buckets can be in flight: the backward pass
after the first bucket's gradients are ready (about 2/3 of a step is backward; DDP's first bucket
is small, so ~0.6 is the ceiling). ddpbench's hidden_frac measured on 2 ranks bounds it from
below. The model ignores contention in the switch, stragglers and the all-reduce's own CPU use
(which competes with the backward pass on CPU ranks): it is an upper bound on what the link allows.
"""
import argparse
import json


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--from", dest="src", help="a file holding a ddpbench RESULT line")
    p.add_argument("--compute-s", type=float, help="one rank's step time without communication (s)")
    p.add_argument("--grad-mb", type=float, help="gradient MiB per step (ResNet-50: 25,557,032 float32 = 97.5)")
    p.add_argument("--buckets", type=int, default=5, help="all-reduces per step (ResNet-50 in 25 MiB buckets: 5)")
    p.add_argument("--gbit", type=float, required=True, help="link bandwidth per rank, Gbit/s")
    p.add_argument("--latency-us", type=float, default=50, help="one-way latency per message, microseconds")
    p.add_argument("--overlap", type=float, default=0.6, help="fraction of the step communication can overlap")
    p.add_argument("--ranks", default="1,2,4,8,16,32,64")
    a = p.parse_args()
    if a.src:
        with open(a.src) as f:
            line = next(l for l in f if l.startswith("RESULT "))
        r = json.loads(line[len("RESULT "):])
        a.compute_s = a.compute_s or r["step_s"]
        a.grad_mb = a.grad_mb or r["grad_bytes"] / 2**20
        a.buckets = r.get("buckets", a.buckets)
    if a.compute_s is None or a.grad_mb is None:
        p.error("give --compute-s and --grad-mb, or --from")
    nbytes = a.grad_mb * 2**20
    bw = a.gbit * 1e9 / 8
    lat = a.latency_us * 1e-6
    print(f"model: compute {a.compute_s:.4g} s/step, {a.grad_mb:.4g} MiB of gradients in {a.buckets} buckets, "
          f"{a.gbit:g} Gbit/s, {a.latency_us:g} us latency, overlap {a.overlap:g}")
    print(f"{'ranks':>5} {'comm s':>9} {'hidden s':>9} {'step s':>9} {'speed-up':>9} {'efficiency':>10}")
    for n in (int(x) for x in a.ranks.split(",")):
        comm = 0.0 if n == 1 else 2 * (n - 1) / n * nbytes / bw + a.buckets * 2 * (n - 1) * lat
        hidden = min(comm, a.overlap * a.compute_s)
        step = a.compute_s + comm - hidden
        print(f"{n:5d} {comm:9.4f} {hidden:9.4f} {step:9.4f} {n * a.compute_s / step:9.2f} {a.compute_s / step:10.1%}")


if __name__ == "__main__":
    main()
