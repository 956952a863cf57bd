#!/usr/bin/python3
"""Writes testdata/torch/interop/tied.pth: a state dict of one weight tied
under three names (a.weight, b.weight and c.weight: one 1024x1536 float32
storage, 6 MB, each name a tensor of its own viewing all of it), as
torch.save writes it, its zip entries then deflated so that the file stays
small (the reader takes deflated entries as stored ones), dated 1980 so
that the file is the same at every run. The weight's value at flat index
i is i % 251.

Run from the repository root: /usr/bin/python3 testdata/torch/gen_tied.py
"""
import io
import os
import zipfile

import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "interop")
os.makedirs(OUT, exist_ok=True)


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(1536, 1024, bias=False)
        self.b = nn.Linear(1536, 1024, bias=False)
        self.c = nn.Linear(1536, 1024, bias=False)
        self.b.weight = self.a.weight
        self.c.weight = self.a.weight


m = Tied()
with torch.no_grad():
    m.a.weight.copy_((torch.arange(1024 * 1536) % 251).float().reshape(1024, 1536))
sd = m.state_dict()
assert list(sd) == ["a.weight", "b.weight", "c.weight"]
assert len({t.data_ptr() for t in sd.values()}) == 1 and len({id(t) for t in sd.values()}) == 3
buf = io.BytesIO()
torch.save(sd, buf)
buf.seek(0)
with zipfile.ZipFile(buf) as src, zipfile.ZipFile(os.path.join(OUT, "tied.pth"), "w", zipfile.ZIP_DEFLATED) as dst:
    names = src.namelist()
    assert sum(n.endswith("/data/0") for n in names) == 1 and not any(n.endswith("/data/1") for n in names), names
    for name in names:
        dst.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), src.read(name), zipfile.ZIP_DEFLATED)
loaded = torch.load(os.path.join(OUT, "tied.pth"))
assert all(torch.equal(loaded[k], sd[k]) for k in sd)
print("wrote", os.path.join(OUT, "tied.pth"), os.path.getsize(os.path.join(OUT, "tied.pth")), "bytes")
