"""Our FSRT beside the original (andrerochow/fsrt) on one machine: `python -m fsrt.bench --original DIR`.

DIR is a checkout of the original; it is imported from there at run time, here and nowhere else,
and runs unchanged on the CPU with three run-time stand-ins: `.cuda()` of tensors and modules is
the identity, its demo's `ffmpeg` import (only for `--audio`) gets an empty module, and its
trainer's `torchvision.models.vgg19(pretrained=True)` gets a randomly initialised VGG19 (the
perceptual loss is built at construction but only runs from phase 2 on). Our state dicts load
into its networks with strict=True (same names). Both sides get the same weights and inputs and
are timed taking turns, best of `repeats` after an untimed warm-up each:

1. per-frame inference as each side's demo runs it, relative motion with --adapt_scale from
   driving frame 0 (its keypoints computed beforehand on both sides, as both demos do). The
   original: the body of its `make_animation` loop for one driving frame (keypoints and
   expression of the frame, `normalize_kp`, `forward_model` over the whole frame in chunks of
   its default --max_num_pixels 65536, clamping); its demo encodes the sources in the first
   iteration and reuses z afterwards, so the warm-up call encodes and the timed calls do not.
   Ours: what `fsrt.demo` does per batch of its default --batch_size frames at its default
   --max_num_pixels (`animate.drive_codes`, `transfer_motion`, `render`, z encoded once
   beforehand), its time divided by the batch.
2. one training step of phase 1 at batch 1 (4096 random target pixels): the original's
   `FSRTTrainer.train_step` against `fsrt.trainer.FSRTTrainer.train_step`, Adam on both sides,
   the same coin flips (the original draws from the global generator, seeded right before its
   first step with the seed our trainer gets).

Each side's first output is compared to the parity tolerance of tests/numerics.py (FORWARD of the
original's largest magnitude): the clamped frame of driving frame 1; the loss terms and, per
network, the sums of |gradient| of its tensors (`_gradient_sums`). Peak resident memory is
measured per side and stage in a fresh process that builds only that side and makes its first
call (`python -m fsrt.bench_original DIR --peak_of SIDE --stage STAGE`): for the demo that call
includes encoding the sources, on both sides.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
import types
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from common.bench import (
    BenchRow,
    Comparison,
    best_alternating,
    relative_difference,
    side_by_side_table,
    worst_difference,
)
from common.errors import InputError, cli_main
from fsrt import animate, demo
from fsrt.config import load_config
from fsrt.model import FSRT, KPDetector, pixel_grid
from fsrt.trainer import FSRTTrainer

REQUIRED_FILES = ("demo.py", "srt/model.py", "srt/trainer.py", "modules/keypoint_detector.py")
TOP_LEVEL_NAMES = ("demo", "srt", "modules")  # what the original imports as
STAND_INS = ("ffmpeg", "torchvision", "torchvision.models")
ORIGINAL_MAX_NUM_PIXELS = 65536  # its demo's --max_num_pixels default
PARTS = ("encoder", "decoder", "expression_encoder")
STEP_SEED = 1  # the training step's coin flips, on both sides
SIDES = ("ours", "original")
STAGES = ("inference", "training")


def find_original(path, device_type: str = "cpu") -> Path:
    """The checkout of andrerochow/fsrt at `path`; the side-by-side run is CPU-only."""
    if device_type != "cpu":
        raise InputError(f"--original runs on the CPU only, not on {device_type}")
    root = Path(path)
    missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
    if missing:
        raise InputError(f"--original {path}: not a checkout of andrerochow/fsrt (no {', '.join(missing)})")
    return root.resolve()


def _torchvision_stand_in() -> types.ModuleType:
    """`torchvision.models.vgg19(...).features`, randomly initialised (torchvision's layer layout)."""
    from common.vgg.torch_vgg import VGGFeatures

    module = types.ModuleType("torchvision")
    module.models = types.ModuleType("torchvision.models")
    module.models.vgg19 = lambda *args, **kwargs: types.SimpleNamespace(features=VGGFeatures("vgg19").features)
    return module


@contextlib.contextmanager
def original_modules(root: Path):
    """The original's `demo` and `srt.trainer` modules imported from `root` with the stand-ins of
    the module docstring; all removed again afterwards."""
    taken = sorted(name for name in sys.modules if name.split(".")[0] in TOP_LEVEL_NAMES)
    if taken:
        raise InputError(f"cannot import the original: modules {', '.join(taken)} are already imported")
    saved = {name: sys.modules.get(name) for name in STAND_INS}
    torchvision = _torchvision_stand_in()
    sys.modules.update(ffmpeg=types.ModuleType("ffmpeg"), torchvision=torchvision)
    sys.modules["torchvision.models"] = torchvision.models
    cuda = torch.Tensor.cuda, torch.nn.Module.cuda
    torch.Tensor.cuda = torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    sys.path.insert(0, str(root))
    try:
        with warnings.catch_warnings():  # its keypoint grid calls torch.meshgrid without indexing=
            warnings.filterwarnings("ignore", message="torch.meshgrid: in an upcoming release")
            modules = types.SimpleNamespace(
                demo=importlib.import_module("demo"), trainer=importlib.import_module("srt.trainer")
            )
            if Path(modules.demo.__file__).parent != root:
                raise InputError(f"'demo' was imported from {modules.demo.__file__}, not from {root}")
            yield modules
    finally:
        sys.path.remove(str(root))
        torch.Tensor.cuda, torch.nn.Module.cuda = cuda
        for name in [name for name in sys.modules if name.split(".")[0] in TOP_LEVEL_NAMES]:
            del sys.modules[name]
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


# ----------------------------------------------------------------------------- weights, inputs
def build_ours(model_cfg: Mapping[str, Any], seed: int = 0) -> tuple[KPDetector, FSRT]:
    """Random networks whose frames show something: sharper keypoint heatmaps (keypoints follow
    the image) and a render layer scaled around mid-grey (not 0 +- 0.01, half of it clamped to 0)."""
    torch.manual_seed(seed)
    detector, model = KPDetector().eval(), FSRT(**model_cfg).eval()
    with torch.no_grad():
        detector.kp.weight.mul_(20)
        last = model.decoder.render_mlp[-1]
        last.weight.mul_(20)
        last.bias.fill_(0.5)
    return detector, model


def build_original(original, model_cfg: Mapping[str, Any], detector: KPDetector, model: FSRT):
    """The original's KPDetector and FSRT (with its ExpressionEncoder) holding our weights."""
    if model_cfg.get("width_scale", 1.0) != 1.0:
        raise InputError("the original has no width_scale: compare at the released widths")
    cfg = {key: value for key, value in model_cfg.items() if key != "width_scale"}
    with contextlib.redirect_stdout(io.StringIO()):  # it prints which decoder it builds
        kp = original.demo.KPDetector()
        expression = original.demo.ExpressionEncoder(
            expression_size=cfg["expression_size"], in_channels=kp.predictor.out_filters
        )
        net = original.demo.FSRT(cfg, expression_encoder=expression)
    kp.load_state_dict(detector.state_dict(), strict=True)
    for part in PARTS:
        getattr(net, part).load_state_dict(getattr(model, part).state_dict(), strict=True)
    return kp.eval(), net.eval()


def demo_inputs(size: int, num_src: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(sources [S, size, size, 3], driving [frames, size, size, 3]) prepared as both demos prepare
    them: skimage's astronaut (and crops of it) and small affine warps of it, frame 0 unwarped."""
    from skimage import data, transform

    photo = data.astronaut()
    crops = [photo[k * 20 : 512 - k * 20, k * 30 : 512 - k * 10] for k in range(num_src)]
    sources = np.stack([animate.prepare(crop, size) for crop in crops])
    driving = [
        transform.warp(
            sources[0],
            transform.AffineTransform(scale=1 - 0.04 * i, rotation=0.03 * i, translation=(0.02 * i * size, 0)),
            mode="edge",
        )
        for i in range(frames)
    ]
    return sources, np.stack(driving).astype(np.float32)


def training_batch(size: int, num_src: int, num_pixels: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A phase-1 batch of one sample with the dataset's keys: smooth random frames, `num_pixels`
    random target pixels, the uncropped keypoints' scale and shift."""
    generator = torch.Generator().manual_seed(seed)

    def frames(*lead):
        coarse = torch.rand(*lead, 3, 8, 8, generator=generator)
        return F.interpolate(coarse.flatten(0, -4), size=(size, size), mode="bilinear").view(*lead, 3, size, size)

    grid = pixel_grid(size, size)
    sampled = torch.randperm(size * size, generator=generator)[:num_pixels][None]
    target = frames(1)
    return {
        "input_images_augm": frames(1, num_src),
        "input_images_augm2": frames(1, num_src),
        "input_images_augm2_uncropped": frames(1, num_src),
        "target_image_augm": target,
        "target_image_augm2": frames(1),
        "target_image_augm2_uncropped": frames(1),
        "target_image_augm3_crop": frames(1),
        "kp_scale": 1 + 0.2 * torch.rand(1, 2, generator=generator),
        "kp_shift": 0.2 * torch.rand(1, 2, generator=generator) - 0.1,
        "input_pos": grid.expand(1, num_src, -1, -1, -1),
        "target_pos": grid.flatten(0, 1)[sampled],
        "target_pixels_augm": target.permute(0, 2, 3, 1).flatten(1, 2)[:, sampled[0]],
        "sampled_idxs": sampled,
        "remaining_pos": torch.zeros(1, 0, 2),
        "remaining_idxs": torch.zeros(1, 0, dtype=torch.long),
    }


# ---------------------------------------------------------------------------------- the calls
def ours_per_frame(detector, model, sources: np.ndarray, driving: np.ndarray, batch: int, max_num_pixels: int):
    """A call rendering driving frames 1 .. batch as fsrt.demo does -> frames [batch, 3, H, W]."""
    source_frames, frames = animate.to_tensor(sources), animate.to_tensor(driving[1 : 1 + batch])
    z, kp_source = animate.encode_sources(model, detector, source_frames)
    kp_anchor, _ = animate.drive_codes(model, detector, animate.to_tensor(driving[:1]))
    height, width = source_frames.shape[-2:]

    def call() -> torch.Tensor:
        kp, expression = animate.drive_codes(model, detector, frames)
        kp = animate.transfer_motion(kp, kp_source[0], kp_anchor[0], relative=True, adapt_scale=True)
        return animate.render(model, z, kp, expression, height, width, max_num_pixels)

    return call


def original_per_frame(original, kp, net, model_cfg: Mapping[str, Any], sources: np.ndarray, driving: np.ndarray):
    """A call running the original demo's loop body on driving frame 1 -> its frame [1, 3, H, W]."""
    steps, cfg = original.demo, {"model": dict(model_cfg)}
    source = torch.from_numpy(sources).permute(0, 3, 1, 2)
    anchor, frame = (torch.from_numpy(driving[i : i + 1]).permute(0, 3, 1, 2) for i in (0, 1))
    height, width = source.shape[-2:]
    # its idx_grids: the pixel centres, once for the sources and once for the target (square frames)
    grids = pixel_grid(height, width)[None, None].repeat(1, 2, 1, 1, 1)
    with torch.no_grad():
        kp_source, expression_source = steps.extract_keypoints_and_expression(source, net, kp, cfg, src=True)
        kp_anchor, _ = steps.extract_keypoints_and_expression(anchor, net, kp, cfg)
    state = {"z": None}  # encoded in the first call, as in its demo's first iteration

    def call() -> torch.Tensor:
        with torch.no_grad():
            kp_driving, expression = steps.extract_keypoints_and_expression(frame.clone(), net, kp, cfg)
            kp_norm = steps.normalize_kp(
                kp_source=kp_source[0],
                kp_driving=kp_driving,
                kp_driving_initial=kp_anchor,
                adapt_movement_scale=True,
                use_relative_movement=True,
            )
            out, state["z"] = steps.forward_model(
                net,
                expression_source,
                kp_source,
                expression,
                kp_norm,
                source[None],
                grids,
                cfg,
                ORIGINAL_MAX_NUM_PIXELS,
                z=state["z"],
            )
            return out.clamp(0, 1).permute(0, 3, 1, 2)

    return call


def _gradient_sums(net) -> dict[str, torch.Tensor]:
    """Per part, the sums of |gradient| of its tensors in name order. Compared rather than the
    gradients themselves: a gradient summed over thousands of pixels with cancelling signs carries
    float32 rounding of up to about 1e-4 of the largest element (measured with two sources, ours
    and the original alike against the same step in float64), which these sums average out."""
    out = {}
    for part in PARTS:
        named = sorted(getattr(net, part).named_parameters(), key=lambda item: item[0])
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for _, p in named]
        out[f"{part} sums of |gradient|"] = torch.stack([grad.double().abs().sum() for grad in grads])
    return out


def ours_training(detector, model, cfg: Mapping[str, Any], data: dict):
    """A call of our phase-1 train_step -> the first step's loss terms and gradient sums."""
    trainer = FSRTTrainer(dict(cfg), model.encoder, model.decoder, model.expression_encoder, detector, seed=STEP_SEED)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["training"]["lr"])
    first: dict[str, Any] = {}

    def call() -> dict[str, Any]:
        terms = trainer.train_step(data, 0, optimizer)
        if not first:  # the original logs the weighted MSE
            mse = terms["mse"] * cfg["training"]["mse_loss_weight"]
            first.update(loss=terms["loss"], reg_loss=terms["reg_loss"], mse=mse, **_gradient_sums(model))
        return first

    return call


def original_training(original, kp, net, cfg: Mapping[str, Any], data: dict):
    """A call of the original's phase-1 train_step -> the first step's loss terms and gradient sums."""
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg["training"]["lr"])
    trainer = original.trainer.FSRTTrainer(net, optimizer, dict(cfg), "cpu", "", kp, None, None)
    first: dict[str, Any] = {}

    def call() -> dict[str, Any]:
        if not first:
            torch.manual_seed(STEP_SEED)  # its coin flips come from the global generator
        loss, terms = trainer.train_step(data, 0)
        if not first:
            first.update(loss=loss, reg_loss=terms["reg_loss"], mse=terms["mse"], **_gradient_sums(net))
        return first

    return call


# ----------------------------------------------------------------------------------- compare
def stage_calls(original, stage: str, cfg: Mapping[str, Any], size: int, sides=SIDES) -> tuple[dict, int]:
    """({side: call} of one stage, frames per call) on fresh networks with the same weights; only
    the sides asked for are kept (our networks are also built for the original: they hold the weights)."""
    detector, ours = build_ours(cfg["model"])
    kp, theirs = build_original(original, cfg["model"], detector, ours) if "original" in sides else (None, None)
    num_src = cfg["data"]["num_src"]
    if stage == "inference":
        batch, max_num_pixels = _demo_defaults()
        sources, driving = demo_inputs(size, num_src, 1 + batch)
        makers = {
            "ours": lambda: ours_per_frame(detector, ours, sources, driving, batch, max_num_pixels),
            "original": lambda: original_per_frame(original, kp, theirs, cfg["model"], sources, driving),
        }
        return {side: makers[side]() for side in sides}, batch
    data = training_batch(size, num_src, cfg["data"]["num_pixels_phase1"])
    makers = {
        "ours": lambda: ours_training(detector, ours, cfg, data),
        "original": lambda: original_training(original, kp, theirs, cfg, data),
    }
    return {side: makers[side]() for side in sides}, 1


def _demo_defaults() -> tuple[int, int]:
    """fsrt.demo's default --batch_size and --max_num_pixels."""
    defaults = demo.parse_args(["--config", "-", "--checkpoint", "-", "--source_image", "-"])
    return defaults.batch_size, defaults.max_num_pixels


def _config(config, model: Mapping[str, Any] | None) -> dict:
    cfg = load_config(config)
    if model is not None:
        cfg["model"] = dict(model)
    return cfg


def compare(
    root: Path, config="vox256", size: int = 256, repeats: int = 2, model=None, memory: bool = True
) -> list[Comparison]:
    """Both stages, ours against the original in `root`, at `config`'s sizes (`model`: another
    `model` section, e.g. a small one for tests) on `size` x `size` frames; `memory` adds each
    side's peak, measured in a process of its own (`measure_peak`)."""
    cfg, out = _config(config, model), []
    with original_modules(root) as original:
        for stage in STAGES:
            calls, frames = stage_calls(original, stage, cfg, size)
            best, first = best_alternating(calls, repeats)
            ours, theirs = best["ours"] / frames, best["original"]
            if stage == "inference":
                name = f"demo per {size}x{size} frame, {cfg['data']['num_src']} source(s)"
                worst, output = relative_difference(first["ours"][:1], first["original"]), "frame"
                out.append(Comparison(name, "inference", "frame", ours, theirs, worst, output))
            else:
                name = f"train step phase 1, batch 1 ({cfg['data']['num_pixels_phase1']} px)"
                worst, output = worst_difference(first["ours"], first["original"])
                out.append(Comparison(name, "training", "step", ours, theirs, worst, output))
            del calls, first
    if memory:
        for comparison, stage in zip(out, STAGES):
            comparison.peak_mib = {side: measure_peak(root, side, stage, config, size, model) for side in SIDES}
    return out


def own_peak_mib() -> float | None:
    """This process's peak resident memory so far, MiB: Linux's VmHWM, which starts afresh at exec
    (getrusage's ru_maxrss keeps the parent's from the fork); None where there is no /proc."""
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.is_file() else []
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith("VmHWM:")), None)


def measure_peak(root: Path, side: str, stage: str, config, size: int, model=None) -> float | None:
    """Peak resident MiB of a fresh process that builds one side of one stage and calls it once
    (the warm-up call: for the original's demo that one also encodes the sources); None if it fails."""
    command = [sys.executable, "-m", "fsrt.bench_original", str(root), "--peak_of", side, "--stage", stage]
    command += ["--config", str(config), "--size", str(size)]
    if model is not None:
        command += ["--model", json.dumps(model)]
    package_root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        print(f"peak memory of {side} {stage}: failed ({(done.stderr.strip().splitlines() or ['?'])[-1]})")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]


def _agreement(c: Comparison) -> str:
    verdict = "agree" if c.agrees else "DIFFER"
    return f"outputs {verdict}: worst {c.worst:.2g} of max |original| ({c.worst_output})"


def _peaks(c: Comparison) -> str:
    if not c.peak_mib:
        return ""
    values = ", ".join(f"{side} {'-' if mib is None else f'{mib:.0f}'}" for side, mib in c.peak_mib.items())
    return f"; peak MiB (own process) {values}"


def bench_rows(comparisons: list[Comparison], repeats: int, device: str = "cpu") -> list[BenchRow]:
    """common.bench rows of both sides of every stage, the speed-up and agreement in the notes."""
    rows = []
    for c in comparisons:
        notes = f"ours {c.speedup:.2f}x faster than the original (alternating, best of {repeats}); {_agreement(c)}"
        for side, seconds in (("original", c.original), ("ours", c.ours)):
            label = f"{c.stage} [{side}, side by side]"
            rows.append(BenchRow("fsrt", label, c.kind, seconds, c.unit, c.peak_mib.get(side), notes=notes))
    return rows


def table(comparisons: list[Comparison], repeats: int) -> str:
    """Markdown table (common.bench.side_by_side_table) of the comparisons, our peak in its
    column and both in the notes; "" without any."""
    if not comparisons:
        return ""
    rows = [
        dict(
            stage=c.stage,
            ours=c.ours,
            unit=f"s / {c.unit}",
            original=c.original,
            ratio=c.speedup,
            peak_mib=c.peak_mib.get("ours"),
            note=_agreement(c) + _peaks(c),
        )
        for c in comparisons
    ]
    header = f"side by side with andrerochow/fsrt, alternating, best of {repeats} (seconds)"
    return side_by_side_table(rows, header)


@cli_main
def main(argv=None) -> int:
    """The peak-memory child: build one side of one stage, call it once, print {"peak_mib": ...}."""
    parser = argparse.ArgumentParser(prog="python -m fsrt.bench_original", description=main.__doc__)
    parser.add_argument("original", help="checkout of andrerochow/fsrt")
    parser.add_argument("--peak_of", choices=SIDES, required=True)
    parser.add_argument("--stage", choices=STAGES, required=True)
    parser.add_argument("--config", default="vox256")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--model", type=json.loads, default=None, help="another `model` section, as JSON")
    args = parser.parse_args(argv)
    root = find_original(args.original)
    with original_modules(root) as original:
        calls, _ = stage_calls(original, args.stage, _config(args.config, args.model), args.size, (args.peak_of,))
        calls[args.peak_of]()
    print(json.dumps({"peak_mib": own_peak_mib()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
