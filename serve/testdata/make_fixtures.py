"""Writes the image fixtures of package serve's tests with PIL (run from
this folder with /usr/bin/python3 make_fixtures.py):

  ring.png, ring.webp  the same 28x28 grey ring, PNG and lossless WebP, so a
                       test can check that the WebP decoder gives the PNG's
                       pixels (the server answers both alike).
"""
from PIL import Image

img = Image.new("L", (28, 28))
for y in range(28):
    for x in range(28):
        r2 = (x - 13.5) ** 2 + (y - 13.5) ** 2
        img.putpixel((x, y), 255 if 36 <= r2 <= 100 else (x * 7 + y * 3) % 64)
img.save("ring.png")
img.convert("RGB").save("ring.webp", lossless=True)
