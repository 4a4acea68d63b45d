"""Write the seed corpus of fuzz/run.sh: a few small valid files per parser.

Uses only Python's standard library, so that the bytes do not come from the readers under test.
Run once from the repository root: python3 fuzz/make_corpus.py
"""

import gzip
import io
import json
import os
import struct
import zipfile
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(parser, name, data):
    os.makedirs(os.path.join(ROOT, parser), exist_ok=True)
    with open(os.path.join(ROOT, parser, name), "wb") as handle:
        handle.write(data)


def idx(type_code, dims, payload):
    return struct.pack(">BBBB", 0, 0, type_code, len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + payload


def npy(descr, shape, payload, fortran=False, version=1):
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (descr, fortran, dims)
    prefix = 8 + (2 if version == 1 else 4)
    header += " " * ((64 - (prefix + len(header) + 1) % 64) % 64) + "\n"
    length = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + length + header.encode("latin1") + payload


images = bytes(range(2 * 3 * 3))
labels = bytes([0, 1])
write("idx", "images-ubyte", idx(0x08, [2, 3, 3], images))
write("idx", "labels-ubyte", idx(0x08, [2], labels))
write("idx", "images-ubyte.gz", gzip.compress(idx(0x08, [2, 3, 3], images)))
write("idx", "floats", idx(0x0D, [2, 2], struct.pack(">4f", 0.5, -1, 2, 3.25)))

write("npy", "uint8.npy", npy("|u1", [2, 3, 3], images))
write("npy", "float32.npy", npy("<f4", [2, 2], struct.pack("<4f", 0.5, -1, 2, 3.25)))
write("npy", "int64.npy", npy("<i8", [3], struct.pack("<3q", 0, 1, 9)))
write("npy", "float64-big.npy", npy(">f8", [2], struct.pack(">2d", 1.5, -2), version=2))

for method, name in [(zipfile.ZIP_STORED, "stored.npz"), (zipfile.ZIP_DEFLATED, "deflated.npz")]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        archive.writestr("x_train.npy", npy("|u1", [2, 3, 3], images))
        archive.writestr("y_train.npy", npy("<i8", [2], struct.pack("<2q", 0, 1)))
        archive.writestr("x_test.npy", npy("|u1", [1, 3, 3], images[:9]))
        archive.writestr("y_test.npy", npy("<i8", [1], struct.pack("<q", 1)))
    write("npz", name, buffer.getvalue())


def safetensors(tensors, metadata):
    header, data = {"__metadata__": metadata}, b""
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


tensors = [
    ("dense.kernel", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
    ("dense.bias", "F32", [2], struct.pack("<2f", 0, 0)),
    ("optimizer.dense.kernel.m", "F32", [2, 2], struct.pack("<4f", 0, 0, 0, 0)),
]
payload = b"".join(t[3] for t in tensors)
metadata = {
    "format": "swift-resnet-checkpoint", "format_version": "1", "architecture": "tutorial",
    "input_shape": "[1, 2, 2]", "classes": "2", "batch_norm_momentum": "0.99", "batch_norm_epsilon": "0.001",
    "batch_norm_variance": "biased", "data_crc32": "%08x" % zlib.crc32(payload),
}
write("checkpoint", "checkpoint.safetensors", safetensors(tensors, metadata))
write("checkpoint", "plain.safetensors", safetensors([("x", "I64", [2], struct.pack("<2q", 5, -5))], {}))
