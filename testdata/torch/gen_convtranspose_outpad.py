#!/usr/bin/python3
"""Writes testdata/torch/convtranspose_outpad.json: PyTorch's transposed
convolutions whose output padding is at least the stride, which PyTorch
takes while it is below the dilation (output_padding < max(stride,
dilation) per dimension): rows and columns past every input's reach, with
and without bottom/right padding, a batch of two and a bias, and two whose
top/left padding leaves no input inside the output at all (kernel 1 in that
dimension, padding at least the input's extent): the bias alone, or zeros.

Run from the repository root with Debian's PyTorch (python3-torch 1.13):
    /usr/bin/python3 testdata/torch/gen_convtranspose_outpad.py
The format is gen_fixtures.py's (loss = sum(out * proj) for a stored random
proj; tensors in PyTorch's layouts), read by autograd's
TestTorchGoldenConvTransposeOutputPadding. A separate file, so that
ops_extra.json (whose regeneration moves its values by float32 rounding)
stays as it is.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_ops_extra import conv_transpose_cases, shortest  # noqa: E402

torch.manual_seed(2026)
torch.set_num_threads(2)
OUT = os.path.dirname(os.path.abspath(__file__))


def cases():
    # (N, C, H, W, OC, (kh, kw), stride, pad, output_padding, dilation, bias)
    return conv_transpose_cases([
        (1, 2, 3, 4, 3, (3, 3), (1, 1), (0, 0), (1, 1), (2, 2), True),   # one row and column past the reach
        (1, 3, 4, 3, 2, (2, 3), (1, 2), (1, 0), (2, 1), (3, 1), False),  # height 2 ≥ stride 1, width as before
        (1, 2, 3, 3, 2, (3, 2), (2, 1), (2, 1), (2, 1), (3, 2), True),   # output padding within the padding
        (2, 2, 3, 3, 3, (2, 2), (1, 1), (0, 1), (1, 2), (2, 3), True),   # a batch of two, both dimensions
        (2, 2, 2, 2, 3, (1, 2), (1, 1), (2, 0), (3, 0), (4, 1), True),   # no input reaches any row: the bias
        (1, 2, 2, 1, 2, (2, 1), (1, 1), (0, 1), (0, 2), (1, 3), False),  # no input reaches any column: zeros
    ])


if __name__ == "__main__":
    data = {"generator": "testdata/torch/gen_convtranspose_outpad.py", "torch": torch.__version__, "cases": shortest(cases())}
    with open(os.path.join(OUT, "convtranspose_outpad.json"), "w") as f:
        json.dump(data, f, separators=(",", ":"))
    print("convtranspose_outpad", len(data["cases"]), "cases")
