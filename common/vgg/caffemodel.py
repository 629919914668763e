"""Read the weight blobs of a `.caffemodel` with a hand-written protobuf wire-format walker.

Only the fields that carry weights are decoded (numbers from caffe.proto):
NetParameter.layers = 2 (V1LayerParameter) / .layer = 100 (LayerParameter);
V1LayerParameter.name = 4, .blobs = 6, .layer = 1 (a nested V0 layer, unsupported);
LayerParameter.name = 1, .blobs = 7;
BlobProto num/channels/height/width = 1-4, data = 5 (float, packed or not), shape = 7
(BlobShape.dim = 1), double_data = 8.
Blob data are sliced straight out of a memory map with `np.frombuffer`, so a 550 MB file
converts in about a second without Caffe or generated protobuf classes.
"""
from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np

from common.errors import InputError

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


class _Truncated(Exception):
    pass


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise _Truncated
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _next_field(buf: memoryview, pos: int, end: int) -> tuple[int, int, object, int]:
    """(field number, wire type, value, position after the field) of the field at `pos`.

    The value is an int for varints and a (start, end) span for everything else.
    """
    key, pos = _varint(buf, pos)
    number, wire = key >> 3, key & 7
    if wire == VARINT:
        value, pos = _varint(buf, pos)
    elif wire == LENGTH:
        size, pos = _varint(buf, pos)
        value, pos = (pos, pos + size), pos + size
    elif wire in (FIXED32, FIXED64):
        width = 4 if wire == FIXED32 else 8
        value, pos = (pos, pos + width), pos + width
    else:
        raise _Truncated
    if pos > end:
        raise _Truncated
    return number, wire, value, pos


def _fields(buf: memoryview, start: int, end: int):
    pos = start
    while pos < end:
        number, wire, value, pos = _next_field(buf, pos, end)
        yield number, wire, value


def _packed_varints(buf: memoryview, span: tuple[int, int]) -> list[int]:
    values, pos = [], span[0]
    while pos < span[1]:
        value, pos = _varint(buf, pos)
        values.append(value)
    return values


def _unpacked_floats(buf: memoryview, start: int, end: int) -> tuple[np.ndarray, int]:
    """A run of non-packed `data` floats (tag byte 0x2D + 4 bytes each) from `start`, vectorised."""
    raw = np.frombuffer(buf[start:end], dtype=np.uint8)
    rows = raw[: len(raw) // 5 * 5].reshape(-1, 5)
    breaks = np.flatnonzero(rows[:, 0] != ((5 << 3) | FIXED32))
    count = int(breaks[0]) if len(breaks) else len(rows)
    return np.ascontiguousarray(rows[:count, 1:]).view("<f4").ravel(), start + 5 * count


def _dims(buf: memoryview, span: tuple[int, int]) -> list[int]:
    dims = []
    for number, wire, value in _fields(buf, *span):
        if number == 1:
            dims.extend(_packed_varints(buf, value) if wire == LENGTH else [value])
    return dims


def _blob(buf: memoryview, start: int, end: int) -> np.ndarray:
    legacy = {1: 0, 2: 0, 3: 0, 4: 0}
    dims, chunks, pos = None, [], start
    while pos < end:
        number, wire, value, after = _next_field(buf, pos, end)
        if number in legacy and wire == VARINT:
            legacy[number] = value
        elif number == 7 and wire == LENGTH:
            dims = _dims(buf, value)
        elif number == 5 and wire == LENGTH:
            chunks.append(np.frombuffer(buf[value[0]:value[1]], dtype="<f4"))
        elif number == 5 and wire == FIXED32:
            floats, after = _unpacked_floats(buf, pos, end)
            chunks.append(floats)
        elif number == 8 and wire == LENGTH:
            chunks.append(np.frombuffer(buf[value[0]:value[1]], dtype="<f8").astype(np.float32))
        pos = after
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    shape = dims if dims is not None else [legacy[i] for i in (1, 2, 3, 4)]
    if int(np.prod(shape)) != data.size:
        raise _Truncated
    return data.astype(np.float32, copy=False).reshape(shape)


def _layer(buf: memoryview, span: tuple[int, int], v1: bool) -> tuple[str, list[np.ndarray]]:
    name_field, blob_field = (4, 6) if v1 else (1, 7)
    name, blobs = "", []
    for number, wire, value in _fields(buf, *span):
        if v1 and number == 1 and wire == LENGTH:
            raise ValueError("V0")
        if number == name_field and wire == LENGTH:
            name = bytes(buf[value[0]:value[1]]).decode("utf-8", "replace")
        elif number == blob_field and wire == LENGTH:
            blobs.append(_blob(buf, *value))
    return name, blobs


def read_caffemodel(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """Layer name -> its blobs (weight, bias, ...) as float32 arrays, in file order.

    Layers without blobs (ReLU, pooling, ...) are left out.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: caffemodel not found")
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise InputError(f"{path}: empty file, not a caffemodel")
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    buf = memoryview(mapped)
    layers: dict[str, list[np.ndarray]] = {}
    try:
        for number, wire, value in _fields(buf, 0, len(buf)):
            if number in (2, 100) and wire == LENGTH:
                name, blobs = _layer(buf, value, v1=number == 2)
                if blobs:
                    layers[name] = blobs  # np.concatenate in _blob already copied out of the map
    except ValueError:
        raise InputError(f"{path}: V0 (pre-2014) caffemodel; upgrade it with Caffe's upgrade_net_proto_binary") from None
    except (_Truncated, IndexError):
        raise InputError(f"{path}: truncated or corrupt caffemodel") from None
    finally:
        buf.release()
        mapped.close()
    if not layers:
        raise InputError(f"{path}: no weight blobs found; is this a caffemodel?")
    return layers
