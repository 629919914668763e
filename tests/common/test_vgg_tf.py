"""common.vgg Keras side: converted .h5 files load into the models LSR uses, same features as torch."""
import numpy as np
import pytest
import tensorflow as tf

from common.vgg.caffemodel import read_caffemodel
from common.vgg.keras_vgg import VGGFaceModel, write_vgg19_notop, write_vggface
from common.vgg.layouts import VGG19
from conftest import encode_caffemodel, random_vgg_layers


def test_vgg19_notop_h5_loads_into_keras_applications(tmp_path):
    layers = random_vgg_layers(VGG19, with_fc=False)
    path = tmp_path / "vgg19.caffemodel"
    path.write_bytes(encode_caffemodel(layers))
    write_vgg19_notop(read_caffemodel(path), tmp_path / "vgg19_notop.h5")
    model = tf.keras.applications.VGG19(include_top=False, weights=str(tmp_path / "vgg19_notop.h5"))
    kernel, bias = model.get_layer("block3_conv2").get_weights()
    caffe_w, caffe_b = dict(layers)["conv3_2"]
    assert np.array_equal(kernel, caffe_w.transpose(2, 3, 1, 0)) and np.array_equal(bias, caffe_b)


def caffe_forward(layers, arch, bgr):
    """Reference: the Caffe network written out with plain TF ops (NHWC input, Caffe C,H,W flatten)."""
    x = tf.constant(bgr)
    weights, index = dict(layers), 0
    for count in arch.blocks:
        for _ in range(count):
            w, b = weights[arch.conv_names[index]]
            x = tf.nn.relu(tf.nn.conv2d(x, w.transpose(2, 3, 1, 0), 1, "SAME") + b)
            index += 1
        x = tf.nn.max_pool2d(x, 2, 2, "VALID")
    flat = tf.reshape(tf.transpose(x, (0, 3, 1, 2)), (x.shape[0], -1))  # Caffe flattens C,H,W
    for name, act in (("fc6", tf.nn.relu), ("fc7", tf.nn.relu), ("fc8", tf.identity)):
        w, b = weights[name]
        flat = act(tf.matmul(flat, w.T) + b)
    return flat.numpy()


def test_vggface_h5_loads_into_lsr_model_and_matches_caffe(tmp_path, tiny_vgg):
    layers = random_vgg_layers(tiny_vgg, seed=3)
    path = tmp_path / "face.caffemodel"
    path.write_bytes(encode_caffemodel(layers, v1=False))
    write_vggface(read_caffemodel(path), tmp_path / "vgg_face_weights.h5", arch=tiny_vgg)

    model = VGGFaceModel(arch=tiny_vgg)
    model.build((None, 224, 224, 3))
    model.load_weights(str(tmp_path / "vgg_face_weights.h5"))
    bgr = np.random.default_rng(0).normal(0, 50, (1, 224, 224, 3)).astype(np.float32)
    probs, maps = model(bgr)
    logits = maps[-2].numpy()
    assert logits.shape == (1, tiny_vgg.num_classes)
    np.testing.assert_allclose(logits, caffe_forward(layers, tiny_vgg, bgr), rtol=1e-4, atol=1e-4)
    assert [maps[i].shape[-1] for i in (1, 6, 11, 18, 25)] == [4, 6, 8, 8, 8]  # relu1_1 ... relu5_1
    assert np.allclose(probs.numpy().sum(), 1.0, atol=1e-5)


def test_keras_and_torch_conversions_give_the_same_features(tmp_path, tiny_vgg):
    """The same Caffe blobs through the Keras and the PyTorch converters give the same relu3_1."""
    torch = pytest.importorskip("torch")  # torch and TF share a process fine; only `tfrecord` clashes
    from common.vgg.layouts import caffe_weights, torch_layout
    from common.vgg.torch_vgg import VGGFeatures

    layers = random_vgg_layers(tiny_vgg, seed=5)
    path = tmp_path / "face.caffemodel"
    path.write_bytes(encode_caffemodel(layers))
    blobs = read_caffemodel(path)
    write_vggface(blobs, tmp_path / "w.h5", arch=tiny_vgg)
    keras_model = VGGFaceModel(arch=tiny_vgg)
    keras_model.build((None, 224, 224, 3))
    keras_model.load_weights(str(tmp_path / "w.h5"))
    torch_model = VGGFeatures(tiny_vgg)
    state = torch_layout(caffe_weights(blobs, tiny_vgg, with_fc=False), tiny_vgg)
    torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})

    bgr = np.random.default_rng(1).normal(0, 50, (1, 224, 224, 3)).astype(np.float32)
    from_keras = keras_model(bgr)[1][11].numpy()
    from_torch = torch_model(torch.from_numpy(bgr).permute(0, 3, 1, 2), ["relu3_1"])[0]
    np.testing.assert_allclose(from_keras, from_torch.permute(0, 2, 3, 1).detach().numpy(), rtol=1e-4, atol=1e-3)
