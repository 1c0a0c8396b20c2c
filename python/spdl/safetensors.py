"""spdl.safetensors - the weights files of spdl programs, from NumPy.

The format (runtime/safetensors.h): an 8-byte little-endian header length N,
N bytes of JSON mapping each tensor name to {"dtype", "shape",
"data_offsets"} plus a "__metadata__" object of strings, then the raw
little-endian data. write() produces the bytes libspdl's spdl_st_write
produces for the same tensors and metadata (same key order, same escaping,
the header padded with spaces to a multiple of 8), atomically: a temporary
file in the same directory, fsync, rename, fsync of the directory. read()
validates what spdl_st_read validates and raises FormatError naming the file
and the problem.
"""
import json
import os
import stat
import tempfile

import numpy as np

MAX_RANK = 6  # libspdl's SPDL_ST_MAX_RANK: a rank-5 group-convolution kernel, one copy per layer

__all__ = ["FormatError", "read", "write"]


class FormatError(ValueError):
    """A malformed safetensors file, or one that holds something spdl cannot use."""


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _json_str(s):
    out = ['"']
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def header_bytes(tensors, metadata):
    """The padded JSON header write() puts after the length (bytes)."""
    parts = []
    if metadata:
        parts.append('"__metadata__":{' + ",".join(_json_str(k) + ":" + _json_str(v) for k, v in metadata) + "}")
    off = 0
    for name, a in tensors:
        n = 8 * a.size
        parts.append("%s:{\"dtype\":\"F64\",\"shape\":[%s],\"data_offsets\":[%d,%d]}"
                     % (_json_str(name), ",".join(str(d) for d in a.shape), off, off + n))
        off += n
    h = ("{" + ",".join(parts) + "}").encode("utf-8")
    return h + b" " * (-len(h) % 8)


def write(path, tensors, metadata=()):
    """Writes tensors (pairs name, array; float64 of rank 0 to MAX_RANK) and metadata
    (pairs of strings) to path, atomically. Nothing is written when a tensor
    holds a NaN or an infinity."""
    path = os.fspath(path)
    tensors = [(n, np.ascontiguousarray(a, dtype="<f8")) for n, a in tensors]
    metadata = list(metadata)
    seen = set()
    for name, a in tensors:
        if not isinstance(name, str) or not name:
            raise ValueError("%s: every tensor needs a non-empty name" % path)
        if name == "__metadata__" or name in seen:
            raise ValueError("%s: tensor name '%s' is reserved or given twice" % (path, name))
        seen.add(name)
        if a.ndim > MAX_RANK:
            raise ValueError("%s: tensor '%s' has rank %d (spdl writes rank 0 to %d)" % (path, name, a.ndim,
                                                                                        MAX_RANK))
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            what = "a NaN" if np.isnan(a.reshape(-1)[bad[0]]) else "an infinity"
            raise ValueError("%s: tensor '%s' holds %s at element %d; nothing written" % (path, name, what, bad[0]))
    keys = set()
    for k, v in metadata:
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError("%s: metadata keys and values are strings, not %r: %r" % (path, k, v))
        if k in keys:
            raise ValueError("%s: metadata key '%s' is given twice" % (path, k))
        keys.add(k)
    h = header_bytes(tensors, metadata)
    d = os.path.dirname(path) or "."
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode) if os.path.isfile(path) else 0o644
    except OSError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(len(h).to_bytes(8, "little"))
            f.write(h)
            for _, a in tensors:
                f.write(a.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            os.fsync(dfd)
        except OSError:
            pass
    finally:
        os.close(dfd)


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise FormatError("the key '%s' appears twice" % k)
        d[k] = v
    return d


def read(path):
    """Reads path; returns (tensors, metadata): tensors a list of pairs
    (name, float64 array) in the header's order, metadata a list of pairs of
    strings. F32 tensors are converted to float64."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise FormatError("%s: %d bytes: too short for a safetensors file (no 8-byte header length)"
                          % (path, len(data)))
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise FormatError("%s: the header length %d runs past the end of the file (%d bytes)" % (path, n, len(data)))
    try:
        head = json.loads(data[8:8 + n].decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        raise FormatError("%s: the header is not valid JSON: %s" % (path, e)) from None
    if not isinstance(head, dict):
        raise FormatError("%s: the header is not a JSON object" % path)
    body = memoryview(data)[8 + n:]
    meta = head.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise FormatError("%s: __metadata__ is not an object of strings" % path)
    tensors, spans = [], []
    for name, t in head.items():
        if not isinstance(t, dict) or set(t) - {"dtype", "shape", "data_offsets"} or len(t) != 3:
            raise FormatError("%s: tensor '%s': expected exactly dtype, shape and data_offsets" % (path, name))
        dt, shape, offs = t["dtype"], t["shape"], t["data_offsets"]
        if dt not in ("F64", "F32"):
            raise FormatError("%s: tensor '%s' has dtype %s (spdl reads F64 and F32)" % (path, name, dt))
        if (not isinstance(shape, list) or len(shape) > MAX_RANK
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
            raise FormatError("%s: tensor '%s': bad shape %r (up to %d sizes)" % (path, name, shape, MAX_RANK))
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
                or not 0 <= offs[0] <= offs[1] <= len(body)):
            raise FormatError("%s: tensor '%s': data_offsets %r outside the data section (%d bytes)"
                              % (path, name, offs, len(body)))
        size = int(np.prod(shape, dtype=np.int64)) if shape else 1
        width = 8 if dt == "F64" else 4
        if offs[1] - offs[0] != width * size:
            raise FormatError("%s: tensor '%s': %d bytes for shape %s of %s" % (path, name, offs[1] - offs[0],
                                                                                shape, dt))
        a = np.frombuffer(body[offs[0]:offs[1]], dtype="<f8" if dt == "F64" else "<f4")
        a = a.astype(np.float64).reshape(shape)
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            raise FormatError("%s: tensor '%s' holds a NaN or infinity at element %d" % (path, name, bad[0]))
        tensors.append((name, a))
        spans.append((offs[0], offs[1], name))
    spans.sort()
    end = 0
    for b, e, name in spans:
        if b < end:
            raise FormatError("%s: tensor '%s' overlaps another tensor's data" % (path, name))
        if b > end:
            raise FormatError("%s: bytes %d to %d of the data belong to no tensor" % (path, end, b))
        end = e
    if end != len(body):
        raise FormatError("%s: bytes %d to %d of the data belong to no tensor" % (path, end, len(body)))
    return tensors, list(meta.items())
