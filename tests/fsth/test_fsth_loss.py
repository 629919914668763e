"""fsth.loss: the original's formulas and weights, checked by hand on tiny tensors."""

import pytest
import torch
import torch.nn.functional as F
from numerics import ROUNDING, assert_close

from common.errors import InputError
from common.vgg.layouts import get_arch
from common.vgg.torch_vgg import load_vgg
from fsth.config import DEFAULTS, load_config
from fsth.loss import Loss_DSC, Loss_EG_finetune, Loss_EG_meta, vgg_feature_names


def test_hinge_loss_of_D_by_hand():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 0.5])
    # relu(1 - real) = [0, .5, 2]; relu(1 + fake) = [0, 1, 1.5]; mean of sums = 5 / 3
    assert Loss_DSC(fake, real).item() == pytest.approx(5 / 3)


def test_layer_indices_map_to_the_features_the_original_reads():
    assert vgg_feature_names(get_arch("vgg19"), DEFAULTS["vgg19_layers"]) == [
        "relu1_1",
        "relu2_1",
        "relu3_1",
        "relu4_1",
        "conv5_1",
    ]
    assert vgg_feature_names(get_arch("vggface"), DEFAULTS["vggface_layers"]) == [
        "relu1_1",
        "relu2_1",
        "relu3_1",
        "relu4_1",
        "conv5_1",
    ]
    with pytest.raises(InputError, match="not convolutions"):
        vgg_feature_names(get_arch("vgg19"), (1,))


def _caffe_features(arch, path, x, indices):
    """The original's features written out longhand: BGR, x255, minus mean, conv_layers[i] outputs
    with ReLU applied to all but the deepest."""
    net = load_vgg(path, arch)
    h = x.flip(1) * 255 - torch.tensor(arch.mean_bgr).view(1, 3, 1, 1)
    out = []
    for i, module in enumerate(net.features[: max(indices) + 1]):
        h = module(h)
        if i in indices:
            out.append(h if i == max(indices) else F.relu(h))
    return out


def test_meta_loss_by_hand(tiny_config, tiny_loss, tiny_vgg_files):
    torch.manual_seed(1)
    x, x_hat = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    feats = [torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4)]
    feats_hat = [torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4)]
    score_hat = torch.tensor([0.3, -0.7])
    e_hat, w = torch.rand(2, 3, 16), torch.rand(2, 16)
    out = tiny_loss(x, x_hat, feats, feats_hat, score_hat, e_hat, w)

    sums = {}
    for name, key in (("vgg19", "vgg19_layers"), ("vggface", "vggface_layers")):
        arch, path = tiny_vgg_files[name]
        a, b = (_caffe_features(arch, path, t, tiny_config[key]) for t in (x, x_hat))
        sums[name] = sum((p - q).abs().mean() for p, q in zip(a, b))
    fm = sum((p - q).abs().mean() for p, q in zip(feats, feats_hat))
    mch = (w[:, None, :] - e_hat).abs().mean()  # W_i against every per-frame embedding
    content = 1e-2 * sums["vgg19"] + 2e-3 * sums["vggface"]
    total = content - score_hat.mean() + 10 * fm + 80 * mch
    # each loss is a mean of float32 differences, the VGG features computed in another batch
    # layout: ROUNDING of each loss's value; a weight off by a factor or a missing term is far out
    for name, got, want in (
        ("vgg19", out.vgg19, sums["vgg19"]),
        ("vggface", out.vggface, sums["vggface"]),
        ("content", out.content, content),
        ("adv", out.adv, -score_hat.mean()),
        ("fm", out.fm, fm),
        ("mch", out.mch, mch),
        ("total", out.total, total),
    ):
        assert_close(got, want, ROUNDING, name)
    ft = Loss_EG_finetune.from_config(
        tiny_config, vgg19_arch=tiny_vgg_files["vgg19"][0], vggface_arch=tiny_vgg_files["vggface"][0]
    )
    # total - 80 mch is no cancellation (80 mch is about half of total): ROUNDING of the result
    assert_close(ft(x, x_hat, feats, feats_hat, score_hat).total, total - 80 * mch, ROUNDING, "finetune total")


def test_loss_gradient_flows_to_the_fake_only_through_content(tiny_loss):
    x, x_hat = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32, requires_grad=True)
    out = tiny_loss(x, x_hat, [], [], torch.zeros(1), torch.zeros(1, 1, 16), torch.zeros(1, 16))
    out.total.backward()
    assert x_hat.grad.abs().sum() > 0


@pytest.mark.parametrize("missing", [None, "nowhere.pth"])
def test_missing_vgg_weights_point_at_the_converter(missing):
    cfg = load_config(None, vgg19_weight_file=missing, vggface_weight_file=missing)
    with pytest.raises(InputError, match=r"vgg19_weight_file.*tools.convert_vgg.*--format fsth") as err:
        Loss_EG_meta.from_config(cfg)
    assert "\n" not in str(err.value)


def test_zero_vgg_weights_need_no_weight_files(monkeypatch):
    """Both VGG terms at weight 0: built with no weight files, nothing read, both terms 0."""

    def no_read(*args, **kwargs):
        raise AssertionError("a VGG weight file was read")

    monkeypatch.setattr(torch, "load", no_read)
    monkeypatch.setattr("fsth.loss.PerceptualLoss", no_read)
    cfg = load_config(
        None, vgg19_weight_file=None, vggface_weight_file=None, vgg19_loss_weight=0.0, vggface_loss_weight=0.0
    )
    meta, ft = Loss_EG_meta.from_config(cfg), Loss_EG_finetune.from_config(cfg)
    assert meta.vgg19 is meta.vggface is ft.vgg19 is ft.vggface is None

    torch.manual_seed(2)
    x, x_hat = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    feats, feats_hat = [torch.randn(2, 4, 8, 8)], [torch.randn(2, 4, 8, 8)]
    score_hat, e_hat, w = torch.tensor([0.3, -0.7]), torch.rand(2, 3, 16), torch.rand(2, 16)
    out = meta(x, x_hat, feats, feats_hat, score_hat, e_hat, w)
    assert out.vgg19.item() == out.vggface.item() == out.content.item() == 0
    fm = (feats[0] - feats_hat[0]).abs().mean()
    mch = (w[:, None, :] - e_hat).abs().mean()
    assert_close(out.total, -score_hat.mean() + 10 * fm + 80 * mch, ROUNDING, "total")
    terms = ft(x, x_hat, feats, feats_hat, score_hat)
    assert terms.vgg19.item() == terms.vggface.item() == 0
