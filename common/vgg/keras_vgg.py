"""Keras VGG models and `.h5` weight files for LSR (imports TensorFlow).

- VGG19 without the classifier: `tf.keras.applications.VGG19(include_top=False, weights=<h5>)`
  loads what `write_vgg19_notop` writes (Keras' own download fails offline, and its cache
  checks an md5 that a converted file cannot match).
- VGG-Face as LSR's `losses/vgg_face_loss.py` builds it (`VGGFaceModel`); `load_weights`
  matches its 16 weighted layers by order, so `write_vggface` saves from that same model.
"""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow as tf

from common.checkpoint import require_file
from common.vgg.convert import Weights, keras_weights
from common.vgg.layouts import VGG19, VGGFACE, VGGArch

# Positions in VGGFaceModel's feature maps: relu1_1 ... relu5_1, and the fc8 logits.
VGGFACE_RECON_INDICES = (1, 6, 11, 18, 25)
VGGFACE_LOGITS_INDEX = -2


def vggface_layers(arch: VGGArch = VGGFACE) -> list[tf.keras.layers.Layer]:
    """Zero padding + valid 3x3 conv (ReLU) per Caffe conv, max pool per block, fc6-fc8 as
    7x7/1x1/1x1 convolutions, flatten, softmax; the dropouts left out, as LSR does."""
    layers, widths = [], iter(arch.channels)
    for count in arch.blocks:
        for _ in range(count):
            layers += [
                tf.keras.layers.ZeroPadding2D((1, 1)),
                tf.keras.layers.Conv2D(next(widths), (3, 3), activation="relu"),
            ]
        layers.append(tf.keras.layers.MaxPooling2D((2, 2), strides=(2, 2)))
    layers += [
        tf.keras.layers.Conv2D(arch.fc_width, (7, 7), activation="relu"),
        tf.keras.layers.Conv2D(arch.fc_width, (1, 1), activation="relu"),
        tf.keras.layers.Conv2D(arch.num_classes, (1, 1)),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Activation("softmax"),
    ]
    return layers


class VGGFaceModel(tf.keras.Model):
    """LSR's VGG-Face: `call` returns (probabilities, every layer's output) on 224x224 BGR input."""

    def __init__(
        self, pretrained_weights_path: str | os.PathLike | None = None, trainable: bool = False, arch: VGGArch = VGGFACE
    ):
        super().__init__(name="vgg_face")
        self.pretrained_weights_path = pretrained_weights_path
        self.net_layers = vggface_layers(arch)
        self.trainable = trainable

    def load_pretrained_weights(self, input_shape) -> None:
        path = require_file(
            self.pretrained_weights_path,
            "VGG-Face weights",
            f"download {VGGFACE.source} and run `python -m tools.convert_vgg --caffemodel "
            f"<that file> --arch vggface --format keras --out <weights file>`",
        )
        if not self.built:
            self.build(input_shape)
        self.load_weights(str(path))

    def call(self, x, training=False):
        maps = []
        for layer in self.net_layers:
            x = layer(x)
            maps.append(x)
        return x, maps


def _set_and_save(model: tf.keras.Model, layers, kernels, path: str | os.PathLike) -> Path:
    """Set the weighted `layers` in order, then save an h5 atomically (temp file + rename)."""
    weighted = [layer for layer in layers if layer.weights]
    for layer, weights in zip(weighted, kernels, strict=True):
        layer.set_weights(list(weights))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.h5")  # h5py creates it with the usual mode
    try:
        model.save_weights(str(tmp), save_format="h5")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_vgg19_notop(weights: Weights, path: str | os.PathLike) -> Path:
    """Weights file for `tf.keras.applications.VGG19(include_top=False)` from VGG19 Caffe weights."""
    model = tf.keras.applications.VGG19(weights=None, include_top=False)
    return _set_and_save(model, model.layers, keras_weights(weights, VGG19, fc_as_conv=False), path)


def write_vggface(weights: Weights, path: str | os.PathLike, arch: VGGArch = VGGFACE) -> Path:
    """Weights file for LSR's `VGGFaceModel` from VGG-Face Caffe weights (fc6-fc8 included)."""
    model = VGGFaceModel(arch=arch)
    model.build((None, 224, 224, 3))
    return _set_and_save(model, model.net_layers, keras_weights(weights, arch, fc_as_conv=True), path)
