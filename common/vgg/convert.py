"""Caffe VGG blobs -> the weight layouts the methods load (pure NumPy).

- `torch_state`: 'torchvision' keys `features.<i>.*` (+ `classifier.{0,3,6}.*`), what FSRT's
  torchvision VGG19 and `common.vgg.torch_vgg` load; 'fsth' keys `conv_layers.<i>.*` +
  `linear_layers.{0,3,6}.*`, what FSTH's VGGNetwork loads strictly. Blobs copy as they are:
  PyTorch and Caffe share the (out, in, kh, kw) layout and the C,H,W flattening before fc6.
- `keras_weights`: (kernel, bias) per weighted layer in order, for Keras' VGG19 without top
  and LSR's VGG-Face model (fc layers as 7x7 / 1x1 convolutions).
- `metadata`: the input convention, written next to every converted file as `<file>.json`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from common.errors import InputError
from common.vgg.layouts import VGGArch

TORCH_LAYOUTS = {"torchvision": ("features", "classifier"), "fsth": ("conv_layers", "linear_layers")}
FC_INDICES = {"fc6": 0, "fc7": 3, "fc8": 6}  # Linear positions in (Linear, ReLU, Dropout) x2 + Linear

Weights = dict[str, tuple[np.ndarray, np.ndarray]]


def caffe_weights(blobs: dict[str, list[np.ndarray]], arch: VGGArch, with_fc: bool = True) -> Weights:
    """Caffe layer name -> (weight, bias), shapes checked; InnerProduct weights as (out, in)."""
    shapes, in_ch = {}, 3
    for name, width in zip(arch.conv_names, arch.channels):
        shapes[name] = (width, in_ch, 3, 3)
        in_ch = width
    if with_fc:
        shapes.update(arch.fc_shapes)
    return {name: _pair(blobs, name, shape) for name, shape in shapes.items()}


def _pair(blobs, name, shape):
    if name not in blobs:
        raise InputError(
            f"the caffemodel has no layer '{name}'; is it the right network ({', '.join(list(blobs)[:3])}, ...)?"
        )
    if len(blobs[name]) < 2:
        raise InputError(f"layer '{name}' has no bias blob")
    weight, bias = blobs[name][:2]
    if weight.size != int(np.prod(shape)) or bias.size != shape[0]:
        raise InputError(f"layer '{name}' holds {weight.shape} weights, expected {shape}; is it the right network?")
    return weight.reshape(shape), bias.reshape(shape[0])


def torch_state(weights: Weights, arch: VGGArch, layout: str = "torchvision") -> dict[str, np.ndarray]:
    """PyTorch state dict (NumPy values) in `layout`; fc keys only when `weights` has fc6-fc8."""
    features, classifier = TORCH_LAYOUTS[layout]
    state = {}
    for name, index in arch.conv_indices.items():
        state[f"{features}.{index}.weight"], state[f"{features}.{index}.bias"] = weights[name]
    for name, index in FC_INDICES.items():
        if name in weights:
            state[f"{classifier}.{index}.weight"], state[f"{classifier}.{index}.bias"] = weights[name]
    return state


def keras_weights(weights: Weights, arch: VGGArch, fc_as_conv: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel, bias) per weighted layer in order; kernels (kh, kw, in, out).

    No channel or kernel flip: Keras and Caffe both cross-correlate, on BGR input. With
    `fc_as_conv`, fc6 becomes a 7x7 convolution over pool5 (its C,H,W columns regrouped)
    and fc7/fc8 1x1 convolutions, as in LSR's VGG-Face model.
    """
    out = [(weights[n][0].transpose(2, 3, 1, 0), weights[n][1]) for n in arch.conv_names]
    if fc_as_conv:
        fc6 = weights["fc6"][0].reshape(arch.fc_width, arch.widths[-1], 7, 7).transpose(2, 3, 1, 0)
        out.append((fc6, weights["fc6"][1]))
        for name in ("fc7", "fc8"):
            w, b = weights[name]
            out.append((w.T.reshape(1, 1, *w.T.shape), b))
    return out


def metadata(arch: VGGArch, fmt: str, caffemodel: str) -> dict:
    """What a converted file expects as input: Caffe's convention for the network it came from."""
    return {
        "arch": arch.name,
        "format": fmt,
        "caffemodel": caffemodel,
        "input": {"channels": "BGR", "range": [0, 255], "mean_bgr": list(arch.mean_bgr), "std": [1.0, 1.0, 1.0]},
    }


def write_metadata(weights_path: str | os.PathLike, meta: dict) -> Path:
    """Write `meta` as the sidecar `<weights_path>.json`."""
    sidecar = Path(f"{weights_path}.json")
    sidecar.write_text(json.dumps(meta, indent=2) + "\n")
    return sidecar
