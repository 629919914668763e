"""vfa.model: the official state-dict layout and frozen layers, the motion algebra, the warping grid,
the student's double sigmoid and the generator's modes (small 32x32 networks for the forwards)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numerics import ROUNDING, assert_close
from vfa_testlib import make_rgbd_frames, manifest_entries, seeded_state, state_from_manifest

from vfa.model import Direction, Generator, StudentSynthesis, ToFlow, base_grid, relative_latent
from vfa.model.ops import Downsample, ModulatedConv2d, Upsample, upfirdn2d

SMALL = 32  # the encoder/decoder layout at 32x32: three levels (8..32 px), the same layer types


@pytest.fixture(scope="module")
def small_generator() -> Generator:
    gen = Generator(size=SMALL, distilling=True)
    gen.load_state_dict(seeded_state(gen.state_dict(), seed=3))
    return gen.eval()


@pytest.fixture(scope="module")
def small_frames() -> torch.Tensor:
    return make_rgbd_frames(3, SMALL, seed=4).float()


@pytest.mark.parametrize(("config", "distilling"), [("infer_and_distill", True), ("train_stage1", False)])
def test_state_dict_is_the_manifest(config, distilling):
    """Names, order, shapes, dtypes, param/buffer kinds and requires_grad of the official layouts
    (built as infer.py and train.py build them)."""
    gen = Generator(256, 512, 20, 1, 4, 5, distilling=distilling)
    entries = manifest_entries(config)
    state = gen.state_dict()
    params = dict(gen.named_parameters())
    assert list(state) == [entry["name"] for entry in entries]
    for entry in entries:
        name = entry["name"]
        assert list(state[name].shape) == entry["shape"], name
        assert str(state[name].dtype) == f"torch.{entry['dtype']}", name
        assert (name in params) == (entry["kind"] == "param"), name
        if name in params:
            assert params[name].requires_grad == entry["requires_grad"], name
    gen.load_state_dict(state_from_manifest(config), strict=True)


def test_initial_values_follow_the_original():
    state = Generator(size=SMALL, distilling=True).state_dict()
    modulation_biases = [key for key in state if key.endswith("modulation.bias")]
    assert len(modulation_biases) == 14  # conv1, 6 convs, 3 to_flows, 3 motion_in_depths, the student
    assert all(torch.equal(state[key], torch.ones_like(state[key])) for key in modulation_biases)
    assert torch.equal(state["enc.fc.0.bias"], torch.zeros(512))
    blur = torch.tensor([1.0, 3, 3, 1])
    blur = torch.outer(blur, blur) / 64
    assert torch.equal(state["enc.net_app.convs.1.conv2.0.kernel"], blur)
    assert torch.equal(state["dec.convs.0.conv.blur.kernel"], 4 * blur)  # after a zero-inserting upsample
    assert torch.equal(state["dec.to_rgbs.1.upsample.kernel"], 4 * blur)
    assert torch.equal(state["student_dec.down_mask.0.kernel"], blur)


def test_fir_resampling():
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    up, down = Upsample().double(), Downsample().double()
    assert up(x).shape == (2, 3, 16, 16) and down(x).shape == (2, 3, 4, 4)
    ones = torch.ones(1, 1, 8, 8, dtype=torch.float64)
    assert_close(up(ones)[..., 2:-2, 2:-2], torch.ones(1, 1, 12, 12), ROUNDING, "constant kept")
    # One channel against the definition: zero insertion, padding, correlation with the flipped kernel.
    kernel = torch.arange(16, dtype=torch.float64).reshape(4, 4)
    spread = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    spread[..., ::2, ::2] = x[:1, :1]
    reference = F.conv2d(F.pad(spread, (2, 1, 2, 1)), kernel.flip(0, 1)[None, None])
    assert_close(upfirdn2d(x[:1, :1], kernel, up=2, pad=(2, 1)), reference, ROUNDING, "upfirdn2d")
    assert_close(upfirdn2d(x, kernel, down=2, pad=(1, 1)), upfirdn2d(x, kernel, pad=(1, 1))[..., ::2, ::2], ROUNDING)


@pytest.mark.parametrize(("upsample", "demodulate"), [(False, True), (True, True), (False, False)])
def test_modulated_conv_is_per_sample(upsample, demodulate):
    """Each sample is convolved with its own modulated (and demodulated) weights; the upsampling
    variant is a stride-2 transposed convolution followed by the x4 blur."""
    conv = ModulatedConv2d(6, 5, 3, style_dim=4, demodulate=demodulate, upsample=upsample).double()
    x, style = torch.randn(2, 6, 7, 7, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    out = conv(x, style)
    for i in range(2):
        weight = conv.scale * conv.weight[0] * conv.modulation(style[i : i + 1])[0][None, :, None, None]
        if demodulate:
            weight = weight / weight.pow(2).sum([1, 2, 3], keepdim=True).add(1e-8).sqrt()
        if upsample:
            expected = conv.blur(F.conv_transpose2d(x[i : i + 1], weight.transpose(0, 1), stride=2))
        else:
            expected = F.conv2d(x[i : i + 1], weight, padding=1)
        assert_close(out[i : i + 1], expected, ROUNDING, f"sample {i}")
    assert out.shape == ((2, 5, 14, 14) if upsample else (2, 5, 7, 7))


def test_base_grid_is_float32_linspace_on_the_input():
    like = torch.zeros(1, dtype=torch.float64)
    grid = base_grid(5, 7, like)
    assert grid.shape == (1, 5, 7, 2) and grid.dtype == torch.float64
    xs = np.linspace(-1, 1, 7).astype(np.float32).astype(np.float64)
    ys = np.linspace(-1, 1, 5).astype(np.float32).astype(np.float64)
    assert np.array_equal(grid[0, 2, :, 0].numpy(), xs) and np.array_equal(grid[0, :, 3, 1].numpy(), ys)


def test_no_hard_coded_device():
    import vfa.model

    for path in Path(vfa.model.__file__).parent.glob("*.py"):
        assert ".cuda(" not in path.read_text(), path.name


def test_to_flow_warps_with_align_corners_false():
    """With zero logits the flow is the base grid and the mask 1/2."""
    head = ToFlow(8, style_dim=16).double()
    torch.nn.init.zeros_(head.conv.weight)
    x, feat = torch.randn(2, 8, 6, 6, dtype=torch.float64), torch.randn(2, 8, 6, 6, dtype=torch.float64)
    out_warp, fused, logits = head(x, torch.randn(2, 16, dtype=torch.float64), feat)
    grid = base_grid(6, 6, x).expand(2, -1, -1, -1)
    expected = F.grid_sample(feat, grid, align_corners=False) * 0.5
    assert torch.equal(logits, torch.zeros_like(logits))
    assert_close(out_warp, expected, ROUNDING, "out_warp")
    assert_close(fused, expected + 0.5 * x, ROUNDING, "fused")
    assert not torch.allclose(out_warp, F.grid_sample(feat, grid, align_corners=True) * 0.5)


def test_direction_is_the_lapack_q_of_the_dictionary():
    direction = Direction(32, 5).double()
    q = direction(None)
    assert torch.equal(q, torch.linalg.qr(direction.weight + 1e-8).Q)
    assert_close(q.T @ q, torch.eye(5), ROUNDING, "orthonormal")
    alpha = torch.randn(3, 5, dtype=torch.float64)
    assert_close(direction(alpha), alpha @ q.T, ROUNDING, "D(alpha)")  # no normalisation of alpha


def test_latent_modes(small_generator):
    gen = small_generator
    wa, drv, src, start = torch.randn(2, 512), torch.randn(2, 20), torch.randn(2, 20), torch.randn(2, 20)
    direction = gen.dec.direction
    with torch.no_grad():
        assert torch.equal(gen.latent(wa, None), wa)
        assert_close(gen.latent(wa, [drv]), wa + direction(drv), ROUNDING, "stage 1")
        relative = gen.latent(wa, [drv, src, start])
        assert torch.equal(relative, relative_latent(direction, wa, drv, src, start))
        assert_close(relative, wa + direction(drv) - direction(start) + direction(src), ROUNDING, "relative")
        assert_close(gen.latent(wa, [drv, src, drv]), wa + direction(src), ROUNDING, "start = driving")


def test_motion_mlp_is_linear(small_generator):
    fc = small_generator.enc.fc
    h1, h2 = torch.randn(2, 512), torch.randn(2, 512)
    with torch.no_grad():
        zero = fc(torch.zeros(1, 512))
        assert_close(fc(h1 + 2 * h2) - zero, (fc(h1) - zero) + 2 * (fc(h2) - zero), 1e-4, "affine map")


def test_student_damps_features_with_a_second_sigmoid(small_generator):
    student = small_generator.student_dec
    seen = {}
    hooks = [
        student.down_blocks[1].register_forward_hook(lambda m, i, o: seen.update(features=o)),
        student.res_blocks[0].register_forward_hook(lambda m, i, o: seen.update(damped=i[0])),
    ]
    source = make_rgbd_frames(1, 32, seed=5).float()
    with torch.no_grad():
        res = student(source, torch.randn(1, 3, 32, 32), torch.randn(1, 512))
        small_mask = student.down_mask[1](student.down_mask[0](res["mask"]))
    for hook in hooks:
        hook.remove()
    damping = 1 - torch.sigmoid(small_mask)  # sigmoid of the already sigmoid mask: within (0.27, 0.5)
    assert 0.26 < damping.min() and damping.max() < 0.51
    assert_close(seen["damped"], seen["features"] * damping, ROUNDING, "damped features")
    assert set(res) == {"out_warp", "mask", "out_inpaint"}


def test_student_warps_the_rgbd_source_and_keeps_rgb():
    student = StudentSynthesis(style_dim=16).double().eval()
    torch.nn.init.zeros_(student.style_conv.weight)  # zero logits: flow = base grid
    source = torch.randn(1, 4, 16, 16, dtype=torch.float64)
    res = student(source, torch.zeros(1, 3, 16, 16, dtype=torch.float64), torch.zeros(1, 16, dtype=torch.float64), True)
    assert torch.equal(res["rgb_motion_flow"], base_grid(16, 16, source))
    expected = F.grid_sample(source, base_grid(16, 16, source), align_corners=False)[:, :3]
    assert_close(res["out_warp"], expected, ROUNDING, "out_warp")


def test_generator_modes(small_generator, small_frames):
    """Inference (relative latent, teacher + student with flow), distillation (teacher + student),
    stage 1 (teacher only; also decodes wa + D(alpha_driving)) and reconstruction (wa)."""
    gen = small_generator
    source, driving, _ = small_frames.split(1)
    h_start = torch.randn(1, 20)
    stage1 = Generator(size=SMALL).eval()
    stage1.load_state_dict({k: v for k, v in gen.state_dict().items() if not k.startswith("student_dec.")})
    captured = {}
    hook = gen.enc.register_forward_hook(lambda module, inputs, output: captured.update(enc=output))
    with torch.no_grad():
        teacher, res = gen(source, driving, h_start=h_start, testing=True)
        hook.remove()
        wa, alphas, feats = captured["enc"]
        decoded = gen.dec(gen.latent(wa, alphas), feats)
        alpha_driving = gen.enc.enc_motion(driving)
        distilled_teacher, student = gen(source, driving)
        stage1_image = stage1(source, driving)
        reconstruction, extras = stage1(source, None, testing=True)

    assert teacher.shape == (1, 4, SMALL, SMALL) and torch.equal(teacher, decoded.image)
    assert torch.equal(alphas[0], alpha_driving) and torch.equal(alphas[1], gen.enc.fc(wa)) and alphas[2] is h_start
    assert set(res) == {"depth_motion_flow", "out_warp", "mask", "rgb_motion_flow", "out_inpaint"}
    assert torch.equal(res["depth_motion_flow"], teacher[:, 3:])
    assert res["rgb_motion_flow"].shape == (1, SMALL, SMALL, 2) and res["mask"].shape == (1, 1, SMALL, SMALL)
    assert res["out_warp"].shape == res["out_inpaint"].shape == (1, 3, SMALL, SMALL)
    assert set(student) == {"out_warp", "mask", "out_inpaint"}
    assert torch.equal(distilled_teacher, stage1_image)  # both decode wa + D(alpha_driving)
    assert not torch.equal(distilled_teacher, teacher)
    assert reconstruction.shape == (1, 4, SMALL, SMALL) and not torch.equal(reconstruction, stage1_image)
    assert set(extras) == {"depth_motion_flow"}


def test_rgb_layout_without_depth_branch():
    """in_channels=3 (the original constructor's default, LIA's layout): no depth heads, RGB out."""
    gen = Generator(size=32, in_channels=3).eval()
    names = list(gen.state_dict())
    assert not any(".to_depths." in n or ".motion_in_depths." in n for n in names)
    assert gen.state_dict()["dec.to_rgb1.conv.0.weight"].shape == (3, 512, 1, 1)
    with torch.no_grad():
        image = gen(torch.rand(1, 3, 32, 32) * 2 - 1, None)
    assert image.shape == (1, 3, 32, 32)


def test_channel_divisor_narrows_every_convolution_and_keeps_the_names():
    """The demo model's narrow generator: the official names in the official order, every shape the
    official one with each feature-channel axis divided (style and motion sizes are set apart)."""
    official = Generator(256, 512, 20, 1, 4, 5, distilling=True).state_dict()
    narrow = Generator(256, 512, 20, 1, 4, 5, distilling=True, channel_divisor=8).state_dict()
    assert list(narrow) == list(official)
    for name, tensor in narrow.items():
        wide = official[name].shape
        assert tensor.ndim == len(wide), name
        for size, official_size in zip(tensor.shape, wide):
            assert size in (official_size, official_size // 8), (name, tensor.shape, wide)
    assert narrow["enc.net_app.convs.0.0.weight"].shape == (8, 4, 1, 1)  # 64 channels at 256 px
    assert narrow["student_dec.res_blocks.0.conv1.weight"].shape == (16, 16, 3, 3)  # 128 in the original
    # the style-sized layers (modulations, the motion MLP) keep their size: 2.8 M parameters of 47.8 M
    assert sum(t.numel() for t in narrow.values()) < sum(t.numel() for t in official.values()) / 15


@pytest.mark.parametrize("divisor", [0, 3, 32])
def test_a_channel_divisor_that_does_not_divide_the_widths_is_refused(divisor):
    with pytest.raises(ValueError, match="channel divisor"):
        Generator(SMALL, channel_divisor=divisor)
