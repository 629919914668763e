"""Keras VGG models and `.h5` weight files for LSR (imports TensorFlow).

- VGG19 without the classifier: `tf.keras.applications.VGG19(include_top=False, weights=<h5>)`
  loads what `write_vgg19_notop` writes (Keras' own download fails offline and its cache
  checks an md5 that a converted file cannot match).
- VGG-Face as LSR builds it: zero padding + valid 3x3 convs, fc6/fc7/fc8 as 7x7/1x1/1x1
  convolutions, no dropout, flatten, softmax; `load_weights` matches the 16 weighted layers
  by order, so `write_vggface` saves from a model with the same layer sequence.
"""
from __future__ import annotations

import os

import tensorflow as tf

from common.vgg.layouts import VGG19, VGGFACE, VGGArch, caffe_weights, keras_kernels


def vggface_layers(arch: VGGArch = VGGFACE) -> list[tf.keras.layers.Layer]:
    """LSR's VGG-Face layer sequence; feature maps 1, 6, 11, 18, 25 are relu1_1 ... relu5_1."""
    layers, widths = [], iter(arch.channels)
    for count in arch.blocks:
        for _ in range(count):
            layers += [tf.keras.layers.ZeroPadding2D((1, 1)),
                       tf.keras.layers.Conv2D(next(widths), (3, 3), activation="relu")]
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
    """VGG-Face returning (probabilities, every intermediate map), as LSR's losses index them."""

    def __init__(self, trainable: bool = False, arch: VGGArch = VGGFACE):
        super().__init__(name="vgg_face")
        self.net_layers = vggface_layers(arch)
        self.trainable = trainable

    def call(self, x, training=False):
        maps = []
        for layer in self.net_layers:
            x = layer(x)
            maps.append(x)
        return x, maps


def _weighted(model) -> list:
    return [layer for layer in (model.net_layers if hasattr(model, "net_layers") else model.layers)
            if layer.weights]


def write_vgg19_notop(blobs: dict, path: str | os.PathLike) -> None:
    """Keras weights file for `VGG19(include_top=False)` from Caffe VGG_ILSVRC_19 blobs."""
    model = tf.keras.applications.VGG19(weights=None, include_top=False)
    kernels = keras_kernels(caffe_weights(blobs, VGG19, with_fc=False), VGG19, fc_as_conv=False)
    for layer, weights in zip(_weighted(model), kernels, strict=True):
        layer.set_weights(list(weights))
    model.save_weights(str(path), save_format="h5")


def write_vggface(blobs: dict, path: str | os.PathLike, arch: VGGArch = VGGFACE) -> None:
    """Keras weights file for LSR's `VGGFaceModel` from Caffe VGG_FACE blobs."""
    model = VGGFaceModel(arch=arch)
    model.build((None, 224, 224, 3))
    kernels = keras_kernels(caffe_weights(blobs, arch), arch, fc_as_conv=True)
    for layer, weights in zip(_weighted(model), kernels, strict=True):
        layer.set_weights(list(weights))
    model.save_weights(str(path), save_format="h5")
