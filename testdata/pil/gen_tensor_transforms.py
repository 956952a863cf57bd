#!/usr/bin/python3
"""Writes testdata/pil/torchvision/tensor.json: torchvision's tensor
transforms on windows of the resize/ photos, for data/transform's Resize
and data's Normalise.

Run from the repository root with Debian's python3-torchvision (0.14,
torch 1.13):
    /usr/bin/python3 testdata/pil/gen_tensor_transforms.py

- "resize": F.resize of a uint8 [C,H,W] tensor to (oh, ow) with
  InterpolationMode.BILINEAR and antialias=False (what transform.Resize
  says it is): torch's upsample_bilinear2d(align_corners=False) in
  float32, then torch.round (half to even) and the cast to uint8. Each case
  names its input (a PNG of resize/), the window (top, left, height, width;
  the whole image when height is 0), the output size and the output bytes
  (HWC). "exact" says that float32 computes every output value exactly
  (the float32 and float64 interpolations agree at every pixel: ratios
  whose weights are short binary fractions), so the bytes are fixed by
  round-half-to-even alone; otherwise "near_half" lists the output indices
  (HWC) whose float64 value lies within DELTA = 0.02 of a half-integer,
  where float32 may carry the value to either side. The bound: torch
  computes the source coordinate (in/out)·(dst + ½) − ½ with three float32
  roundings, an error below 3·in·2⁻²⁴ (in ≤ 161 here: 2.9e-5) that passes
  to each axis's weight; a weight error e moves the value by at most
  255·e per axis, and the products and sums add about 4·255·2⁻²⁴:
  255·2·2.9e-5 + 6e-5 ≈ 0.015 < 0.02. The generator checks that outside
  the band torchvision's byte is the float64 value rounded half to even.
- "normalise": F.normalize(F.to_tensor(window), mean, std) — float32
  (p/255 − mean)/std — as HWC values.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as TF
import torchvision
import torchvision.transforms.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
RESIZE = os.path.join(HERE, "resize")
DELTA = 0.02


def window(name, box):
    im = Image.open(os.path.join(RESIZE, name))
    im.load()
    a = np.array(im)
    if a.ndim == 2:
        a = a[:, :, None]
    top, left, h, w = box
    if h:
        a = a[top:top + h, left:left + w]
    return np.ascontiguousarray(a)


def hwc(t):
    return t.permute(1, 2, 0).reshape(-1)


def resize_cases():
    cases = []
    for name, box, oh, ow in [
        ("camera.png", (0, 0, 0, 0), 28, 28),      # a grey photo to MNIST's size
        ("chelsea.png", (0, 0, 0, 0), 32, 32),     # an RGB photo to CIFAR's size
        ("camera.png", (40, 50, 16, 12), 8, 6),    # halving: weights ½, many ties
        ("camera.png", (40, 50, 16, 12), 32, 24),  # doubling: weights ¼, ¾
        ("chelsea.png", (30, 60, 12, 16), 24, 32),
        ("chelsea.png", (30, 60, 12, 16), 6, 8),
        ("chelsea.png", (50, 20, 9, 14), 4, 8),    # ratios 2.25 and 1.75
        ("camera.png", (70, 30, 10, 10), 7, 13),   # enlarging one side, shrinking the other
        ("chelsea.png", (5, 5, 13, 11), 28, 28),
    ]:
        a = window(name, box)
        x = torch.from_numpy(a).permute(2, 0, 1).contiguous()
        y = F.resize(x, [oh, ow], interpolation=F.InterpolationMode.BILINEAR, antialias=False)
        assert y.dtype == torch.uint8
        v32 = TF.interpolate(x[None].float(), size=(oh, ow), mode="bilinear", align_corners=False)[0]
        v64 = TF.interpolate(x[None].double(), size=(oh, ow), mode="bilinear", align_corners=False)[0]
        exact = bool(torch.equal(v32.double(), v64))
        v, out = hwc(v64), hwc(y)
        frac = v - v.floor()
        near = [] if exact else [int(i) for i in torch.nonzero((frac - 0.5).abs() < DELTA).flatten()]
        # The band is wide enough: outside it torchvision's byte is the
        # float64 value rounded half to even.
        ok = torch.ones_like(out, dtype=torch.bool)
        ok[near] = False
        assert torch.equal(out[ok].double(), torch.round(v[ok])), name
        ties = int(((frac == 0.5) & ok).sum())
        cases.append({"input": name, "top": box[0], "left": box[1], "height": box[2], "width": box[3],
                      "out_height": oh, "out_width": ow, "exact": exact, "ties": ties,
                      "near_half": near, "output": [int(b) for b in out]})
        print(name, box, (oh, ow), "exact" if exact else "", "ties", ties, "near half", len(near))
    return cases


def normalise_cases():
    cases = []
    for name, box, mean, std in [
        ("chelsea.png", (60, 80, 4, 5), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),  # ImageNet's
        ("camera.png", (10, 20, 5, 4), [0.1307], [0.3081]),                              # MNIST's
    ]:
        a = window(name, box)
        im = Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)
        t = F.normalize(F.to_tensor(im), mean, std)
        assert t.dtype == torch.float32
        out = [float(repr(np.float32(v))) for v in hwc(t).tolist()]
        assert all(np.float32(o) == np.float32(v) for o, v in zip(out, hwc(t).tolist()))
        cases.append({"input": name, "top": box[0], "left": box[1], "height": box[2], "width": box[3],
                      "mean": mean, "std": std, "output": out})
    return cases


if __name__ == "__main__":
    data = {"generator": "testdata/pil/gen_tensor_transforms.py", "torch": torch.__version__,
            "torchvision": torchvision.__version__, "resize": resize_cases(), "normalise": normalise_cases()}
    with open(os.path.join(HERE, "torchvision", "tensor.json"), "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
