#!/usr/bin/python3
"""Writes the fixtures of interop/torch's tests into testdata/torch/interop/:
a small ResNet with torchvision's structure and names (torchvision's own
BasicBlock; widths 8 and 16 so the files stay small) saved with torch.save
(small.pth) and as safetensors (small.safetensors), its logits in evaluation
mode for the hashed input of gen_models.py, a .pth that names a global a
state dict never needs (evil.pth), a training checkpoint that wraps a state
dict (wrapped.pth) and a whole module saved instead of its state dict
(whole.pth).

Run from the repository root: /usr/bin/python3 testdata/torch/gen_interop.py
"""
import collections
import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_models import fill_value, T  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "interop")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(5)


class Small(nn.Module):
    """torchvision.models.ResNet's layout with layers [1, 1], widths 8 and 16."""

    def __init__(self, classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(8, 8))
        down = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, 2, down))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def save_safetensors(sd, path):
    hdr, data, off = {}, b"", 0
    for k in sorted(sd):
        t = sd[k].detach().contiguous()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        b = t.numpy().tobytes()
        hdr[k] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        data += b
        off += len(b)
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


m = Small()
with torch.no_grad():  # non-trivial BN statistics, so evaluation mode is tested
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.uniform_(0.5, 1.5)
            mod.bias.normal_(0, 0.2)
m.eval()
sd = m.state_dict()
torch.save(sd, os.path.join(OUT, "small.pth"))
save_safetensors(sd, os.path.join(OUT, "small.safetensors"))
x = fill_value("input", [2, 3, 40, 40])
with torch.no_grad():
    logits = m(x)
json.dump({"generator": "testdata/torch/gen_interop.py", "torch": torch.__version__,
           "input": [2, 3, 40, 40], "logits": T(logits)}, open(os.path.join(OUT, "small.json"), "w"))
torch.save({"conv1.weight": torch.zeros(1), "note": collections.Counter("abc")}, os.path.join(OUT, "evil.pth"))
# A training checkpoint wrapping a state dict, as PyTorch's tutorials save
# one: the epoch first, then the model's and the optimizer's state dicts.
_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, momentum=0.9)
torch.save({"epoch": 3, "model_state_dict": {"fc.bias": torch.zeros(2)},
            "optimizer_state_dict": _opt.state_dict(), "loss": 0.5}, os.path.join(OUT, "wrapped.pth"))


class TinyUNet(nn.Module):
    """A one-level valid-convolution U-Net: conv-BN-ReLU pairs, max pool,
    2x2 transposed convolution, centre crop by slicing, concatenation."""

    def __init__(self):
        super().__init__()

        def pair(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3), nn.BatchNorm2d(o), nn.ReLU(), nn.Conv2d(o, o, 3), nn.BatchNorm2d(o), nn.ReLU())
        self.down = pair(1, 4)
        self.bottom = pair(4, 8)
        self.up = nn.ConvTranspose2d(8, 4, 2, 2)
        self.dec = pair(8, 4)
        self.head = nn.Conv2d(4, 3, 1)

    def forward(self, x):
        skip = self.down(x)
        y = self.up(self.bottom(F.max_pool2d(skip, 2)))
        t = (skip.shape[2] - y.shape[2]) // 2
        l = (skip.shape[3] - y.shape[3]) // 2
        skip = skip[:, :, t:t + y.shape[2], l:l + y.shape[3]]
        return self.head(self.dec(torch.cat([skip, y], 1)))


# Graphs made by torch.onnx.export (opset 13) for interop/onnx's import test.
u = TinyUNet()
with torch.no_grad():
    for mod in u.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
u.eval()
xu = fill_value("input", [1, 1, 44, 44])
cases = {}
for name, net, inp in [("small_resnet", m, x), ("tiny_unet", u, xu)]:
    path = os.path.join(OUT, name + ".onnx")
    torch.onnx.export(net, inp, path, opset_version=13, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    with torch.no_grad():
        cases[name] = {"input": list(inp.shape), "output": T(net(inp))}
json.dump({"generator": "testdata/torch/gen_interop.py", "torch": torch.__version__, "cases": cases},
          open(os.path.join(OUT, "onnx.json"), "w"))
# A whole module saved with torch.save(model) rather than its state dict
# (last, so that its initialisation draws nothing the fixtures above use).
torch.save(BasicBlock(2, 2), os.path.join(OUT, "whole.pth"))
print("wrote", sorted(os.listdir(OUT)))
