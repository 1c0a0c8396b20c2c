#!/usr/bin/env python3
"""Reads and writes safetensors files with the Python standard library only
(struct + json), from the format's published layout: an 8-byte
little-endian unsigned header length N, N bytes of UTF-8 JSON, then the raw
little-endian data; the header maps each tensor name to dtype, shape and
data_offsets relative to the data section, plus "__metadata__".

  st_py.py check FILE   FILE must hold exactly the tensors and metadata of
                        expected() below, bit for bit (test_safetensors.c
                        writes it with spdl_st_write)
  st_py.py write FILE   writes expected() plus an F32 tensor the way another
                        implementation might: keys sorted, non-ASCII as \\u
                        escapes, data in another order than the header

expected() must match py_tensors() in test_safetensors.c.
"""
import json
import struct
import sys


def expected():
    tensors = {
        "w": ([3, 4], [(i - 5) / 8.0 for i in range(12)]),
        "b": ([4], [i / 3.0 for i in range(4)]),
        "s": ([], [-0.0]),
        "extremes": ([2, 2], [5e-324, 1.7976931348623157e308, -2.2250738585072014e-308, 0.1]),
        "\u00fcn\u00ef/\u540d": ([1, 1, 1, 2], [2.5, -1e-300]),
        'q"uote\\': ([0], []),
    }
    meta = {
        "model": "spirals",
        "source_hash": "0123abcdef",
        "optimizer": "adam",
        "note": 'line1\nline2\t"q" \\ \u00e9 \U0001F600 \x01 end',
    }
    return tensors, meta


def f64(values):
    return struct.pack("<%dd" % len(values), *values)


def fail(msg):
    print("st_py.py: " + msg, file=sys.stderr)
    sys.exit(1)


def check(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        fail("header length %d runs past the file (%d bytes)" % (n, len(raw)))
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    tensors, meta = expected()
    got_meta = header.pop("__metadata__", None)
    if got_meta != meta:
        fail("metadata %r != %r" % (got_meta, meta))
    if set(header) != set(tensors):
        fail("tensor names %r != %r" % (sorted(header), sorted(tensors)))
    spans = []
    for name, (shape, values) in tensors.items():
        h = header[name]
        if h["dtype"] != "F64":
            fail("%r: dtype %r" % (name, h["dtype"]))
        if h["shape"] != shape:
            fail("%r: shape %r != %r" % (name, h["shape"], shape))
        begin, end = h["data_offsets"]
        got = data[begin:end]
        if len(got) != 8 * len(values) or got != f64(values):
            fail("%r: values %r != %r" % (name, struct.unpack("<%dd" % (len(got) // 8), got), values))
        spans.append((begin, end))
    at = 0
    for begin, end in sorted(spans):
        if begin != at:
            fail("data section not tiled at byte %d" % at)
        at = end
    if at != len(data):
        fail("%d stray bytes after the tensors" % (len(data) - at))
    if (8 + n) % 8:
        fail("data section starts at %d, not a multiple of 8" % (8 + n))


def write(path):
    tensors, meta = expected()
    tensors["f32"] = ([3], [0.5, -2.25, 1024.0])
    header = {"__metadata__": meta}
    blobs, off = [], 0
    for name in sorted(tensors, reverse=True):
        shape, values = tensors[name]
        if name == "f32":
            blob, dtype = struct.pack("<%df" % len(values), *values), "F32"
        else:
            blob, dtype = f64(values), "F64"
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(header, sort_keys=True).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("check", "write"):
        fail("usage: st_py.py check|write FILE")
    (check if sys.argv[1] == "check" else write)(sys.argv[2])
