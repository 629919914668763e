"""Our training step reproduces the original trainer's, stored in data/original_training_step.npz.

How the recording was made (run `record` below to regenerate it):

* Original: andrerochow/fsrt at b89538368f9d86a09c2f968c9bf299e953df6917, exported with
  `git archive` to /tmp/fsrt_orig (outside this repository) and run there on CPU with torch
  2.13.0+cpu by `PYTHONPATH=.:tests:tests/fsrt .venv/bin/python
  tests/fsrt/test_fsrt_training_parity.py /tmp/fsrt_orig` from the repository root. No file of it is
  edited; `record` patches at run time only what CPU/offline use needs: a stand-in `torchvision`
  module whose `models.vgg19(pretrained=True).features` is a narrow VGG19 (torchvision's layer
  layout, conv widths 8/16/16/32/32, in-place ReLUs) with our seeded weights; `init_perceptual_loss`
  without its `.cuda()`; and stubs for `srt.utils.visualize` (matplotlib, skimage) and `tqdm`.
  The original's trainer class, `compute_loss`, `train_step`, models, discriminator, image
  pyramid and `Vgg19` are used as they are.
* Networks: `fsrt_testlib.SMALL_MODEL` (small decoder, expression size 8) with a narrow frozen
  keypoint detector (block_expansion 8, max_features 64, 4 hourglass blocks) and its 11-channel
  expression encoder, the discriminator at `disc_kwargs` block_expansion 8, max_features 32, and
  the narrow VGG above; every weight from `fsrt_testlib.seeded_state` with the seeds in `SEEDS`,
  applied to each side's own modules (`record` asserts that both state dicts list the same names
  and shapes in the same order, so the same recipe gives the same tensors).
* Config: runs/vox256 (`load_config("vox256")`) with the loss weights of `config()`: distinct
  per-layer weights and mse_loss_weight 1.5, so that a weight applied to the wrong term shows.
* Inputs: `make_batch(phase)`, batch 2, two 64x64 sources, seeded; the same dict goes to both
  trainers (the datasets are bypassed; keypoints of the uncropped frames with a random
  kp_scale / kp_shift, as with simulate_out_of_frame_motion). Phase 1 renders 256 sampled pixels
  and no remaining ones; phases 2 and 3 render a random 1024 of the 4096 pixels with gradient and
  the rest without, then scatter them into the full image.
* Randomness: the step draws two things, the driving-frame coin (`rand(1)`) and the 25 % own-
  expression choice (`rand(batch)`), in the same order on both sides; nothing else random runs
  between them (dropout comes later and has p=0). The original draws from the global generator,
  seeded with `torch.manual_seed(SEEDS_STEP[phase])` right before its step; ours gets
  `FSRTTrainer(seed=SEEDS_STEP[phase])`, a CPU generator seeded alike. `record` logs the
  original's draws (`<phase>/draws`) and the test checks ours makes the same ones; the seeds were
  picked so both outcomes of each draw occur across the phases.
* Steps: phase 1 at it=0, phase 2 at it=iters_in_phase1, phase 3 at it=iters_in_phase1 +
  iters_in_phase2 + disc_warmup_iters (GAN and feature matching on), each from the same fresh
  weights. The optimisers are `torch.optim.SGD(lr=1)`, so each parameter delta is exactly minus
  its gradient: Adam's first step would be lr * g / (|g| + eps), about lr * sign(g), which hides
  every gradient magnitude and flips on rounding for near-zero gradients. Recorded: every loss
  term the original's `train_step` returns, and per network (encoder, decoder,
  expression_encoder; discriminator after its own step in phase 3) the per-tensor sums of
  |delta| and of delta over all parameters, plus the full deltas of a few small tensors (`FULL`).

One documented difference is bridged, not tested: our perceptual loss takes Caffe VGG weights
with Caffe's input convention (BGR, 0-255, mean subtracted, fsrt/README.md), the original
torchvision's (RGB in [0, 1], ImageNet mean / std). With random weights shared by both, ours is
given the original's input normalisation (`_torchvision_input`), so the loss code is compared.

Tolerance: `numerics.FORWARD` of each quantity's largest magnitude, the level of whole networks
against the original. The losses are network outputs. A gradient is a backward pass through the
same networks, whose rounding is of the same order relative to the largest gradient of the tensor;
the per-tensor sums add up many such elements, so their errors are relative to the largest sum of
|delta| (signed sums cancel, hence compared at that scale). Measured worst case over all compared
quantities: 3.2e-6 (a LayerNorm weight's gradient, ATEN_CPU_CAPABILITY=default, one thread).
Not kept: the discriminator's first conv weight, whose gradient sums 4 x 253^2 largely cancelling
products and moved by 1.3e-4 of its largest element between kernel paths (the sums of |delta|
still cover it). `test_a_perturbed_*_fails` shows that a 1 %
change of one loss weight or one weight tensor moves them far outside that tolerance.
"""

from __future__ import annotations

import copy
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fsrt_testlib import DATA, SMALL_MODEL, seeded_state
from numerics import FORWARD, mismatch

RECORDING = DATA / "original_training_step.npz"
B, S, H, W = 2, 2, 32, 32
KP_KWARGS = dict(block_expansion=8, max_features=64, num_blocks=4, scale_factor=0.5)
NARROW_DISC = dict(block_expansion=8, max_features=32)
VGG_WIDTHS = (8, 16, 16, 32, 32)
SEEDS = dict(kp_detector=1, encoder=2, decoder=3, expression_encoder=4, discriminator=6, vgg=8)
SEEDS_STEP = {1: 1, 2: 3, 3: 5}
PHASES = (1, 2, 3)
GENERATOR_PARTS = ("encoder", "decoder", "expression_encoder")
# Full deltas kept for these (small) tensors.
FULL = {
    "encoder": ("per_patch_linear.bias", "transformer.layers.0.0.norm.weight", "transformer.layers.0.1.fn.net.3.bias"),
    "decoder": ("render_mlp.4.weight", "render_mlp.4.bias"),
    "expression_encoder": ("expression_mlp.6.weight", "expression_mlp.6.bias"),
    "discriminator": ("discs.1.down_blocks.3.norm.weight", "discs.1.conv.weight"),
}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def config() -> dict:
    from fsrt.config import load_config

    cfg = load_config("vox256")
    cfg["model"] = copy.deepcopy(SMALL_MODEL)
    cfg["discriminator"]["disc_kwargs"].update(NARROW_DISC)
    cfg["training"].update(
        mse_loss_weight=1.5,
        perceptual_loss_weight=[0.01, 0.02, 0.03, 0.04, 0.05],
        generator_gan_feature_matching=[0.01, 0.02, 0.03, 0.04],
        generator_gan_loss_weight=0.002,
        discriminator_gan_loss_weight=0.003,
    )
    return cfg


def iteration(cfg: dict, phase: int) -> int:
    t = cfg["training"]
    return {1: 0, 2: t["iters_in_phase1"], 3: t["iters_in_phase1"] + t["iters_in_phase2"] + t["disc_warmup_iters"]}[
        phase
    ]


def pixel_centres() -> torch.Tensor:
    """[H, W, 2] (x, y) pixel centres in [-1, 1] (the original's idx_grids)."""
    ys, xs = torch.meshgrid((torch.arange(H) + 0.5) / H * 2 - 1, (torch.arange(W) + 0.5) / W * 2 - 1, indexing="ij")
    return torch.stack([xs, ys], -1)


def make_batch(phase: int) -> dict[str, torch.Tensor]:
    """The batch dict the trainers read, as their data loaders would build it (seeded)."""
    g = torch.Generator().manual_seed(100 + phase)

    def images(*lead):  # smooth random patterns: frames differ in their keypoints and expressions
        coarse = torch.rand(*lead, 3, 4, 4, generator=g)
        return F.interpolate(coarse.flatten(0, -4), size=(H, W), mode="bilinear").view(*lead, 3, H, W)

    data = {
        "input_images_augm": images(B, S),
        "input_images_augm2": images(B, S),
        "input_images_augm2_uncropped": images(B, S),
        "target_image_augm": images(B),
        "target_image_augm2": images(B),
        "target_image_augm2_uncropped": images(B),
        "target_image_augm3_crop": images(B),
        "kp_scale": 1 + 0.3 * torch.rand(B, 2, generator=g),
        "kp_shift": 0.4 * torch.rand(B, 2, generator=g) - 0.2,
    }
    grid = pixel_centres()
    data["input_pos"] = grid.expand(B, S, H, W, 2).clone()
    all_pos = grid.reshape(H * W, 2)
    all_pixels = data["target_image_augm"].permute(0, 2, 3, 1).reshape(B, H * W, 3)
    order = torch.stack([torch.randperm(H * W, generator=g) for _ in range(B)])
    if phase == 1:
        sampled, remaining = order[:, :128], order[:, :0]
        data["target_pixels_augm"] = torch.stack([p[i] for p, i in zip(all_pixels, sampled)])
    else:
        sampled, remaining = order[:, :256], order[:, 256:]
        data["target_pixels_augm"] = all_pixels
    data.update(
        sampled_idxs=sampled,
        remaining_idxs=remaining,
        target_pos=all_pos[sampled],
        remaining_pos=all_pos[remaining],
    )
    return data


def vgg_arch():
    from common.vgg.layouts import VGG19, VGGArch

    return VGGArch("vgg19-narrow", VGG19.blocks, 1000, VGG19.mean_bgr, "random test weights", widths=VGG_WIDTHS)


def vgg_state() -> dict[str, torch.Tensor]:
    """Seeded weights in torchvision's `features.<i>` layout (ours and the original's alike)."""
    from common.vgg.torch_vgg import VGGFeatures

    return seeded_state(VGGFeatures(vgg_arch()).state_dict(), SEEDS["vgg"])


def _torchvision_input(rgb: torch.Tensor, input_range=(0.0, 1.0)) -> torch.Tensor:
    """The original's VGG input: RGB in [0, 1] normalised with the ImageNet mean and std."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (rgb - mean) / std


def _seed(module: torch.nn.Module, name: str) -> torch.nn.Module:
    module.load_state_dict(seeded_state(module.state_dict(), SEEDS[name]))
    return module


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def summarise(name: str, before: dict, module: torch.nn.Module) -> dict[str, np.ndarray]:
    """Per-tensor sums of |delta| and of delta, and the full deltas of the FULL tensors."""
    deltas = {n: (p.detach() - before[n]).double() for n, p in module.named_parameters()}
    out = {
        f"{name}/abs_sums": np.array([float(d.abs().sum()) for d in deltas.values()]),
        f"{name}/sums": np.array([float(d.sum()) for d in deltas.values()]),
    }
    for tensor in FULL[name]:
        out[f"{name}/{tensor}"] = deltas[tensor].numpy().astype(np.float32)
    return out


def ours(phase: int, tmp: Path, perturb: str | None = None) -> dict[str, np.ndarray]:
    """Our trainer's step; `perturb` scales one loss weight ('weight') or the decoder's last
    weight tensor ('tensor') by 1.01."""
    from common.vgg.torch_vgg import PerceptualLoss, save_state_dict
    from fsrt.model import FSRT, ExpressionEncoder, KPDetector, MultiScaleDiscriminator
    from fsrt.trainer import FSRTTrainer

    cfg = config()
    if perturb == "weight":
        cfg["training"]["perceptual_loss_weight"][2] *= 1.01
        cfg["training"]["variance_loss_weight"] *= 1.01
        cfg["training"]["discriminator_gan_loss_weight"] *= 1.01
    kp = _seed(KPDetector(**KP_KWARGS), "kp_detector").eval()
    model = FSRT(
        **cfg["model"],
        expression_encoder=ExpressionEncoder(kp.predictor.out_filters, expression_size=cfg["model"]["expression_size"]),
    )
    for part in GENERATOR_PARTS:
        _seed(getattr(model, part), part)
    if perturb == "tensor":
        with torch.no_grad():
            model.decoder.render_mlp[2].weight.mul_(1.01)
    disc = _seed(
        MultiScaleDiscriminator(cfg["discriminator"]["scales"], **cfg["discriminator"]["disc_kwargs"]), "discriminator"
    )
    vgg_path = tmp / "vgg.pt"
    if not vgg_path.exists():
        save_state_dict({k: v.numpy() for k, v in vgg_state().items()}, vgg_path)
    perceptual = PerceptualLoss(vgg_path, arch=vgg_arch(), layer_weights=cfg["training"]["perceptual_loss_weight"])
    perceptual.vgg.preprocess = _torchvision_input
    trainer = FSRTTrainer(
        cfg, model.encoder, model.decoder, model.expression_encoder, kp, disc, perceptual, SEEDS_STEP[phase]
    )
    draws = torch.Generator().manual_seed(SEEDS_STEP[phase])
    out = {f"{phase}/draws": torch.cat([torch.rand(1, generator=draws), torch.rand(B, generator=draws)]).numpy()}
    before = {part: snapshot(getattr(model, part)) for part in GENERATOR_PARTS}
    before_disc = snapshot(disc)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    optimizer_disc = torch.optim.SGD(disc.parameters(), lr=1.0)
    terms = trainer.train_step(make_batch(phase), iteration(cfg, phase), optimizer, optimizer_disc)
    terms["mse"] *= cfg["training"]["mse_loss_weight"]  # the original logs the weighted MSE
    for key, value in terms.items():
        out[f"{phase}/loss/{key}"] = np.array(value)
    for part in GENERATOR_PARTS:
        out.update({f"{phase}/{k}": v for k, v in summarise(part, before[part], getattr(model, part)).items()})
    if phase == 3:
        out.update({f"{phase}/{k}": v for k, v in summarise("discriminator", before_disc, disc).items()})
    return out


def expected_keys(recording, phase: int) -> list[str]:
    return [k for k in recording.files if k.startswith(f"{phase}/") and k != f"{phase}/draws"]


@pytest.fixture(scope="module")
def recording():
    return np.load(RECORDING)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fsrt_training_parity")


@pytest.fixture(scope="module")
def computed(tmp) -> dict[int, dict[str, np.ndarray]]:
    return {phase: ours(phase, tmp) for phase in PHASES}


@pytest.mark.parametrize("phase", PHASES)
def test_same_random_draws(recording, computed, phase):
    np.testing.assert_array_equal(computed[phase][f"{phase}/draws"], recording[f"{phase}/draws"])


def test_draws_cover_both_outcomes(recording):
    draws = np.stack([recording[f"{phase}/draws"] for phase in PHASES])
    assert (draws[:, 0] < 0.5).any() and (draws[:, 0] >= 0.5).any()  # driving frame augm2 / augm
    assert (draws[:, 1:] < 0.25).any() and (draws[:, 1:] >= 0.25).any()  # own / cropped expression


@pytest.mark.parametrize("phase", PHASES)
def test_matches_the_original(recording, computed, phase):
    keys = expected_keys(recording, phase)
    terms = {k.rsplit("/", 1)[1] for k in keys if "/loss/" in k}
    assert terms == {"loss", "reg_loss", "mse"} | {
        2: {"perceptual"},
        3: {"perceptual", "gen_gan", "feature_matching", "disc_gan"},
    }.get(phase, set())
    problems = []
    for key in keys:
        expected = recording[key]
        assert np.abs(expected).max() > 0, key  # a real signal
        rel = FORWARD
        if key.endswith("/sums"):  # signed sums cancel: their rounding follows the sums of |delta|
            rel = FORWARD * recording[key.replace("/sums", "/abs_sums")].max() / np.abs(expected).max()
        problem = mismatch(computed[phase][key], expected, rel)
        if problem is not None:
            problems.append(f"{key}: {problem}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("perturb", ["weight", "tensor"])
def test_a_perturbed_weight_fails(recording, tmp, perturb):
    """Scaling three loss weights (perceptual relu3_1, variance, discriminator GAN) or one
    decoder weight tensor by 1.01 puts the affected quantities far out of the tolerance."""
    out = ours(3, tmp, perturb)
    failing = [k for k in expected_keys(recording, 3) if mismatch(out[k], recording[k], FORWARD) is not None]
    if perturb == "weight":
        for key in (
            "3/loss/loss",
            "3/loss/perceptual",
            "3/loss/reg_loss",
            "3/loss/disc_gan",
            "3/discriminator/abs_sums",
        ):
            assert key in failing, key
    else:
        for key in (
            "3/loss/loss",
            "3/loss/mse",
            "3/decoder/abs_sums",
            "3/encoder/abs_sums",
            "3/decoder/render_mlp.4.weight",
        ):
            assert key in failing, key


# --- regenerating the recording ------------------------------------------------------------------


def record(original_root: Path) -> None:  # pragma: no cover - run by hand, see the docstring
    """Run the original's trainer for the three phases and write RECORDING."""
    from fsrt.model import FSRT, ExpressionEncoder, KPDetector, MultiScaleDiscriminator

    sys.path.insert(0, str(original_root))
    state = vgg_state()

    def narrow_vgg19_features() -> torch.nn.Sequential:
        layers, width_in = [], 3
        for count, width in zip(vgg_arch().blocks, VGG_WIDTHS):
            for _ in range(count):
                layers += [torch.nn.Conv2d(width_in, width, 3, padding=1), torch.nn.ReLU(inplace=True)]
                width_in = width
            layers.append(torch.nn.MaxPool2d(kernel_size=2, stride=2))
        features = torch.nn.Sequential(*layers)
        features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()})
        return features

    fake_tv = types.ModuleType("torchvision")
    fake_tv.models = types.SimpleNamespace(
        vgg19=lambda pretrained: types.SimpleNamespace(features=narrow_vgg19_features())
    )
    sys.modules.update({"torchvision": fake_tv, "torchvision.models": fake_tv.models})
    import srt.utils.common  # noqa: F401  (the real module; `visualize` is only for images)

    sys.modules["srt.utils.visualize"] = srt.utils.visualize = types.ModuleType("srt.utils.visualize")
    if "tqdm" not in sys.modules:
        try:
            import tqdm  # noqa: F401
        except ImportError:
            sys.modules["tqdm"] = types.SimpleNamespace(tqdm=lambda x: x)

    import srt.trainer as original_trainer
    from modules.discriminator import MultiScaleDiscriminator as OrigDisc
    from modules.expression_encoder import ExpressionEncoder as OrigExpr
    from modules.keypoint_detector import KPDetector as OrigKP
    from modules.perceptual_loss import Vgg19
    from srt.model import FSRT as OrigFSRT

    original_trainer.init_perceptual_loss = lambda: Vgg19(False)  # without .cuda()

    def seed_like(orig: torch.nn.Module, ref: torch.nn.Module, name: str) -> torch.nn.Module:
        a, b = orig.state_dict(), ref.state_dict()
        assert [(k, v.shape) for k, v in a.items()] == [(k, v.shape) for k, v in b.items()], name
        orig.load_state_dict(seeded_state(a, SEEDS[name]))
        return orig

    cfg = config()
    out: dict[str, np.ndarray] = {}
    for phase in PHASES:
        kp = seed_like(OrigKP(**KP_KWARGS), KPDetector(**KP_KWARGS), "kp_detector").eval()
        expr = OrigExpr(in_channels=kp.predictor.out_filters, expression_size=cfg["model"]["expression_size"])
        model = OrigFSRT(cfg["model"], expression_encoder=expr)
        ref = FSRT(**cfg["model"], expression_encoder=ExpressionEncoder(kp.predictor.out_filters, expression_size=8))
        for part in GENERATOR_PARTS:
            seed_like(getattr(model, part), getattr(ref, part), part)
        dkw = cfg["discriminator"]["disc_kwargs"]
        disc = seed_like(
            OrigDisc(cfg["discriminator"]["scales"], **dkw),
            MultiScaleDiscriminator(cfg["discriminator"]["scales"], **dkw),
            "discriminator",
        )
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        optimizer_disc = torch.optim.SGD(disc.parameters(), lr=1.0)
        trainer = original_trainer.FSRTTrainer(model, optimizer, cfg, "cpu", "/tmp", kp, disc, optimizer_disc)
        before = {part: snapshot(getattr(model, part)) for part in GENERATOR_PARTS}
        before_disc = snapshot(disc)
        draws, rand = [], torch.rand

        def logged_rand(*args, draws=draws, rand=rand, **kwargs):
            value = rand(*args, **kwargs)
            draws.append(value.clone())
            return value

        batch = make_batch(phase)
        torch.manual_seed(SEEDS_STEP[phase])
        torch.rand = logged_rand
        try:
            loss, terms = trainer.train_step(batch, iteration(cfg, phase))
        finally:
            torch.rand = rand
        out[f"{phase}/draws"] = torch.cat(draws).numpy()
        out[f"{phase}/loss/loss"] = np.array(loss)
        for key, value in terms.items():
            out[f"{phase}/loss/{key}"] = np.array(float(value))
        for part in GENERATOR_PARTS:
            out.update({f"{phase}/{k}": v for k, v in summarise(part, before[part], getattr(model, part)).items()})
        if phase == 3:
            out.update({f"{phase}/{k}": v for k, v in summarise("discriminator", before_disc, disc).items()})
    np.savez_compressed(RECORDING, **out)
    print({k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    record(Path(sys.argv[1]))
