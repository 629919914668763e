"""Read the weight blobs of a `.caffemodel` with a hand-written protobuf wire-format walker.

Only the fields that carry weights are decoded (numbers from caffe.proto):
NetParameter.layers = 2 (V1LayerParameter) / .layer = 100 (LayerParameter);
V1LayerParameter.name = 4, .blobs = 6, .layer = 1 (a nested V0 layer: unsupported);
LayerParameter.name = 1, .blobs = 7;
BlobProto num/channels/height/width = 1-4, data = 5 (float, packed or not), shape = 7
(BlobShape.dim = 1), double_data = 8.
The message structure is walked over a memory map, and packed float data are read from the
file straight into their arrays, so a 550 MB file reads in about a second with a peak memory
about the size of the weights, and needs neither Caffe nor generated protobuf classes.
"""

from __future__ import annotations

import mmap
import os
from typing import BinaryIO

import numpy as np

from common.checkpoint import require_file
from common.errors import InputError
from common.vgg.layouts import VGG19, VGGFACE

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
_UNPACKED_DATA_TAG = (5 << 3) | FIXED32  # one byte, then 4 bytes of float


class _Corrupt(Exception):
    pass


class _V0(Exception):
    pass


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]  # IndexError past the end: truncated
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _next_field(buf: memoryview, pos: int, end: int) -> tuple[int, int, int | tuple[int, int], int]:
    """(number, wire type, value, position after) of the field at `pos`.

    The value is an int for varints and a (start, stop) byte span for everything else.
    """
    key, pos = _varint(buf, pos)
    number, wire = key >> 3, key & 7
    if wire == VARINT:
        value, pos = _varint(buf, pos)
        return number, wire, value, pos
    if wire == LENGTH:
        size, pos = _varint(buf, pos)
    elif wire in (FIXED32, FIXED64):
        size = 4 if wire == FIXED32 else 8
    else:  # groups (3, 4) do not occur in caffe.proto; anything else is garbage
        raise _Corrupt
    if pos + size > end:
        raise _Corrupt
    return number, wire, (pos, pos + size), pos + size


def _fields(buf: memoryview, start: int, end: int):
    pos = start
    while pos < end:
        number, wire, value, pos = _next_field(buf, pos, end)
        yield number, wire, value


def _read_floats(f: BinaryIO, span: tuple[int, int]) -> np.ndarray:
    """Packed little-endian float32 at `span` of the file, read into a fresh aligned array.

    Reading instead of copying from the map keeps those pages out of this process' memory.
    """
    data = np.empty((span[1] - span[0]) // 4, dtype="<f4")
    f.seek(span[0])
    if f.readinto(data) != data.nbytes or data.nbytes != span[1] - span[0]:
        raise _Corrupt
    return data


def _unpacked_run(buf: memoryview, pos: int, end: int) -> tuple[np.ndarray, int]:
    """The run of non-packed `data` floats starting at `pos`, decoded at once, and where it ends."""
    raw = np.frombuffer(buf[pos:end], dtype=np.uint8)
    rows = raw[: len(raw) // 5 * 5].reshape(-1, 5)
    other = np.flatnonzero(rows[:, 0] != _UNPACKED_DATA_TAG)
    count = int(other[0]) if len(other) else len(rows)
    return rows[:count, 1:].copy().view("<f4").ravel(), pos + 5 * count


def _shape(buf: memoryview, span: tuple[int, int]) -> list[int]:
    dims = []
    for number, wire, value in _fields(buf, *span):
        if number == 1 and wire == LENGTH:  # packed dims
            pos = value[0]
            while pos < value[1]:
                dim, pos = _varint(buf, pos)
                dims.append(dim)
        elif number == 1 and wire == VARINT:
            dims.append(value)
    return dims


def _blob(buf: memoryview, f: BinaryIO, start: int, end: int) -> np.ndarray:
    legacy, dims, chunks, pos = [0, 0, 0, 0], None, [], start
    while pos < end:
        number, wire, value, after = _next_field(buf, pos, end)
        if 1 <= number <= 4 and wire == VARINT:
            legacy[number - 1] = value
        elif number == 7 and wire == LENGTH:
            dims = _shape(buf, value)
        elif number == 5 and wire == LENGTH:
            chunks.append(_read_floats(f, value))
        elif number == 5 and wire == FIXED32:
            floats, after = _unpacked_run(buf, pos, end)
            chunks.append(floats)
        elif number == 8 and wire == LENGTH:
            chunks.append(np.frombuffer(buf[value[0] : value[1]], dtype="<f8").astype(np.float32))
        pos = after
    data = np.concatenate(chunks) if len(chunks) > 1 else (chunks[0] if chunks else np.zeros(0))
    data = data.astype(np.float32, copy=False)
    shape = dims if dims is not None else legacy
    if int(np.prod(shape)) != data.size:
        raise _Corrupt
    return data.reshape(shape)


def _layer(buf: memoryview, f: BinaryIO, span: tuple[int, int], v1: bool) -> tuple[str, list[np.ndarray]]:
    name_field, blob_field = (4, 6) if v1 else (1, 7)
    name, blobs = "", []
    for number, wire, value in _fields(buf, *span):
        if v1 and number == 1 and wire == LENGTH:
            raise _V0
        if number == name_field and wire == LENGTH:
            name = bytes(buf[value[0] : value[1]]).decode("utf-8", "replace")
        elif number == blob_field and wire == LENGTH:
            blobs.append(_blob(buf, f, *value))
    return name, blobs


def _net(buf: memoryview, f: BinaryIO) -> dict[str, list[np.ndarray]]:
    layers = {}
    for number, wire, value in _fields(buf, 0, len(buf)):
        if number in (2, 100) and wire == LENGTH:
            name, blobs = _layer(buf, f, value, v1=number == 2)
            if blobs:
                layers[name] = blobs
    return layers


def read_caffemodel(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """Layer name -> its blobs (weight, bias) as float32 arrays, in file order.

    Blob shapes are as stored: `shape.dim` when present, else the legacy 4-D
    (num, channels, height, width). Layers without blobs (ReLU, pooling, ...) are left out.
    """
    path = require_file(path, "caffemodel", f"the official files are {VGG19.source} and {VGGFACE.source}")
    problem = None
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise InputError(f"{path}: empty file, not a caffemodel")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                try:
                    layers = _net(memoryview(mapped), f)
                except (_Corrupt, IndexError):
                    problem = "truncated or corrupt caffemodel"
                except _V0:
                    problem = "V0 (pre-2014) caffemodel; upgrade it with Caffe's upgrade_net_proto_binary"
                # The parse error, whose traceback holds views into the map, is gone here,
                # so the map can close.
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if problem is None and not layers:
        problem = "no weight blobs found; is this a caffemodel?"
    if problem:
        raise InputError(f"{path}: {problem}")
    return layers
