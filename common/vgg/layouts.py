"""The two Caffe VGG networks and the key layouts each method loads them in (pure NumPy).

Caffe conv weights are (out, in, kh, kw) and InnerProduct weights (out, in) (legacy 4-D blobs
(1, 1, out, in)); fc6 flattens pool5 as C,H,W like PyTorch, so weights copy as they are.
Inputs follow Caffe: BGR, 0-255, per-channel mean subtracted, no std.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.errors import InputError


@dataclass(frozen=True)
class VGGArch:
    name: str
    blocks: tuple[int, ...]  # convolutions per block
    num_classes: int
    mean_bgr: tuple[float, float, float]
    source: str
    widths: tuple[int, ...] = (64, 128, 256, 512, 512)  # output channels per block
    fc_width: int = 4096

    @property
    def conv_names(self) -> list[str]:
        return [f"conv{b + 1}_{i + 1}" for b, n in enumerate(self.blocks) for i in range(n)]

    @property
    def conv_indices(self) -> dict[str, int]:
        """Caffe conv name -> index in a `features` Sequential of (conv, ReLU)* + pool per block.

        This is torchvision's `features` numbering and FSTH's `conv_layers` numbering alike.
        """
        index, out = 0, {}
        for b, n in enumerate(self.blocks):
            for i in range(n):
                out[f"conv{b + 1}_{i + 1}"] = index
                index += 2
            index += 1  # max pooling
        return out

    @property
    def channels(self) -> list[int]:
        """Output channels of every convolution, in order."""
        return [self.widths[b] for b, n in enumerate(self.blocks) for _ in range(n)]


VGG19 = VGGArch("vgg19", (2, 2, 4, 4, 4), 1000, (103.939, 116.779, 123.68),
                "VGG_ILSVRC_19_layers.caffemodel (Simonyan & Zisserman, the VGG project page)")
VGGFACE = VGGArch("vggface", (2, 2, 3, 3, 3), 2622, (93.5940, 104.7624, 129.1863),
                  "VGG_FACE.caffemodel (Parkhi et al., the VGG-Face project page)")
ARCHS = {a.name: a for a in (VGG19, VGGFACE)}
FC_NAMES = ("fc6", "fc7", "fc8")
FC_INDICES = {"fc6": 0, "fc7": 3, "fc8": 6}  # Linear positions in (Linear, ReLU, Dropout)x2 + Linear


def get_arch(name: str) -> VGGArch:
    if name not in ARCHS:
        raise InputError(f"unknown VGG architecture '{name}'; choose from {', '.join(ARCHS)}")
    return ARCHS[name]


def caffe_weights(blobs: dict[str, list[np.ndarray]], arch: VGGArch, with_fc: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Caffe layer name -> (weight, bias) with checked shapes; InnerProduct weights as (out, in)."""
    out, in_ch = {}, 3
    for name, width in zip(arch.conv_names, arch.channels):
        out[name] = _pair(blobs, name, (width, in_ch, 3, 3))
        in_ch = width
    if with_fc:
        fc = arch.fc_width
        for name, shape in zip(FC_NAMES, [(fc, arch.widths[-1] * 7 * 7), (fc, fc), (arch.num_classes, fc)]):
            out[name] = _pair(blobs, name, shape)
    return out


def _pair(blobs, name, shape):
    if name not in blobs:
        raise InputError(f"the caffemodel has no layer '{name}'; is it the right network?")
    weight, bias = blobs[name][:2]
    if weight.size != int(np.prod(shape)) or bias.size != shape[0]:
        raise InputError(f"layer '{name}' holds {weight.shape} weights, expected {shape}")
    return weight.reshape(shape), bias.reshape(shape[0])


def torch_layout(weights: dict[str, tuple[np.ndarray, np.ndarray]], arch: VGGArch,
                 features: str = "features", classifier: str = "classifier") -> dict[str, np.ndarray]:
    """Keys `<features>.<i>.weight|bias` (+ `<classifier>.{0,3,6}.*` when fc layers are given).

    features='features', classifier='classifier' is torchvision's layout (FSRT);
    features='conv_layers', classifier='linear_layers' is what FSTH's VGGNetwork loads.
    """
    out = {}
    for name, index in arch.conv_indices.items():
        out[f"{features}.{index}.weight"], out[f"{features}.{index}.bias"] = weights[name]
    for name in FC_NAMES:
        if name in weights:
            index = FC_INDICES[name]
            out[f"{classifier}.{index}.weight"], out[f"{classifier}.{index}.bias"] = weights[name]
    return out


def keras_kernels(weights: dict[str, tuple[np.ndarray, np.ndarray]], arch: VGGArch,
                  fc_as_conv: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel, bias) per weighted layer in order, kernels (kh, kw, in, out).

    No channel or kernel flip: Keras and Caffe both cross-correlate on BGR input. With
    `fc_as_conv` the fc layers become 7x7 and 1x1 convolutions (LSR's VGG-Face model).
    """
    out = [(weights[n][0].transpose(2, 3, 1, 0), weights[n][1]) for n in arch.conv_names]
    if fc_as_conv:
        fc6 = weights["fc6"][0].reshape(arch.fc_width, arch.widths[-1], 7, 7).transpose(2, 3, 1, 0)
        out.append((fc6, weights["fc6"][1]))
        for name in ("fc7", "fc8"):
            w, b = weights[name]
            out.append((w.T.reshape(1, 1, w.shape[1], w.shape[0]), b))
    return out
