"""A plain safetensors reader and writer for the preset tests, written
from the format's description (8-byte little-endian header length, a JSON
header, raw little-endian tensors) and independent of libich's own code,
so that torchvision's state_dicts reach libich, and libich's files reach
torchvision, through a second implementation of the format."""
import json
import struct

import numpy as np

_NAMES = {np.dtype("<f4"): "F32", np.dtype("<i8"): "I64"}
_DTYPES = {"F32": "<f4", "I64": "<i8"}


def write_safetensors(path, tensors):
    """tensors: {name: array (float32 or int64; 0-d kept 0-d)}."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.array(tensors[name], order="C")
        a = a.astype(a.dtype.newbyteorder("<"))
        blob = a.tobytes()
        header[name] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    """{name: array} of every tensor (the metadata left out)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    data = raw[8 + n:]
    out = {}
    for name, entry in header.items():
        begin, stop = entry["data_offsets"]
        out[name] = np.frombuffer(data[begin:stop], _DTYPES[entry["dtype"]]).reshape(
            entry["shape"]).copy()
    return out
