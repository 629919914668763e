"""common.vgg Keras side: the .h5 files load into the models LSR uses and agree with Caffe and torch."""

import json

import numpy as np
import pytest
import tensorflow as tf
import torch  # torch and TF share a process fine; only the `tfrecord` package clashes with TF
from numerics import FORWARD, ROUNDING, assert_close
from synthetic_caffe import encode_caffemodel, random_vgg_layers

from common.errors import InputError
from common.vgg import layouts
from common.vgg.caffemodel import read_caffemodel
from common.vgg.convert import caffe_weights, torch_state
from common.vgg.keras_vgg import VGGFACE_LOGITS_INDEX, VGGFACE_RECON_INDICES, VGGFaceModel, write_vgg19_notop
from common.vgg.layouts import VGG19
from common.vgg.torch_vgg import VGGFeatures
from tools.convert_vgg import convert

RECON_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def torch_features(weights, arch, bgr_nhwc, layers):
    model = VGGFeatures(arch)
    state = torch_state(weights, arch)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items() if k.startswith("features.")})
    with torch.no_grad():
        feats = model(torch.from_numpy(bgr_nhwc).permute(0, 3, 1, 2), layers)
    return [f.permute(0, 2, 3, 1).numpy() for f in feats]


def caffe_logits(weights, arch, bgr):
    """Reference: the Caffe network by hand (convs pad 1, fc6 on pool5 flattened as C,H,W)."""
    x, names = tf.constant(bgr), iter(arch.conv_names)
    for count in arch.blocks:
        for _ in range(count):
            w, b = weights[next(names)]
            x = tf.nn.relu(tf.nn.conv2d(x, w.transpose(2, 3, 1, 0), 1, "SAME") + b)
        x = tf.nn.max_pool2d(x, 2, 2, "VALID")
    flat = tf.reshape(tf.transpose(x, (0, 3, 1, 2)), (x.shape[0], -1))
    for name, act in (("fc6", tf.nn.relu), ("fc7", tf.nn.relu), ("fc8", tf.identity)):
        w, b = weights[name]
        flat = act(tf.matmul(flat, w.T) + b)
    return flat.numpy()


def test_vgg19_notop_h5_loads_into_keras_applications_and_matches_torch(tmp_path):
    layers = random_vgg_layers(VGG19, seed=1, with_fc=False)
    path = tmp_path / "VGG_ILSVRC_19_layers.caffemodel"
    path.write_bytes(encode_caffemodel(layers))
    weights = caffe_weights(read_caffemodel(path), VGG19, with_fc=False)
    write_vgg19_notop(weights, tmp_path / "vgg19_notop.h5")

    vgg = tf.keras.applications.VGG19(include_top=False, weights=str(tmp_path / "vgg19_notop.h5"))
    kernel, bias = vgg.get_layer("block3_conv2").get_weights()
    caffe_w, caffe_b = dict(layers)["conv3_2"]
    # copied, not computed: exact
    assert np.array_equal(kernel, caffe_w.transpose(2, 3, 1, 0)) and np.array_equal(bias, caffe_b)
    # LSR's VGGLoss outputs, block<b>_conv1 with their ReLU, are relu<b>_1 in Caffe's names
    names = [f"block{b}_conv1" for b in range(1, 6)]
    model = tf.keras.Model(vgg.input, [vgg.get_layer(n).output for n in names])
    bgr = np.random.default_rng(2).normal(0, 50, (1, 32, 32, 3)).astype(np.float32)
    # Keras against torch, each with its own kernels: whole-network rounding, hence FORWARD.
    torch_maps = torch_features(weights, VGG19, bgr, RECON_LAYERS)
    for name, from_keras, from_torch in zip(RECON_LAYERS, model(bgr), torch_maps, strict=True):
        assert_close(from_keras, from_torch, FORWARD, name)


def test_vggface_h5_matches_caffe_and_torch(tmp_path, tiny_vgg, monkeypatch):
    monkeypatch.setitem(layouts.ARCHS, "tiny", tiny_vgg)  # the CLI path on a small network
    layers = random_vgg_layers(tiny_vgg, seed=3)
    caffemodel = tmp_path / "VGG_FACE.caffemodel"
    caffemodel.write_bytes(encode_caffemodel(layers, v1=False))
    out = convert(caffemodel, "tiny", "keras", tmp_path / "vgg_face_weights.h5")
    assert json.loads((tmp_path / "vgg_face_weights.h5.json").read_text())["format"] == "keras"

    model = VGGFaceModel(pretrained_weights_path=out, arch=tiny_vgg)
    model.load_pretrained_weights((None, 224, 224, 3))
    bgr = np.random.default_rng(0).normal(0, 50, (2, 224, 224, 3)).astype(np.float32)
    probs, maps = model(bgr)
    weights = dict(layers)
    assert_close(maps[VGGFACE_LOGITS_INDEX], caffe_logits(weights, tiny_vgg, bgr), FORWARD, "fc8")
    assert_close(probs.numpy().sum(-1), np.ones(2), ROUNDING, "softmax sum")
    recon = [maps[i] for i in VGGFACE_RECON_INDICES]
    torch_maps = torch_features(weights, tiny_vgg, bgr, RECON_LAYERS)
    for name, from_keras, from_torch in zip(RECON_LAYERS, recon, torch_maps, strict=True):
        assert_close(from_keras, from_torch, FORWARD, name)


def test_vggface_missing_weights_is_a_one_line_error(tmp_path):
    model = VGGFaceModel(pretrained_weights_path=tmp_path / "vgg_face_weights.h5")
    with pytest.raises(InputError, match="vgg_face_weights.h5: VGG-Face weights not found.*--format keras"):
        model.load_pretrained_weights((None, 224, 224, 3))
