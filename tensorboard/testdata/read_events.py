#!/usr/bin/env python3
"""Reads a TensorBoard event file with tools independent of residual and
prints what it holds as JSON.

It is the generator of events.json, the fixture that tensorboard's Go
tests compare with:

    go test ./tensorboard -run TestFixture -update
    /usr/bin/python3 tensorboard/testdata/read_events.py \
        tensorboard/testdata/events.out.tfevents.1700000000.fixture \
        > tensorboard/testdata/events.json

The independent parts: the TFRecord CRCs are checked with crcmod's
CRC-32C (Debian python3-crcmod), the events are parsed by the protobuf
library (python3-protobuf) from event.proto and summary.proto (in proto/,
TensorBoard's field numbers), compiled here with protoc
(protobuf-compiler) into a temporary folder, and the images are decoded
with PIL (python3-pil). The script fails, with a message, on a bad CRC, a
truncated record, a field the .proto files do not define, or bytes that
differ from what the protobuf library serializes for the parsed event.
"""

import hashlib
import io
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import crcmod.predefined
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
CRC32C = crcmod.predefined.mkCrcFun("crc-32c")


def masked_crc(data):
    crc = CRC32C(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(blob):
    """Yields the data of each TFRecord in blob, checking both CRCs."""
    off, n = 0, 0
    while off < len(blob):
        if len(blob) - off < 12:
            raise SystemExit(f"record {n}: truncated header at byte {off}")
        length, = struct.unpack_from("<Q", blob, off)
        crc, = struct.unpack_from("<I", blob, off + 8)
        if crc != masked_crc(blob[off:off + 8]):
            raise SystemExit(f"record {n}: bad length CRC at byte {off}")
        start, end = off + 12, off + 12 + length
        if end + 4 > len(blob):
            raise SystemExit(f"record {n}: truncated data at byte {start}")
        data = blob[start:end]
        crc, = struct.unpack_from("<I", blob, end)
        if crc != masked_crc(data):
            raise SystemExit(f"record {n}: bad data CRC at byte {start}")
        yield data
        off, n = end + 4, n + 1


def compile_protos(out):
    proto_dir = os.path.join(HERE, "proto")
    subprocess.run(["protoc", "-I", proto_dir, "--python_out", out,
                    os.path.join(proto_dir, "summary.proto"),
                    os.path.join(proto_dir, "event.proto")], check=True)
    sys.path.insert(0, out)
    import event_pb2  # noqa: E402 (generated just now)
    return event_pb2


def number(x):
    """A float as JSON can hold it: non-finite values as strings."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def check_known(msg, where):
    """Fails on fields the .proto files do not define, in msg or below."""
    if msg.UnknownFields():
        raise SystemExit(f"{where}: fields unknown to event.proto/summary.proto: "
                         f"{[f.field_number for f in msg.UnknownFields()]}")
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        if field.label == field.LABEL_REPEATED:
            for i, v in enumerate(value):
                check_known(v, f"{where}.{field.name}[{i}]")
        else:
            check_known(value, f"{where}.{field.name}")


def image_json(img):
    png = img.encoded_image_string
    pil = Image.open(io.BytesIO(png))
    pil.load()
    if pil.format != "PNG":
        raise SystemExit(f"image is {pil.format}, not PNG")
    if pil.size != (img.width, img.height):
        raise SystemExit(f"image header says {img.width}x{img.height}, PIL decodes {pil.size}")
    return {
        "height": img.height,
        "width": img.width,
        "colorspace": img.colorspace,
        "png_bytes": len(png),
        "png_sha256": hashlib.sha256(png).hexdigest(),
        "pil_mode": pil.mode,
        # The first pixel as PIL decodes it, converted to RGBA.
        "pil_first_pixel_rgba": list(pil.convert("RGBA").getpixel((0, 0))),
    }


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: read_events.py EVENT_FILE")
    with open(sys.argv[1], "rb") as f:
        blob = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        event_pb2 = compile_protos(tmp)
        events = []
        for i, data in enumerate(records(blob)):
            ev = event_pb2.Event()
            ev.ParseFromString(data)
            check_known(ev, f"event {i}")
            if ev.SerializeToString(deterministic=True) != data:
                raise SystemExit(f"event {i}: bytes differ from the protobuf "
                                 f"library's serialization of the same event")
            out = {"wall_time": ev.wall_time, "step": ev.step}
            what = ev.WhichOneof("what")
            if what == "file_version":
                out["file_version"] = ev.file_version
            elif what == "session_log":
                out["session_log"] = event_pb2.SessionLog.SessionStatus.Name(ev.session_log.status)
            elif what == "summary":
                values = []
                for v in ev.summary.value:
                    kind = v.WhichOneof("value")
                    if kind == "simple_value":
                        values.append({"tag": v.tag, "simple_value": number(v.simple_value)})
                    elif kind == "image":
                        values.append({"tag": v.tag, "image": image_json(v.image)})
                    else:
                        raise SystemExit(f"event {i}: value {v.tag!r} holds {kind}")
                out["values"] = values
            else:
                raise SystemExit(f"event {i}: holds {what}")
            events.append(out)
    json.dump({"records": len(events), "bytes": len(blob), "events": events},
              sys.stdout, indent=1, allow_nan=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
