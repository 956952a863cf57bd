#!/usr/bin/python3
"""Writes the fixtures that package data's image tests compare against PIL.

Run from the repository root with Debian's Python (python3-pil, python3-skimage,
and python3-torchvision for the torchvision/ fixtures; about 5 minutes, most of it
the 1,000,000 RandomResizedCrop draws):

    /usr/bin/python3 testdata/pil/gen_fixtures.py

It writes, into testdata/pil/:

- resize/*.png and resize/cases.json: crops of scikit-image's sample photos
  (the inputs, as PNG) and PIL's Image.resize(..., BILINEAR) of each to
  several sizes (shrinking by integer and non-integer factors, enlarging,
  odd sizes, a change of aspect): what torchvision's Resize and
  RandomResizedCrop produce on PIL images.
- webp/*.webp: lossless and lossy WebP files, with and without alpha, and
  webp/*.png: PIL's (libwebp's) decoding of each, converted to RGB or RGBA.
- exif/*.jpg: a JPEG with each EXIF orientation (2 to 8) of the same
  asymmetric picture, and exif/upright.png, what ImageOps.exif_transpose
  gives for every one of them.
- cmyk.jpg and cmyk.png: an Adobe CMYK JPEG (which Go's encoder cannot
  write) and PIL's conversion of it to RGB.
- alpha/*.png: images with transparency (RGBA with an alpha ramp down to
  0, grey with alpha, a palette with a transparent entry) and PIL's
  convert("RGB") and convert("L") of each (*_rgb.png, *_l.png): alpha is
  dropped, not blended.
- jpeg/*.jpg and jpeg/*.png: JPEGs of odd and even sizes with 4:2:0, 4:2:2
  and 4:4:4 chroma subsampling (baseline and progressive), 4:4:0 (written
  by libjpeg-turbo's cjpeg, from Debian's libjpeg-turbo-progs), narrow ones
  and a grey one, and PIL's (libjpeg's) decoding of each, converted to RGB.
- pnm/*.pnm and pnm/*.png: PBM, PGM and PPM files, binary and plain, of
  maximum values 1 to 65535, and PIL's decoding of each as a PNG of the
  same values (16-bit grey for PIL's 32-bit "I"); pnm/bad_*.pnm, files PIL
  refuses.
- tiff/*.tif and tiff/*.png: TIFFs written by PIL and libtiff (RGB, grey,
  RGBA, paletted, bitmaps with CCITT group 3 and 4, 16-bit grey;
  uncompressed, LZW, Deflate, PackBits, a predictor; two pages) and PIL's
  decoding of each; tiff/unsupported_*.tif, kinds Go's decoder cannot read.
- bmp/*.bmp and bmp/*.png: bitmaps Go's x/image/bmp cannot read (16-bit,
  32-bit bitfields with alpha, RLE8 and RLE4, OS/2 headers, short palettes,
  gaps before the pixels, top-down) and PIL's decoding of each, converted
  to RGB; bmp/bad_*.bmp, files PIL refuses.
- palette/short*.png and palette/short*_rgb.png: paletted PNGs of 1, 2, 4
  and 8 bits whose pixels index past their PLTE chunk (PIL writes as many
  entries as the palette holds, then the bit depth that holds them), one
  with a tRNS chunk, and PIL's convert("RGB") of each: such an index i
  reads as grey (i, i, i).
- torchvision/*.png and torchvision/cases.json: torchvision's evaluation
  transform (Resize(size/0.875) + CenterCrop(size)) and resized crops at
  given windows (F.resized_crop) of the resize inputs, and statistics of
  RandomResizedCrop.get_params over 200,000 draws for several image shapes
  (mean and standard deviation of the area fraction and of log(w/h), and
  how often the centre fallback is taken).

Everything is deterministic; the files are kept small (the photos are
cropped) so that the whole folder stays well under 1 MB.
"""
import json
import os

import skimage.data
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTOS = os.path.dirname(skimage.data.__file__)


def photo(name, box, mode="RGB"):
    im = Image.open(os.path.join(PHOTOS, name))
    im.load()
    return im.convert(mode).crop(box)


def resize_fixtures():
    out = os.path.join(HERE, "resize")
    os.makedirs(out, exist_ok=True)
    inputs = {
        # name: (photo, crop box (left, top, right, bottom), mode)
        "chelsea": ("chelsea.png", (100, 40, 261, 161), "RGB"),  # 161x121
        "coffee": ("coffee.png", (200, 100, 297, 173), "RGB"),  # 97x73
        "astronaut": ("astronaut.png", (150, 60, 251, 187), "RGB"),  # 101x127
        "rocket": ("rocket.jpg", (120, 80, 183, 171), "RGB"),  # 63x91
        "camera": ("camera.png", (180, 60, 311, 183), "L"),  # 131x123, grey
    }
    sizes = {
        "chelsea": [(64, 48), (37, 29), (161, 60), (13, 11), (230, 171)],
        "coffee": [(48, 36), (31, 23), (150, 113), (97, 41)],
        "astronaut": [(50, 63), (17, 21), (101, 200), (7, 9)],
        "rocket": [(21, 30), (40, 58), (100, 140), (1, 1)],
        "camera": [(65, 61), (29, 27), (200, 190), (131, 50)],
    }
    cases = []
    for name, (file, box, mode) in inputs.items():
        im = photo(file, box, mode)
        src = name + ".png"
        im.save(os.path.join(out, src))
        for w, h in sizes[name]:
            dst = "%s_%dx%d.png" % (name, w, h)
            im.resize((w, h), Image.BILINEAR).save(os.path.join(out, dst))
            cases.append({"input": src, "output": dst, "width": w, "height": h})
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")


def webp_fixtures():
    out = os.path.join(HERE, "webp")
    os.makedirs(out, exist_ok=True)
    rgb = photo("chelsea.png", (150, 60, 197, 95))  # 47x35: odd sizes for the chroma edges
    rgba = rgb.copy()
    alpha = Image.linear_gradient("L").resize(rgb.size)
    rgba.putalpha(alpha)
    files = {
        "lossless.webp": (rgb, dict(lossless=True)),
        "lossless_alpha.webp": (rgba, dict(lossless=True)),
        "lossy.webp": (rgb, dict(quality=80, method=4)),
        "lossy_alpha.webp": (rgba, dict(quality=80, method=4)),
        # even sizes, for the last row and column of the chroma upsampling
        "lossy_even.webp": (photo("coffee.png", (220, 110, 260, 140)), dict(quality=90)),
    }
    for name, (im, opts) in files.items():
        path = os.path.join(out, name)
        im.save(path, "WEBP", **opts)
        dec = Image.open(path)
        dec.load()
        dec.convert("RGBA" if "alpha" in name else "RGB").save(path[:-5] + ".png")


def exif_fixtures():
    out = os.path.join(HERE, "exif")
    os.makedirs(out, exist_ok=True)
    # An asymmetric picture of flat blocks (JPEG keeps flat blocks nearly
    # exact): 24 wide, 16 high.
    up = Image.new("RGB", (24, 16), (255, 255, 255))
    up.paste((255, 0, 0), (0, 0, 8, 8))
    up.paste((0, 0, 255), (16, 8, 24, 16))
    up.paste((0, 160, 0), (8, 0, 16, 8))
    up.save(os.path.join(out, "upright.png"))
    # The stored picture for orientation o is the one that exif_transpose
    # turns upright: the inverse transform of the upright one.
    inverse = {
        2: Image.FLIP_LEFT_RIGHT,
        3: Image.ROTATE_180,
        4: Image.FLIP_TOP_BOTTOM,
        5: Image.TRANSPOSE,
        6: Image.ROTATE_90,
        7: Image.TRANSVERSE,
        8: Image.ROTATE_270,
    }
    for o, op in inverse.items():
        stored = up.transpose(op)
        exif = Image.Exif()
        exif[0x0112] = o
        path = os.path.join(out, "orientation%d.jpg" % o)
        stored.save(path, "JPEG", quality=95, subsampling=0, exif=exif.tobytes())
        back = ImageOps.exif_transpose(Image.open(path))
        if back.size != up.size:
            raise SystemExit("orientation %d: exif_transpose gave %s" % (o, back.size))


def cmyk_fixture():
    im = photo("coffee.png", (200, 100, 240, 130)).convert("CMYK")
    path = os.path.join(HERE, "cmyk.jpg")
    im.save(path, "JPEG", quality=95)
    dec = Image.open(path)
    dec.load()
    if dec.mode != "CMYK":
        raise SystemExit("cmyk.jpg decodes as " + dec.mode)
    dec.convert("RGB").save(os.path.join(HERE, "cmyk.png"))


def alpha_fixtures():
    out = os.path.join(HERE, "alpha")
    os.makedirs(out, exist_ok=True)
    rgba = photo("coffee.png", (100, 60, 137, 89), "RGBA")  # 37x29
    a = Image.new("L", rgba.size)
    a.putdata([(x * 7 + y * 3) % 256 for y in range(rgba.height) for x in range(rgba.width)])
    rgba.putalpha(a)
    la = photo("camera.png", (200, 40, 231, 63), "L").convert("LA")
    la.putalpha(a.crop((0, 0) + la.size))
    pal = photo("astronaut.png", (150, 60, 183, 88)).convert("P", palette=Image.ADAPTIVE, colors=16)
    pal.info["transparency"] = 3
    for name, im in [("rgba", rgba), ("la", la), ("palette", pal)]:
        path = os.path.join(out, name + ".png")
        im.save(path)
        dec = Image.open(path)
        dec.load()
        dec.convert("RGB").save(os.path.join(out, name + "_rgb.png"))
        dec.convert("L").save(os.path.join(out, name + "_l.png"))


def noise(w, h, seed):
    """A w×h RGB image of uniformly random colours, from a seeded LCG."""
    x = seed
    px = []
    for _ in range(w * h * 3):
        x = (1103515245 * x + 12345) % 2**31
        px.append(x >> 23)
    return Image.frombytes("RGB", (w, h), bytes(px))


def jpeg_fixtures():
    out = os.path.join(HERE, "jpeg")
    os.makedirs(out, exist_ok=True)
    odd = photo("chelsea.png", (120, 80, 157, 109))  # 37x29
    even = photo("coffee.png", (300, 150, 340, 180))  # 40x30
    cases = [
        ("s420_odd", odd, dict(subsampling=2)),
        ("s420_even", even, dict(subsampling=2)),
        ("s422_odd", odd, dict(subsampling=1)),
        ("s444_odd", odd, dict(subsampling=0)),
        ("s420_progressive", odd, dict(subsampling=2, progressive=True)),
        ("grey", odd.convert("L"), dict()),
        # Chroma planes of at most 2 samples a row, which libjpeg repeats
        # rather than interpolates; random colours, so that the two differ
        # by tens of levels.
        ("s420_narrow3", noise(3, 16, 1), dict(subsampling=2)),
        ("s420_narrow1", noise(1, 17, 2), dict(subsampling=2)),
        ("s422_narrow4", noise(4, 9, 3), dict(subsampling=1)),
        ("s420_progressive_narrow", noise(3, 16, 4), dict(subsampling=2, progressive=True)),
    ]
    for name, im, opts in cases:
        path = os.path.join(out, name + ".jpg")
        im.save(path, "JPEG", quality=90, **opts)
        dec = Image.open(path)
        dec.load()
        dec.convert("RGB").save(os.path.join(out, name + ".png"))
    # 4:4:0 (chroma halved vertically only), which PIL cannot write:
    # libjpeg-turbo's cjpeg (Debian's libjpeg-turbo-progs) writes it.
    import subprocess
    for name, im in [("s440_odd", odd), ("s440_narrow2", noise(2, 9, 5))]:
        ppm = os.path.join(out, name + ".ppm")
        im.save(ppm)
        path = os.path.join(out, name + ".jpg")
        subprocess.run(["cjpeg", "-quality", "90", "-sample", "1x2", "-outfile", path, ppm], check=True)
        os.remove(ppm)
        dec = Image.open(path)
        dec.load()
        dec.convert("RGB").save(os.path.join(out, name + ".png"))


def unsupported_fixtures():
    """Files Go's decoders cannot read though their headers look fine
    (refused at the header check, named), and a GIF whose transparent
    palette entry PIL reads as its colour (with PIL's convert("RGB"))."""
    import subprocess
    out = os.path.join(HERE, "unsupported")
    os.makedirs(out, exist_ok=True)
    im = noise(16, 16, 7)
    ppm = os.path.join(out, "src.ppm")
    im.save(ppm)
    for name, flags in [("arithmetic", ["-arithmetic"]), ("progressive_restart", ["-progressive", "-restart", "1"])]:
        subprocess.run(["cjpeg", "-quality", "90", *flags, "-outfile", os.path.join(out, name + ".jpg"), ppm], check=True)
    os.remove(ppm)
    frames = [noise(8, 8, 8), noise(8, 8, 9)]
    frames[0].save(os.path.join(out, "animated.webp"), "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    p = Image.new("P", (6, 4))
    p.putpalette([0, 0, 0, 199, 153, 113, 10, 200, 30] + [0] * (256 - 3) * 3)
    p.putdata([1, 2, 0, 1, 2, 1] * 4)
    path = os.path.join(out, "transparent.gif")
    p.save(path, transparency=1)
    dec = Image.open(path)
    dec.load()
    dec.convert("RGB").save(os.path.join(out, "transparent.png"))
    # A 5×5 image placed at (3, 2) on an 11×9 canvas (patched into a GIF
    # PIL wrote: PIL places it and fills the rest with entry 0).
    import struct
    p = Image.new("P", (5, 5))
    p.putpalette([0, 0, 0, 199, 153, 113, 10, 200, 30, 171, 60, 90] + [0] * (256 - 4) * 3)
    p.putdata([1, 2, 1, 2, 1] * 5)
    path = os.path.join(out, "canvas.gif")
    p.save(path)
    b = bytearray(open(path, "rb").read())
    b[6:10] = struct.pack("<HH", 11, 9)
    b[11] = 3
    i = 13 + (3 << ((b[10] & 7) + 1) if b[10] & 0x80 else 0)
    while b[i] == 0x21:
        i += 2
        while b[i] != 0:
            i += b[i] + 1
        i += 1
    b[i + 1:i + 5] = struct.pack("<HH", 3, 2)
    open(path, "wb").write(bytes(b))
    dec = Image.open(path)
    dec.load()
    dec.convert("RGB").save(os.path.join(out, "canvas.png"))


def short_palette_fixtures():
    """Paletted PNGs whose pixels index past their palette: PIL writes a
    PLTE of the entries the palette holds and the smallest bit depth that
    holds them, so every index up to the depth's maximum is written as
    it is. PIL reads an index past the PLTE as grey (i, i, i), opaque;
    Go's decoder as opaque black."""
    out = os.path.join(HERE, "palette")
    os.makedirs(out, exist_ok=True)
    cases = [
        # name, entries, bits, size, transparent entry
        ("short1", 1, 1, (2, 1), None),
        ("short2", 3, 2, (4, 2), None),
        ("short4", 5, 4, (8, 2), None),
        ("short8", 20, 8, (16, 16), None),
        ("short8_trns", 20, 8, (16, 16), 2),
    ]
    for name, entries, bits, size, transparent in cases:
        p = Image.new("P", size)
        p.putpalette([(37 * i + 11 * c) % 256 for i in range(entries) for c in range(3)])
        p.putdata([i % (1 << bits) for i in range(size[0] * size[1])])  # every index
        path = os.path.join(out, name + ".png")
        if transparent is None:
            p.save(path)
        else:
            p.save(path, transparency=transparent)
        b = open(path, "rb").read()
        assert b[24] == bits, (name, b[24])
        i = b.index(b"PLTE")
        assert int.from_bytes(b[i - 4:i], "big") == 3 * entries, name
        dec = Image.open(path)
        dec.load()
        assert max(dec.getdata()) == (1 << bits) - 1, name
        dec.convert("RGB").save(os.path.join(out, name + "_rgb.png"))


def pil_values(im):
    """PIL's decoded values as a PNG of the same values: grey (L), RGB, a
    bitmap as grey 0/255, 16-bit grey (PIL's 32-bit "I" of a PGM above 8
    bits, or a TIFF's I;16) as a 16-bit grey PNG."""
    import numpy as np
    if im.mode in ("I", "I;16", "I;16B"):
        a = np.asarray(im, dtype=np.uint32)
        assert a.max() <= 65535
        return Image.fromarray(a.astype(np.uint16), "I;16")
    if im.mode == "1":
        return im.convert("L")
    return im


def write_refused(out, bad, ext):
    """Writes each of bad (name → bytes) as out/bad_NAME.EXT and checks
    that PIL refuses it."""
    for name, b in bad.items():
        path = os.path.join(out, "bad_" + name + ext)
        open(path, "wb").write(b)
        try:
            Image.open(path).load()
        except Exception:
            continue
        raise SystemExit("PIL reads " + path)


def pnm_fixtures():
    """PBM, PGM and PPM files, binary and plain, of several maximum
    values (PIL writes only P4, P5 and P6 at 255 and 65535, so they are
    written here), and PIL's decoding of each as a PNG of the same values
    (pil_values). bad_*.pnm are files PIL refuses."""
    import numpy as np
    out = os.path.join(HERE, "pnm")
    os.makedirs(out, exist_ok=True)
    w, h = 13, 7
    rgb = np.frombuffer(noise(w, h, 11).tobytes(), dtype=np.uint8).reshape(h, w, 3).astype(int)
    grey = rgb[:, :, 0]

    def scaled(a, maxval):
        return (a * maxval) // 255

    def plain(a):
        rows = [" ".join(str(v) for v in r.ravel()) for r in a]
        return ("\n".join(rows) + "\n").encode()

    def binary(a, maxval):
        return a.astype(">u2" if maxval > 255 else "u1").tobytes()

    bits = (grey > 127).astype(int)
    cases = {
        "p1": b"P1\n# a plain bitmap\n%d %d\n" % (w, h) + "\n".join("".join(str(v) for v in r) for r in bits).encode() + b"\n",
        "p4": b"P4\n%d %d\n" % (w, h) + np.packbits(bits, axis=1).tobytes(),
    }
    for maxval in (255, 15, 100, 1000, 65535):
        g, c = scaled(grey, maxval), scaled(rgb, maxval)
        cases["p5_%d" % maxval] = b"P5 %d %d %d\n" % (w, h, maxval) + binary(g, maxval)
        cases["p6_%d" % maxval] = b"P6\n%d %d\n%d\n" % (w, h, maxval) + binary(c, maxval)
        cases["p2_%d" % maxval] = b"P2\n# plain grey\n%d %d %d\n" % (w, h, maxval) + plain(g)
        cases["p3_%d" % maxval] = b"P3 %d # width\n%d\n%d\n" % (w, h, maxval) + plain(c)
    # Samples above maxval in a binary file (PIL clips them), and
    # whitespace after the header's one separator (the first pixel is 10).
    cases["p5_above"] = b"P5 %d %d 15\n" % (w, h) + binary(grey, 255)
    cases["p5_newline_pixel"] = b"P5 %d %d 255\n\n" % (w, h) + binary(grey, 255)[:-1]
    for name, b in cases.items():
        path = os.path.join(out, name + ".pnm")
        open(path, "wb").write(b)
        dec = Image.open(path)
        dec.load()
        pil_values(dec).save(os.path.join(out, name + ".png"))
    bad = {
        "truncated": b"P6 4 4 255\n" + bytes(20),
        "maxval0": b"P5 2 2 0\n" + bytes(4),
        "maxval70000": b"P5 2 2 70000\n" + bytes(8),
        "plain_above": b"P2 2 1 15\n3 16\n",
        "long_token": b"P5 12345678901 1 255\n" + bytes(8),
    }
    write_refused(out, bad, ".pnm")


def tiff_fixtures():
    """TIFF files of the kinds Go's decoder reads — grey, RGB, RGBA,
    paletted, bitmaps (CCITT group 3 and 4 among them), 16-bit grey;
    uncompressed, LZW, Deflate, PackBits, with a predictor; two pages;
    Orientation tags —
    written by PIL (libtiff), and PIL's decoding of each as a PNG of its
    values (pil_values), turned upright by its Orientation tag as PIL's
    loader turns it; and unsupported_*.tif, kinds it does not read
    (JPEG compression, CMYK, grey with alpha, floating point), which PIL
    reads."""
    import numpy as np
    from PIL import TiffImagePlugin
    out = os.path.join(HERE, "tiff")
    os.makedirs(out, exist_ok=True)
    rgb = photo("chelsea.png", (120, 80, 151, 101))  # 31x21
    grey = rgb.convert("L")
    alpha = rgb.copy()
    alpha.putalpha(grey.point(lambda v: 255 - v))
    predictor = TiffImagePlugin.ImageFileDirectory_v2()
    predictor[317] = 2
    white_is_zero = TiffImagePlugin.ImageFileDirectory_v2()
    white_is_zero[262] = 0
    # The Orientation tag (274), which PIL's TIFF reader applies as it
    # loads the image (ImageFolder's pictures come out turned upright;
    # ImageOps.exif_transpose would turn them a second time).
    orientation6 = TiffImagePlugin.ImageFileDirectory_v2()
    orientation6[274] = 6
    orientation8 = TiffImagePlugin.ImageFileDirectory_v2()
    orientation8[274] = 8
    cases = [
        ("rgb", rgb, {}),
        ("rgb_lzw", rgb, dict(compression="tiff_lzw")),
        ("rgb_deflate", rgb, dict(compression="tiff_adobe_deflate")),
        ("rgb_packbits", rgb, dict(compression="packbits")),
        ("rgb_lzw_predictor", rgb, dict(compression="tiff_lzw", tiffinfo=predictor)),
        ("grey", grey, {}),
        ("grey_deflate_predictor", grey, dict(compression="tiff_adobe_deflate", tiffinfo=predictor)),
        ("grey_white_is_zero", grey, dict(tiffinfo=white_is_zero)),
        ("rgba", alpha, dict(compression="tiff_lzw")),
        ("palette", rgb.convert("P", palette=Image.ADAPTIVE, colors=17), dict(compression="tiff_lzw")),
        ("bitmap", rgb.convert("1"), {}),
        ("bitmap_g3", rgb.convert("1"), dict(compression="group3")),
        ("bitmap_g4", rgb.convert("1"), dict(compression="group4")),
        ("bitmap_g4_white_is_zero", rgb.convert("1"), dict(compression="group4", tiffinfo=white_is_zero)),
        ("grey16", Image.fromarray(np.asarray(grey).astype(np.uint16) * 251 + 17), {}),
        ("orientation6", rgb, dict(tiffinfo=orientation6)),
        ("orientation8_lzw", rgb, dict(compression="tiff_lzw", tiffinfo=orientation8)),
    ]
    for name, im, opts in cases:
        path = os.path.join(out, name + ".tif")
        TiffImagePlugin.WRITE_LIBTIFF = "tiffinfo" in opts
        im.save(path, **opts)
        TiffImagePlugin.WRITE_LIBTIFF = False
        dec = Image.open(path)
        dec.load()
        pil_values(dec).save(os.path.join(out, name + ".png"))
    # Associated (premultiplied) alpha, ExtraSamples 1, which PIL writes
    # for no mode: its RGBA file with the tag patched, so that the stored
    # samples read as premultiplied (PIL un-premultiplies them as it
    # unpacks: ⌊255·c/a⌋).
    import struct

    def extra_samples(path, value):
        alpha.save(path)
        b = bytearray(open(path, "rb").read())
        ifd = struct.unpack("<I", b[4:8])[0]
        for k in range(struct.unpack("<H", b[ifd:ifd + 2])[0]):
            e = ifd + 2 + 12 * k
            if struct.unpack("<H", b[e:e + 2])[0] == 338:
                b[e + 8:e + 10] = struct.pack("<H", value)
        open(path, "wb").write(bytes(b))
        dec = Image.open(path)
        dec.load()
        return dec

    dec = extra_samples(os.path.join(out, "rgba_associated.tif"), 1)
    pil_values(dec).save(os.path.join(out, "rgba_associated.png"))
    # ExtraSamples 0 (a fourth sample of no stated meaning), which PIL
    # reads as RGBX and Go's decoder does not read.
    extra_samples(os.path.join(out, "unsupported_rgbx.tif"), 0)
    # Two pages: PIL's first (ImageFolder's) is the colour one.
    rgb.save(os.path.join(out, "pages.tif"), save_all=True, append_images=[grey.convert("RGB").transpose(Image.FLIP_LEFT_RIGHT)])
    for name, im, opts in [
        ("unsupported_jpeg", rgb, dict(compression="jpeg")),
        ("unsupported_cmyk", rgb.convert("CMYK"), {}),
        ("unsupported_grey_alpha", grey.convert("LA"), {}),
        ("unsupported_float", grey.convert("F"), {}),
    ]:
        path = os.path.join(out, name + ".tif")
        im.save(path, **opts)
        Image.open(path).load()


def tiff16_fixtures():
    """16-bit RGBA TIFFs, which PIL reads and does not write, written here
    byte by byte (uncompressed, little-endian, one strip): rgba16.tif of
    unassociated alpha (ExtraSamples 2), rgba16_associated.tif of
    associated (premultiplied) alpha (ExtraSamples 1, colours at most the
    alpha), its alphas from 0 up; and PIL's decoding of each (RGBA, 8 bits:
    the high bytes, divided by the alpha's high byte where associated) as
    tiff/NAME.png."""
    import struct
    import numpy as np
    out = os.path.join(HERE, "tiff")
    rgb = np.asarray(photo("chelsea.png", (120, 80, 151, 101)), dtype=np.uint32)  # 31x21
    h, w = rgb.shape[:2]
    rgb16 = rgb * 257 + (np.arange(h * w * 3, dtype=np.uint32).reshape(h, w, 3) * 7919) % 257
    a16 = ((np.arange(h * w, dtype=np.uint32) * 40503) % 65536).reshape(h, w)
    a16[0, :4] = (0, 255, 256, 65535)  # transparent, below and at one level of the high byte, opaque

    def write(name, extra, premultiplied):
        c = rgb16 * a16[..., None] // 65535 if premultiplied else rgb16
        pix = np.concatenate([c, a16[..., None]], axis=2).astype("<u2").tobytes()
        tags = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 4, None), (259, 3, 1, 1), (262, 3, 1, 2),
                (273, 4, 1, None), (277, 3, 1, 4), (278, 3, 1, h), (279, 4, 1, len(pix)), (284, 3, 1, 1),
                (338, 3, 1, extra)]
        ifd = 8
        bps = ifd + 2 + 12 * len(tags) + 4
        data = bps + 8
        b = bytearray(b"II*\0" + struct.pack("<I", ifd) + struct.pack("<H", len(tags)))
        for tag, typ, count, value in tags:
            if tag == 258:
                value = bps
            if tag == 273:
                value = data
            b += struct.pack("<HHI", tag, typ, count)
            b += struct.pack("<HH", value, 0) if typ == 3 and count == 1 else struct.pack("<I", value)
        b += struct.pack("<I", 0) + struct.pack("<4H", 16, 16, 16, 16) + pix
        path = os.path.join(out, name + ".tif")
        open(path, "wb").write(bytes(b))
        dec = Image.open(path)
        dec.load()
        assert dec.mode == "RGBA", dec.mode
        pil_values(dec).save(os.path.join(out, name + ".png"))

    write("rgba16", 2, False)
    write("rgba16_associated", 1, True)


def bmp_fixtures():
    """Bitmaps that Go's x/image/bmp does not read, written here byte by
    byte (PIL writes only uncompressed 1-, 8-, 24- and 32-bit BMPs): 16-bit
    5-5-5 and 5-6-5 (BI_BITFIELDS), 32-bit with every bitfield order PIL
    knows (alpha included), RLE8 and RLE4 (runs, absolute runs of odd
    length, deltas, ends of line and of bitmap, a run past its row), an
    OS/2 header, a palette shorter than the indices,
    a gap between the palette and the pixels, a top-down 24-bit image; and
    PIL's decoding of each, converted to RGB, as bmp/NAME.png; and the
    bitmaps PIL writes (1-bit, 8-bit grey and paletted, 24-bit).
    bmp/bad_*.bmp are files PIL refuses."""
    import struct
    out = os.path.join(HERE, "bmp")
    os.makedirs(out, exist_ok=True)
    w, h = 7, 5
    rgb = noise(w, h, 5).tobytes()

    def px(x, y):
        i = 3 * (y * w + x)
        return rgb[i], rgb[i + 1], rgb[i + 2]

    def rows(pack, bits, topdown=False):
        """Pixel rows bottom-up (or top-down), each padded to 4 bytes."""
        stride = (w * bits + 31) // 32 * 4
        data = b""
        for y in (range(h) if topdown else range(h - 1, -1, -1)):
            r = pack(y)
            data += r + bytes(stride - len(r))
        return data

    def bmp(pixels, bits, compression=0, header=40, masks=None, palette=b"", colors=0, topdown=False, gap=0, offset0=False):
        hs = header
        height = -h if topdown else h
        extra = b""
        if header == 12:
            info = struct.pack("<IHHHH", 12, w, h, 1, bits)
        else:
            info = struct.pack("<IiiHHIIiiII", hs, w, height, 1, bits, compression, len(pixels), 2835, 2835, colors, 0)
            if masks is not None and header == 40:
                extra = struct.pack("<III", *masks[:3])
            elif header > 40:
                m = list(masks or (0, 0, 0, 0)) + [0] * 4
                info += struct.pack("<IIII", *m[:4])[:hs - 40] + bytes(max(0, hs - 56))
        offset = 14 + len(info) + len(extra) + len(palette) + gap
        body = info + extra + palette + bytes(gap) + pixels
        return b"BM" + struct.pack("<IHHI", 14 + len(body), 0, 0, 0 if offset0 else offset) + body

    def pal(n, entry=4):
        cols = [((37 * i) % 256, (91 * i + 7) % 256, (53 * i + 100) % 256) for i in range(n)]
        return b"".join(bytes((b, g, r)) + bytes(entry - 3) for r, g, b in cols)

    def p555(r, g, b):
        return struct.pack("<H", (r >> 3) << 10 | (g >> 3) << 5 | b >> 3)

    def p565(r, g, b):
        return struct.pack("<H", (r >> 3) << 11 | (g >> 2) << 5 | b >> 3)

    row16 = lambda f: (lambda y: b"".join(f(*px(x, y)) for x in range(w)))
    alpha = lambda x, y: (x * 40 + y * 13) % 256
    cases = {
        "rgb555": bmp(rows(row16(p555), 16), 16),
        "rgb565_bitfields": bmp(rows(row16(p565), 16), 16, 3, masks=(0xF800, 0x7E0, 0x1F)),
        "rgb555_v4": bmp(rows(row16(p555), 16), 16, 3, header=108, masks=(0x7C00, 0x3E0, 0x1F, 0)),
        "bgrx_raw": bmp(rows(lambda y: b"".join(bytes((px(x, y)[2], px(x, y)[1], px(x, y)[0], 9)) for x in range(w)), 32), 32),
        "bgra_v5": bmp(rows(lambda y: b"".join(bytes((px(x, y)[2], px(x, y)[1], px(x, y)[0], alpha(x, y))) for x in range(w)), 32), 32, 3, header=124, masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000)),
        "abgr_v4": bmp(rows(lambda y: b"".join(bytes((alpha(x, y), px(x, y)[2], px(x, y)[1], px(x, y)[0])) for x in range(w)), 32), 32, 3, header=108, masks=(0xFF000000, 0xFF0000, 0xFF00, 0xFF)),
        "rgba_v4": bmp(rows(lambda y: b"".join(bytes(px(x, y) + (alpha(x, y),)) for x in range(w)), 32), 32, 3, header=108, masks=(0xFF, 0xFF00, 0xFF0000, 0xFF000000)),
        "xbgr_v4": bmp(rows(lambda y: b"".join(bytes((1, px(x, y)[2], px(x, y)[1], px(x, y)[0])) for x in range(w)), 32), 32, 3, header=108, masks=(0xFF000000, 0xFF0000, 0xFF00, 0)),
        "zero_masks_v4": bmp(rows(lambda y: b"".join(bytes((px(x, y)[2], px(x, y)[1], px(x, y)[0], alpha(x, y))) for x in range(w)), 32), 32, 3, header=108, masks=(0, 0, 0, 0)),
        "rgb24_topdown": bmp(rows(lambda y: b"".join(bytes(px(x, y)[::-1]) for x in range(w)), 24, topdown=True), 24, topdown=True),
        "os2_pal8": bmp(rows(lambda y: bytes((x * 7 + y * 3) % 16 for x in range(w)), 8), 8, header=12, palette=pal(256, 3)),
        "pal8_gap": bmp(rows(lambda y: bytes((x + y) % 16 for x in range(w)), 8), 8, palette=pal(16), colors=16, gap=6),
        "pal8_short": bmp(rows(lambda y: bytes((x + 2 * y) % 10 for x in range(w)), 8), 8, palette=pal(4), colors=4),
        "pal4": bmp(rows(lambda y: bytes(((2 * i + y) % 16) << 4 | ((2 * i + 1 + y) % 16) for i in range((w + 1) // 2)), 4), 4, palette=pal(16), colors=16),
        # No pixel offset (0): PIL reads the pixels where the headers and
        # the palette end.
        "offset0_rgb24": bmp(rows(lambda y: b"".join(bytes(px(x, y)[::-1]) for x in range(w)), 24), 24, offset0=True),
        "offset0_pal8": bmp(rows(lambda y: bytes((x + y) % 16 for x in range(w)), 8), 8, palette=pal(16), colors=16, offset0=True),
        "pal1": bmp(rows(lambda y: bytes((0b10110010 ^ (y * 37)) & 0xFF for _ in range(1)), 1), 1, palette=pal(2), colors=2),
    }
    # RLE8: a run, an absolute run of 3 (odd: a pad byte follows), the end
    # of the line; a run past the row's end (cut); a short row ended early;
    # runs; the end of the bitmap. RLE4: runs of two colours, absolute
    # runs of even length. (PIL 9.4 reads a delta's offsets from the two
    # bytes after them, and an RLE4 absolute run of odd length one byte
    # short, losing its place in the data: the tests check those against
    # the specification instead.)
    rle8 = (bytes((2, 5, 0, 3, 7, 8, 9, 0, 2, 1, 0, 0)) + bytes((9, 4, 0, 0)) + bytes((3, 6, 0, 0)) + bytes((5, 2, 2, 3, 0, 0))
            + bytes((7, 11, 0, 1)))
    rle4 = (bytes((3, 0x12, 0, 4, 0x34, 0x56, 0, 0)) + bytes((0, 6, 0x67, 0x89, 0xAB, 0, 0, 0)) + bytes((7, 0xCD, 0, 0))
            + bytes((3, 0xEF, 0, 4, 0x12, 0x34, 0, 0)) + bytes((6, 0x55, 1, 0x66, 0, 1)))
    cases["rle8"] = bmp(rle8, 8, 1, palette=pal(16), colors=16)
    cases["rle4"] = bmp(rle4, 4, 2, palette=pal(16), colors=16)
    for name, b in cases.items():
        path = os.path.join(out, name + ".bmp")
        open(path, "wb").write(b)
        Image.open(path).convert("RGB").save(os.path.join(out, name + ".png"))
    # What PIL writes: 1-bit, 8-bit grey and paletted, 24-bit.
    photo_ = noise(w, h, 6)
    for mode in ("1", "L", "P", "RGB"):
        im = photo_.convert(mode) if mode != "P" else photo_.quantize(12)
        path = os.path.join(out, "pil_%s.bmp" % mode)
        im.save(path)
        Image.open(path).convert("RGB").save(os.path.join(out, "pil_%s.png" % mode))
    bad = {
        "header52": bmp(rows(row16(p555), 16), 16, header=52),
        "jpeg_compression": bmp(b"\xff\xd8", 24, 4),
        "bitfields_444": bmp(rows(row16(p555), 16), 16, 3, masks=(0xF00, 0xF0, 0xF)),
        # RLE data that ends, or says it ends, before the image is filled.
        "rle8_truncated": bmp(rle8[:9], 8, 1, palette=pal(16), colors=16),
        "rle8_early_end": bmp(bytes((7, 3, 0, 1)), 8, 1, palette=pal(16), colors=16),
        "truncated": bmp(rows(lambda y: b"".join(bytes(px(x, y)[::-1]) for x in range(w)), 24)[:40], 24),
    }
    write_refused(out, bad, ".bmp")


def torchvision_fixtures():
    import math

    import torch
    import torchvision.transforms as T
    import torchvision.transforms.functional as F

    out = os.path.join(HERE, "torchvision")
    os.makedirs(out, exist_ok=True)
    src = os.path.join(HERE, "resize")
    cases = {"eval": [], "resized_crop": [], "random_crop_stats": []}
    for name in ["chelsea", "astronaut", "camera"]:
        im = Image.open(os.path.join(src, name + ".png"))
        im.load()
        for size in [32, 57, 112]:
            resize = size * 8 // 7  # timm's floor(size / 0.875)
            t = T.Compose([T.Resize(resize), T.CenterCrop(size)])
            dst = "eval_%s_%d.png" % (name, size)
            t(im).save(os.path.join(out, dst))
            cases["eval"].append({"input": name + ".png", "output": dst, "size": size, "resize": resize})
        for top, left, h, w, size in [(10, 20, 50, 70, 32), (0, 0, im.height, im.width, 48), (33, 5, 17, 23, 40)]:
            dst = "crop_%s_%d_%d_%d_%d_%d.png" % (name, top, left, h, w, size)
            F.resized_crop(im, top, left, h, w, [size, size]).save(os.path.join(out, dst))
            cases["resized_crop"].append({"input": name + ".png", "output": dst, "top": top, "left": left,
                                          "height": h, "width": w, "size": size})
    torch.manual_seed(0)
    draws = 200000
    for h, w in [(100, 100), (120, 480), (400, 90), (47, 61), (10, 1000)]:
        img = Image.new("L", (w, h))
        fracs, logs, fallback = [], [], 0
        for _ in range(draws):
            i, j, ch, cw = T.RandomResizedCrop.get_params(img, [0.08, 1.0], [3.0 / 4.0, 4.0 / 3.0])
            fracs.append(ch * cw / (h * w))
            logs.append(math.log(cw / ch))
        def ms(v):
            m = sum(v) / len(v)
            return m, math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
        fm, fs = ms(fracs)
        lm, ls = ms(logs)
        cases["random_crop_stats"].append({"height": h, "width": w, "draws": draws,
                                           "area_mean": fm, "area_sd": fs, "log_ratio_mean": lm, "log_ratio_sd": ls})
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    resize_fixtures()
    webp_fixtures()
    exif_fixtures()
    cmyk_fixture()
    alpha_fixtures()
    jpeg_fixtures()
    unsupported_fixtures()
    short_palette_fixtures()
    pnm_fixtures()
    tiff_fixtures()
    tiff16_fixtures()
    bmp_fixtures()
    torchvision_fixtures()
