"""Synthetic `.caffemodel` files for the VGG tests: a minimal protobuf writer, no Caffe."""


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_blob(array, legacy_shape: bool, packed: bool) -> bytes:
    """A caffe BlobProto: shape as BlobShape (7) or legacy num/channels/height/width (1-4)."""
    import numpy as np

    array = np.asarray(array, dtype="<f4")
    if legacy_shape:
        dims = (1,) * (4 - array.ndim) + array.shape
        head = b"".join(_varint(n << 3) + _varint(d) for n, d in zip((1, 2, 3, 4), dims))
    else:
        head = _field(7, _field(1, b"".join(_varint(d) for d in array.shape)))
    if packed:
        data = _field(5, array.tobytes())
    else:
        tag = _varint(5 << 3 | 5)
        data = b"".join(tag + v.tobytes() for v in array.ravel())
    return head + data


def encode_caffemodel(layers, v1: bool = True, packed: bool = True) -> bytes:
    """A NetParameter with one layer per (name, [arrays]) item; V1 (`layers`=2) or new (`layer`=100)."""
    out = _field(1, b"synthetic")
    for name, arrays in layers:
        blobs = [encode_blob(a, legacy_shape=v1, packed=packed) for a in arrays]
        if v1:
            body = _field(4, name.encode()) + _varint(5 << 3) + _varint(4) + b"".join(_field(6, b) for b in blobs)
            out += _field(2, body)
        else:
            body = _field(1, name.encode()) + _field(2, b"Convolution") + b"".join(_field(7, b) for b in blobs)
            out += _field(100, body)
    return out


def random_vgg_layers(arch, seed: int = 0, with_fc: bool = True):
    """(caffe name, [weight, bias]) for every weighted layer of `arch`, Caffe shapes, random values."""
    import numpy as np

    rng = np.random.default_rng(seed)
    layers, in_ch = [], 3
    for name, width in zip(arch.conv_names, arch.channels):
        layers.append(
            (
                name,
                [
                    rng.normal(0, 0.1, (width, in_ch, 3, 3)).astype(np.float32),
                    rng.normal(0, 0.1, width).astype(np.float32),
                ],
            )
        )
        in_ch = width
    if with_fc:
        fc = arch.fc_width
        for name, (out, inp) in zip(
            ("fc6", "fc7", "fc8"), [(fc, arch.widths[-1] * 49), (fc, fc), (arch.num_classes, fc)]
        ):
            layers.append(
                (
                    name,
                    [rng.normal(0, 0.05, (out, inp)).astype(np.float32), rng.normal(0, 0.05, out).astype(np.float32)],
                )
            )
    return layers
