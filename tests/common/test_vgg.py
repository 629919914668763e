"""common.vgg: the caffemodel reader, the key layouts and the PyTorch perceptual loss."""
import numpy as np
import pytest
import torch

from common.checkpoint import save_checkpoint
from common.errors import InputError
from common.vgg.caffemodel import read_caffemodel
from common.vgg.layouts import VGG19, VGGFACE, caffe_weights, torch_layout
from common.vgg.torch_vgg import PerceptualLoss, VGGFeatures, layer_names, load_vgg
from conftest import encode_caffemodel, random_vgg_layers


@pytest.mark.parametrize("v1", [True, False])
@pytest.mark.parametrize("packed", [True, False])
def test_reader_returns_exactly_what_was_written(tmp_path, tiny_vgg, v1, packed):
    layers = random_vgg_layers(tiny_vgg)
    path = tmp_path / "net.caffemodel"
    path.write_bytes(encode_caffemodel(layers, v1=v1, packed=packed))
    blobs = read_caffemodel(path)
    assert list(blobs) == [name for name, _ in layers]
    for name, arrays in layers:
        for got, want in zip(blobs[name], arrays):
            want = want.reshape((1,) * (4 - want.ndim) + want.shape) if v1 else want
            assert got.dtype == np.float32 and np.array_equal(got, want)


def test_reader_errors_name_the_file(tmp_path, tiny_vgg):
    data = encode_caffemodel(random_vgg_layers(tiny_vgg, with_fc=False))
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.caffemodel: truncated or corrupt"):
        read_caffemodel(cut)
    with pytest.raises(InputError, match="none.caffemodel: caffemodel not found"):
        read_caffemodel(tmp_path / "none.caffemodel")
    text = tmp_path / "deploy.prototxt"
    text.write_text('name: "VGG"\n')
    with pytest.raises(InputError, match="deploy.prototxt"):
        read_caffemodel(text)


def test_layer_tables_match_the_official_networks():
    assert len(VGG19.conv_names) == 16 and len(VGGFACE.conv_names) == 13
    assert VGG19.conv_indices["conv5_4"] == 34 and VGG19.conv_indices["conv3_1"] == 10
    assert VGGFACE.conv_indices["conv4_1"] == 17 and VGGFACE.conv_indices["conv5_3"] == 28
    names = layer_names(VGG19)
    assert (names["relu1_1"], names["relu5_1"], names["pool5"]) == (1, 29, 36)
    model = VGGFeatures("vgg19")
    assert sum(p.numel() for p in model.parameters()) == 20_024_384  # VGG19 convolutions
    assert [k for k in model.state_dict()][:4] == ["features.0.weight", "features.0.bias",
                                                  "features.2.weight", "features.2.bias"]


def test_torch_layouts_copy_caffe_blobs_as_they_are(tiny_vgg):
    layers = dict(random_vgg_layers(tiny_vgg))
    weights = caffe_weights({k: v for k, v in layers.items()}, tiny_vgg)
    tv = torch_layout(weights, tiny_vgg)
    fsth = torch_layout(weights, tiny_vgg, "conv_layers", "linear_layers")
    assert np.array_equal(tv["features.17.weight"], layers["conv4_1"][0])
    assert np.array_equal(fsth["conv_layers.28.bias"], layers["conv5_3"][1])
    assert np.array_equal(fsth["linear_layers.6.weight"], layers["fc8"][0])
    assert np.array_equal(tv["classifier.0.weight"], layers["fc6"][0])
    assert len(tv) == len(fsth) == 2 * (13 + 3)
    with pytest.raises(InputError, match="no layer 'fc6'"):
        caffe_weights({k: v for k, v in layers.items() if k != "fc6"}, tiny_vgg)


def test_features_apply_caffe_preprocessing(tmp_path, tiny_vgg):
    torch.manual_seed(0)
    model = VGGFeatures(tiny_vgg)
    rgb = torch.rand(1, 3, 16, 16)
    bgr = model.preprocess(rgb)
    assert torch.allclose(bgr[0, 0], rgb[0, 2] * 255 - 93.5940, atol=1e-4)
    assert torch.allclose(bgr[0, 2], rgb[0, 0] * 255 - 129.1863, atol=1e-4)
    assert torch.allclose(model.preprocess(rgb * 2 - 1, (-1, 1)), bgr, atol=1e-4)
    conv, relu = model(bgr, ["conv1_1", "relu1_1"])
    assert torch.equal(relu, conv.clamp(min=0))


def test_perceptual_loss_equals_the_hand_computed_sum(tmp_path, tiny_vgg):
    torch.manual_seed(0)
    reference = VGGFeatures(tiny_vgg)
    path = save_checkpoint({k.replace("features.", "conv_layers."): v for k, v in reference.state_dict().items()},
                           tmp_path / "tiny.pth")  # the FSTH layout loads too
    loss = PerceptualLoss(path, tiny_vgg, layers=("relu1_1", "conv2_1"), layer_weights=(0.5, 2.0))
    x, y = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    fx = reference(reference.preprocess(x), ["relu1_1", "conv2_1"])
    fy = reference(reference.preprocess(y), ["relu1_1", "conv2_1"])
    expected = 0.5 * (fx[0] - fy[0]).abs().mean() + 2.0 * (fx[1] - fy[1]).abs().mean()
    assert torch.allclose(loss(x, y), expected, rtol=1e-5)
    x.requires_grad_(True)
    loss(x, y).backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is None for p in loss.parameters())


def test_missing_or_wrong_weights(tmp_path):
    with pytest.raises(InputError, match="tools.convert_vgg"):
        load_vgg(tmp_path / "vgg19.pth")
    bad = save_checkpoint({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(InputError, match="bad.pth: does not match VGGFeatures"):
        load_vgg(bad)
