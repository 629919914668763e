"""common.vgg torch side: the caffemodel reader, the converters and the perceptual loss."""

import json

import numpy as np
import pytest
import torch
from numerics import ROUNDING, assert_close
from synthetic_caffe import encode_caffemodel, random_vgg_layers

from common.checkpoint import save_checkpoint
from common.errors import InputError
from common.vgg.caffemodel import read_caffemodel
from common.vgg.convert import caffe_weights, keras_weights, metadata, torch_state, write_metadata
from common.vgg.layouts import VGG19, VGGFACE, VGGArch
from common.vgg.torch_vgg import PerceptualLoss, VGGFeatures, layer_names, load_vgg, save_state_dict


def write(tmp_path, layers, name="net.caffemodel", **kwargs):
    path = tmp_path / name
    path.write_bytes(encode_caffemodel(layers, **kwargs))
    return path


@pytest.mark.parametrize("v1", [True, False], ids=["V1", "new"])
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "unpacked"])
def test_reader_returns_exactly_what_was_written(tmp_path, tiny_vgg, v1, packed):
    layers = random_vgg_layers(tiny_vgg)
    layers.insert(1, ("relu1_1", []))  # layers without blobs are left out
    blobs = read_caffemodel(write(tmp_path, layers, v1=v1, packed=packed))
    assert list(blobs) == [name for name, arrays in layers if arrays]
    for name, arrays in layers[2:]:
        assert len(blobs[name]) == 2
        for got, want in zip(blobs[name], arrays):
            if v1:  # V1 files store legacy 4-D shapes: (1, 1, out, in) and (1, 1, 1, out)
                want = want.reshape((1,) * (4 - want.ndim) + want.shape)
            assert got.dtype == np.float32 and got.flags.c_contiguous and np.array_equal(got, want)


def test_reader_errors_are_one_line_and_name_the_file(tmp_path, tiny_vgg):
    data = encode_caffemodel(random_vgg_layers(tiny_vgg, with_fc=False))
    last_layer = data.rindex(b"conv5_3")
    for n, cut in enumerate((len(data) - 1, len(data) - 50, last_layer)):
        path = tmp_path / f"cut{n}.caffemodel"
        path.write_bytes(data[:cut])
        with pytest.raises(InputError, match=f"cut{n}.caffemodel: truncated or corrupt caffemodel$"):
            read_caffemodel(path)

    # a blob whose shape disagrees with its data (8 floats, shape (2, 5))
    good = encode_caffemodel([("conv1_1", [np.zeros((2, 4), np.float32)])], v1=False)
    shape = bytes([0x3A, 4, 0x0A, 2, 2, 4])
    assert good.count(shape) == 1
    (tmp_path / "bad.caffemodel").write_bytes(good.replace(shape, shape[:-1] + b"\x05"))
    with pytest.raises(InputError, match="bad.caffemodel: truncated or corrupt"):
        read_caffemodel(tmp_path / "bad.caffemodel")

    # NetParameter.layers[0] holding a nested V0 layer (V1LayerParameter.layer = 1)
    v0_layer = b"\x0a\x05conv1"
    (tmp_path / "old.caffemodel").write_bytes(b"\x12\x09\x0a\x07" + v0_layer)
    with pytest.raises(InputError, match="old.caffemodel: V0 .*upgrade_net_proto_binary"):
        read_caffemodel(tmp_path / "old.caffemodel")

    with pytest.raises(InputError, match="none.caffemodel: caffemodel not found"):
        read_caffemodel(tmp_path / "none.caffemodel")
    (tmp_path / "empty.caffemodel").write_bytes(b"")
    with pytest.raises(InputError, match="empty.caffemodel: empty file"):
        read_caffemodel(tmp_path / "empty.caffemodel")
    (tmp_path / "deploy.prototxt").write_text('name: "VGG_ILSVRC_19_layers"\n')
    with pytest.raises(InputError, match="deploy.prototxt: truncated or corrupt"):
        read_caffemodel(tmp_path / "deploy.prototxt")


def full_size_blobs(arch):
    """Zero-stride placeholders with the official V1 blob shapes: full-size layouts, no memory."""
    blobs, in_ch = {}, 3
    for name, width in zip(arch.conv_names, arch.channels):
        blobs[name] = [
            np.broadcast_to(np.float32(0), (width, in_ch, 3, 3)),
            np.broadcast_to(np.float32(0), (1, 1, 1, width)),
        ]
        in_ch = width
    for name, (out, inp) in arch.fc_shapes.items():
        blobs[name] = [np.broadcast_to(np.float32(0), (1, 1, out, inp)), np.broadcast_to(np.float32(0), (1, 1, 1, out))]
    return blobs


@pytest.mark.parametrize(
    "arch, convs, linear_in, classes, numel",
    [
        (VGG19, (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34), 25088, 1000, 143_667_240),
        (VGGFACE, (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28), 25088, 2622, 145_002_878),
    ],
)
def test_full_size_layouts_have_the_official_keys_and_shapes(arch, convs, linear_in, classes, numel):
    weights = caffe_weights(full_size_blobs(arch), arch)
    fsth = torch_state(weights, arch, "fsth")  # what FSTH's VGGNetwork loads strictly
    assert list(fsth) == [f"conv_layers.{i}.{p}" for i in convs for p in ("weight", "bias")] + [
        f"linear_layers.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")
    ]
    assert sum(v.size for v in fsth.values()) == numel
    assert fsth["linear_layers.0.weight"].shape == (4096, linear_in) and fsth["linear_layers.6.bias"].shape == (
        classes,
    )
    tv = torch_state(weights, arch)
    assert list(tv) == [k.replace("conv_layers", "features").replace("linear_layers", "classifier") for k in fsth]
    kernels = keras_weights(weights, arch, fc_as_conv=True)
    assert len(kernels) == len(convs) + 3
    assert kernels[0][0].shape == (3, 3, 3, 64) and kernels[-4][0].shape == (3, 3, 512, 512)
    assert [k.shape for k, _ in kernels[-3:]] == [(7, 7, 512, 4096), (1, 1, 4096, 4096), (1, 1, 4096, classes)]


def test_converters_move_every_value_where_it_belongs(tiny_vgg, tmp_path):
    layers = dict(random_vgg_layers(tiny_vgg))
    weights = caffe_weights(layers, tiny_vgg)
    tv, fsth = torch_state(weights, tiny_vgg), torch_state(weights, tiny_vgg, "fsth")
    assert np.array_equal(tv["features.17.weight"], layers["conv4_1"][0])  # blobs copy as they are
    assert np.array_equal(fsth["conv_layers.28.bias"], layers["conv5_3"][1])
    assert np.array_equal(fsth["linear_layers.6.weight"], layers["fc8"][0])
    assert np.array_equal(tv["classifier.0.weight"], layers["fc6"][0])
    assert len(torch_state(caffe_weights(layers, tiny_vgg, with_fc=False), tiny_vgg)) == 2 * 13

    kernels = keras_weights(weights, tiny_vgg, fc_as_conv=True)
    w, b = layers["conv3_2"]
    assert np.array_equal(kernels[5][0], w.transpose(2, 3, 1, 0)) and np.array_equal(kernels[5][1], b)
    fc6, fc8 = layers["fc6"][0], layers["fc8"][0]
    rng = np.random.default_rng(0)
    for h, x, c, o in rng.integers(0, [7, 7, 8, 16], (20, 4)):  # Caffe flattens pool5 as C,H,W
        assert kernels[13][0][h, x, c, o] == fc6[o, c * 49 + h * 7 + x]
    assert np.array_equal(kernels[15][0][0, 0], fc8.T)
    assert len(keras_weights(weights, tiny_vgg, fc_as_conv=False)) == 13

    with pytest.raises(InputError, match="no layer 'fc6'"):
        caffe_weights({k: v for k, v in layers.items() if k != "fc6"}, tiny_vgg)
    with pytest.raises(InputError, match="layer 'conv1_1' holds .* expected"):
        caffe_weights({**layers, "conv1_1": [np.zeros((5, 3, 3, 3)), np.zeros(5)]}, tiny_vgg)

    sidecar = write_metadata(tmp_path / "w.pth", metadata(VGGFACE, "torch", "VGG_FACE.caffemodel"))
    assert sidecar.name == "w.pth.json"
    assert json.loads(sidecar.read_text())["input"] == {
        "channels": "BGR",
        "range": [0, 255],
        "mean_bgr": [93.594, 104.7624, 129.1863],
        "std": [1.0, 1.0, 1.0],
    }


def test_layer_tables_match_the_official_networks():
    assert len(VGG19.conv_names) == 16 and len(VGGFACE.conv_names) == 13
    names = layer_names(VGG19)
    assert (names["relu1_1"], names["relu5_1"], names["conv5_4"], names["pool5"]) == (1, 29, 34, 36)
    assert layer_names(VGGFACE)["conv5_1"] == 24
    model = VGGFeatures("vgg19")
    assert sum(p.numel() for p in model.parameters()) == 20_024_384  # VGG19's convolutions
    assert list(model.state_dict())[:4] == [
        "features.0.weight",
        "features.0.bias",
        "features.2.weight",
        "features.2.bias",
    ]


def test_features_apply_caffe_preprocessing(tiny_vgg):
    torch.manual_seed(0)
    model = VGGFeatures(tiny_vgg)
    rgb = torch.rand(1, 3, 16, 16)
    bgr = model.preprocess(rgb)
    # values up to 160: tolerances follow that magnitude (1.6e-3), far below a wrong mean or channel
    assert_close(bgr[0, 0], rgb[0, 2] * 255 - 93.5940, ROUNDING, "B")
    assert_close(bgr[0, 2], rgb[0, 0] * 255 - 129.1863, ROUNDING, "R")
    assert_close(model.preprocess(rgb * 2 - 1, (-1, 1)), bgr, ROUNDING, "[-1, 1] input")
    relu, conv = model(bgr, ["relu1_1", "conv1_1"])
    assert torch.equal(relu, conv.clamp(min=0))
    with pytest.raises(InputError, match="unknown VGG layer"):
        model(bgr, ["relu5_4"])


def one_conv_weights(tmp_path):
    """A one-conv VGG whose conv1_1 passes the B channel of the pixel itself: values by hand."""
    arch = VGGArch("one", (1,), 1, VGG19.mean_bgr, "test", widths=(1,))
    weight = torch.zeros(1, 3, 3, 3)
    weight[0, 0, 1, 1] = 1.0
    return arch, save_checkpoint({"features.0.weight": weight, "features.0.bias": torch.zeros(1)}, tmp_path / "one.pth")


def test_perceptual_loss_equals_a_hand_computed_value(tmp_path):
    arch, path = one_conv_weights(tmp_path)
    x = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1).expand(2, 3, 4, 4)  # RGB; B = 0.8
    y = torch.tensor([0.1, 0.1, 0.3]).view(1, 3, 1, 1).expand(2, 3, 4, 4)  # B = 0.3
    # conv1_1 = 255 B - 103.939: x -> 100.061, y -> -27.439; relu1_1: 100.061 and 0
    expected = 0.5 * 100.061 + 2.0 * 127.5
    loss = PerceptualLoss(path, arch, layers=("relu1_1", "conv1_1"), layer_weights=(0.5, 2.0))
    assert_close(loss(x, y), expected, ROUNDING, "loss")  # float32 means of 32 values in any order
    loss11 = PerceptualLoss(path, arch, layers=("relu1_1", "conv1_1"), layer_weights=(0.5, 2.0), input_range=(-1, 1))
    assert_close(loss11(x * 2 - 1, y * 2 - 1), expected, ROUNDING, "loss on [-1, 1]")


def test_perceptual_loss_matches_its_features_and_is_frozen(tmp_path, tiny_vgg):
    torch.manual_seed(0)
    reference = VGGFeatures(tiny_vgg)
    state = torch_state(
        {
            n: (reference.features[i].weight.detach().numpy(), reference.features[i].bias.detach().numpy())
            for n, i in tiny_vgg.conv_indices.items()
        },
        tiny_vgg,
        "fsth",
    )
    path = save_state_dict(state, tmp_path / "tiny_fsth.pth")  # the FSTH layout loads too
    loss = PerceptualLoss(path, tiny_vgg, layer_weights=(1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0))
    x, y = torch.rand(2, 3, 32, 32, requires_grad=True), torch.rand(2, 3, 32, 32, requires_grad=True)
    fx = reference(reference.preprocess(x), loss.layers)
    fy = reference(reference.preprocess(y), loss.layers)
    expected = sum(w * (a - b).abs().mean() for w, a, b in zip(loss.layer_weights, fx, fy))
    value = loss(x, y)
    assert_close(value, expected, ROUNDING, "loss")  # the same features, summed in another order
    value.backward()
    assert x.grad.abs().sum() > 0 and y.grad is None  # no gradient through the target
    assert all(not p.requires_grad and p.grad is None for p in loss.parameters())


def test_missing_or_wrong_weights_are_one_line_errors(tmp_path):
    with pytest.raises(
        InputError,
        match=r"vgg19.pth: VGG weights not found; download VGG_ILSVRC_19_layers.caffemodel "
        r"\(http://www.robots.ox.ac.uk/.*python -m tools.convert_vgg",
    ):
        load_vgg(tmp_path / "vgg19.pth")
    with pytest.raises(InputError, match="vgg_face_caffe.tar.gz.*--arch vggface"):
        PerceptualLoss(tmp_path / "vggface.pth", "vggface")
    bad = save_checkpoint({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(InputError, match="bad.pth: does not match VGGFeatures"):
        load_vgg(bad)
    arch, path = one_conv_weights(tmp_path)
    with pytest.raises(InputError, match="2 VGG layers but 1 layer weights"):
        PerceptualLoss(path, arch, layers=("relu1_1", "conv1_1"), layer_weights=(1.0,))
