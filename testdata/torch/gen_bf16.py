"""Writes bf16.json: float32 bit patterns and PyTorch's bfloat16 conversion of
each (torch.Tensor.to(torch.bfloat16), round to nearest even), for
internal/kernels' TestBF16Torch. Run from the repository root:

    /usr/bin/python3 testdata/torch/gen_bf16.py

The inputs are edge cases (zeros, subnormals, the largest finite values and
their neighbours, infinities, NaNs), exact ties and their neighbours over
random upper halves, and random bit patterns; the seed is fixed.
"""
import json
import random
import struct

import torch

rng = random.Random(18)
bits = [0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x00007FFF, 0x00008000, 0x00008001, 0x00018000,
        0x007FFFFF, 0x00800000, 0x3F800000, 0x3F808000, 0x3F818000, 0x3F807FFF, 0x3F808001,
        0x7F7F0000, 0x7F7F7FFF, 0x7F7F8000, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000,
        0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FFFFFFF, 0xFF800001, 0x7F80FFFF]
for _ in range(1024):
    hi = rng.getrandbits(16) << 16
    bits += [hi | 0x8000, hi | 0x7FFF, hi | 0x8001]
bits += [rng.getrandbits(32) for _ in range(2048)]
x = torch.tensor(struct.unpack("<%df" % len(bits), struct.pack("<%dI" % len(bits), *bits)), dtype=torch.float32)
y = x.to(torch.bfloat16).view(torch.int16).tolist()
out = [[b, v & 0xFFFF] for b, v in zip(bits, y)]
with open("testdata/torch/bf16.json", "w") as f:
    json.dump({"torch": torch.__version__, "cases": out}, f, separators=(",", ":"))
