"""Perceptual losses on ImageNet VGG19 and VGG-Face, with the original's Caffe preprocessing."""

from __future__ import annotations

import tensorflow as tf

from common.checkpoint import require_file
from common.vgg.keras_vgg import VGGFACE_LOGITS_INDEX, VGGFACE_RECON_INDICES, VGGFaceModel
from common.vgg.layouts import VGG19, VGGFACE

VGG19_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
VGG19_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def caffe_input(images):
    """[-1, 1] RGB -> [0, 255] -> BGR minus the ImageNet mean (Keras' 'caffe' mode).

    Both losses use this: the original feeds VGG-Face ImageNet means, not VGG-Face's own.
    """
    return tf.keras.applications.imagenet_utils.preprocess_input((images + 1.0) / 2.0 * 255.0, mode="caffe")


def _reduce_all_but_batch(x):
    return tf.reduce_mean(x, axis=list(range(1, x.shape.rank)))


class VGGLoss:
    """Weighted L1 between VGG19 activations (post-ReLU block{1..5}_conv1) of two images."""

    def __init__(self, weights_path, layers=VGG19_LAYERS, layer_weights=VGG19_LAYER_WEIGHTS):
        require_file(
            weights_path,
            "VGG19 weights",
            f"download {VGG19.source} and run `python -m tools.convert_vgg --caffemodel <that file> "
            f"--arch vgg19 --format keras --out {weights_path}` (or pass --vgg19_weights_path)",
        )
        vgg = tf.keras.applications.VGG19(include_top=False, weights=str(weights_path))
        vgg.trainable = False
        self._model = tf.keras.Model(vgg.input, [vgg.get_layer(n).output for n in layers])
        self._layer_weights = layer_weights

    def __call__(self, y_true, y_pred):
        """Per-example loss [B] of two [B, H, W, 3] images in [-1, 1]."""
        true_maps = self._model(caffe_input(y_true))
        pred_maps = self._model(caffe_input(y_pred))
        return sum(
            w * _reduce_all_but_batch(tf.abs(t - p)) for w, t, p in zip(self._layer_weights, true_maps, pred_maps)
        )


class VGGFaceLoss:
    """VGG-Face reconstruction (relu1_1..relu5_1) plus identity (fc8 logits) L1 losses.

    Like the original, the network starts with random weights; `load_pretrained_weights()`
    (training and fine-tuning) loads the converted .h5, so plain inference needs no file.
    Inputs must be 224×224: fc6 is a 7×7 convolution over pool5.
    """

    def __init__(self, weights_path, arch=VGGFACE):
        self.model = VGGFaceModel(pretrained_weights_path=weights_path, arch=arch)

    def load_pretrained_weights(self, input_shape=(None, 224, 224, 3)):
        self.model.load_pretrained_weights(input_shape)

    def __call__(self, y_true, y_pred, recon_weight, identity_weight):
        """Per-example loss [B]: recon_weight · Σ_l L1(layer l) + identity_weight · L1(fc8)."""
        _, true_maps = self.model(caffe_input(y_true))
        _, pred_maps = self.model(caffe_input(y_pred))
        terms = []
        if recon_weight:
            terms += [(recon_weight, i) for i in VGGFACE_RECON_INDICES]
        if identity_weight:
            # The original reads fc8 before flattening (index -3); the flattened logits hold
            # the same values, so the mean is the same.
            terms.append((identity_weight, VGGFACE_LOGITS_INDEX))
        return sum(w * _reduce_all_but_batch(tf.abs(true_maps[i] - pred_maps[i])) for w, i in terms)


class VGGFaceCSIM:
    """Cosine similarity of the VGG-Face fc8 logits of two images (the CSIM metric), per example."""

    def __init__(self, weights_path, arch=VGGFACE):
        self.model = VGGFaceModel(pretrained_weights_path=weights_path, arch=arch)

    def load_pretrained_weights(self, input_shape=(None, 224, 224, 3)):
        self.model.load_pretrained_weights(input_shape)

    def __call__(self, y_true, y_pred):
        _, true_maps = self.model(caffe_input(y_true))
        _, pred_maps = self.model(caffe_input(y_pred))
        return -tf.keras.losses.cosine_similarity(
            true_maps[VGGFACE_LOGITS_INDEX], pred_maps[VGGFACE_LOGITS_INDEX], axis=-1
        )
