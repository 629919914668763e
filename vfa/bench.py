"""Time VFA at the official size with seeded random weights: `python -m vfa.bench [--quick] [--original DIR]`.

Rows:

* per-frame inference at 256 x 256 as `vfa.animate.Animator.animate` runs it: the generator in
  testing mode (teacher + student), controller tracking, blending and Laplacian smoothing, and the
  two renders of the moved mesh, each also timed alone. The avatar is a BFM-sized heightfield grid
  (189 x 189 = 35,721 vertices, 70,688 triangles) with a smooth colour pattern, rendered from the
  source camera; its controllers are a 13 x 13 lattice of foreground pixels (169, about what
  mediapipe gives a BFM avatar; mediapipe itself is not timed) and the driving frames are random
  smooth RGBD images.
* the controlling weights on that mesh: `fast` measured; `faithful` (one heat solve per vertex)
  measured on a smaller grid and extrapolated to 35,721 vertices by the ratio of one heat solve
  on the full mesh to one on the small one (timed alone), said so in the row;
* one training step (forward, backward, Adam) of stage 1 and of stage 2 at 256 x 256, batch 1 and
  the original's per-GPU batch 8 (16 over at least 2 GPUs; not with --quick), with random VGG19
  weights for the perceptual loss (the same cost as ImageNet's).

Each row runs in a fresh process (spawn) whose resident peak is the stage's peak (ru_maxrss never
goes down); `baseline` is that process's peak before the timed work (torch, weights, inputs).

`--original DIR` (why986/VFA extracted from git, e.g. `git archive HEAD | tar -x -C DIR`) imports
its `networks/` with `torch.Tensor.cuda` made a no-op in that process, loads the same weights and
times its generator forward alternately with ours (best of N each), reporting
max|ours - original| / max|original| of the teacher RGBD and the student flow in float64 (float32
differs by up to 1e-2 from summation order alone, fact sheet section 9). Of `rgbd2mesh.py` only
`convert_flow` (pure Python) runs without a GPU and is timed against our forward map on the same
flow, with the controllers' forward positions compared; `source_to_driving` and
`calculate_weights_with_geodist` create `cuda:0` tensors, and the original's rendering needs
pytorch3d (not installed), so those are not timed. One training step of each stage (batch 1) is
timed alternately with the original's own `Trainer.gen_update` (`original_train_step`: its
`trainer.py` run with a stand-in torchvision whose VGG19 is ours, `DDP` the module itself and its
Adam's integer beta a float), the first step's losses compared.

`--precisions fp32 bf16` (the default) also times the per-frame inference and the generator forward
under bf16 autocast (`common.precision`; fp16 needs a GPU, which this bench does not use), with the
same weights and inputs, the precisions taking turns in each repeat. Their rows (`[bf16]`) give
the speed-up and the agreement of the outputs with float32 ones, as 8-bit frames mapped from
[-1, 1]: the network RGB and the two renders of the moved mesh for the frame, the teacher RGBD
for the forward. Random weights predict large random flows that amplify any rounding (Gaussian
noise of half an 8-bit level on the inputs moves the fp32 network output by up to 80 levels, and
the controllers' tracking then moves the mesh at random), so these agreements are a pessimistic
bound for trained weights.

`--json OUT` writes the table, the raw results and common.bench rows (`standard_rows`); the
inference rows carry the counted GFLOP of the generator forward per frame.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import platform
import resource
import sys
import time
import types
from pathlib import Path

import numpy as np

from common.bench import BenchRow, count_flops, fixed, side_by_side_table, write_rows_json
from common.errors import InputError, cli_main
from common.isolated import run_isolated
from common.precision import PRECISIONS, autocast, check_precision, frame_agreement

SIZE = 256
GRID = 189  # 189² = 35,721 vertices, BFM09's count
LATTICE = 13  # controllers per side
ORIGINAL_BATCH = 8  # batch 16 split over the original's at least 2 GPUs


# ------------------------------------------------------------------------------------ inputs
def seeded_generator(size: int, distilling: bool, seed: int = 0):
    """The generator with torch's seeded initial weights; parameters initialised to a constant (biases,
    modulation biases of 1) get N(0, 0.05²) added so that every term shows in the output."""
    import torch

    from vfa.model import Generator

    torch.manual_seed(seed)
    generator = Generator(size, distilling=distilling)
    with torch.no_grad():
        for parameter in generator.parameters():
            if parameter.numel() > 1 and parameter.std() == 0:
                parameter.add_(torch.randn_like(parameter) * 0.05)
    return generator


def rgbd_frames(count: int, size: int = SIZE, seed: int = 1):
    """[count, 4, size, size] smooth random RGBD network inputs in [-1, 1] (background -1)."""
    import torch

    rng = np.random.default_rng(seed)
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size * 2 - 1
    frames = []
    for _ in range(count):
        phase = rng.random(4) * 6
        colour = np.stack([np.sin(3 * x + p) * np.cos(2 * y + p) for p in phase[:3]])
        radius2 = (x - 0.1 * np.sin(phase[3])) ** 2 + y**2
        depth = np.where(radius2 < 0.8, radius2 / 0.8 * 2 - 1, -1.0)
        frames.append(np.concatenate([np.where(radius2 < 0.8, colour, -1.0), depth[None]]))
    return torch.from_numpy(np.asarray(frames, dtype=np.float32))


def heightfield(grid: int):
    """A grid x grid vertex heightfield over the source camera's view: a smooth bump, colours 0-1."""
    from vfa.mesh import Mesh

    t = np.linspace(-1.0, 1.0, grid)
    x, y = np.meshgrid(t * 1.013, t * 1.013 * 0.991)  # no quad diagonal through pixel centres
    z = 0.3 * np.exp(-(x**2 + y**2) / 0.5)
    colours = np.stack([0.5 + 0.4 * np.sin(5 * x), 0.5 + 0.4 * np.cos(4 * y), 0.5 + 0.3 * np.sin(3 * (x + y))], -1)
    ids = np.arange(grid * grid).reshape(grid, grid)
    a, b, c, d = ids[:-1, :-1].ravel(), ids[:-1, 1:].ravel(), ids[1:, :-1].ravel(), ids[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)])
    vertices = np.stack([x.ravel(), -y.ravel(), z.ravel()], 1)
    return Mesh(vertices, faces, colours.reshape(-1, 3))


def lattice_controllers(source, count: int = LATTICE):
    """count x count foreground pixels of the rendered source as controllers."""
    from vfa.controllers import Controllers

    steps = np.linspace(24, SIZE - 25, count).astype(np.int64)
    pixels = [(c, r) for r in steps for c in steps if source.zbuf[r, c] > 0]
    points = np.array([(c, r, 1.0 / source.zbuf[r, c]) for c, r in pixels], dtype=np.float64)
    return Controllers(points, ("other",) * len(points), np.arange(len(points)))


def avatar(grid: int):
    """(source render, controllers, their face corners) of a heightfield avatar."""
    from vfa.render import render_source
    from vfa.weights import controller_corners

    source = render_source(heightfield(grid))
    controllers = lattice_controllers(source)
    return source, controllers, controller_corners(controllers.pixels, source.pix_to_face, source.mesh.faces)


# ----------------------------------------------------------------------------------- measuring
def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def best_of(fn, repeats: int) -> tuple[float, object]:
    """(fastest wall seconds of `repeats` calls, the last result)."""
    best, result = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def alternating_best(calls: dict, repeats: int) -> dict:
    """{name: (fastest wall seconds, last result)} of each call, the calls taking turns `repeats`
    times so that a machine's changing load reaches all of them alike."""
    best, results = dict.fromkeys(calls, math.inf), {}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            results[name] = fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: (best[name], results[name]) for name in calls}


def unit_range(image) -> np.ndarray:
    """A [-1, 1] network image or render as [0, 1] float64 (frame_agreement clamps the rest)."""
    array = image.detach().float().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    return (array.astype(np.float64) + 1.0) / 2.0


def frame_panels(result) -> np.ndarray:
    """The animated frame's [H, 3W, 3] panels in [0, 1]: network RGB, front and rotated renders."""
    network = result.rgb.permute(1, 2, 0)
    return np.concatenate([unit_range(network), unit_range(result.front), unit_range(result.rotated)], axis=1)


def relative_difference(ours, reference) -> float:
    """max|ours - reference| / max|reference|, the measure of tests/numerics.py."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


# -------------------------------------------------------------------------------------- stages
def inference(opt, state: dict) -> dict:
    """Animator.animate per frame and its parts (seconds, best of opt.repeats); the frame and the
    generator forward also at each reduced precision of opt.precisions (under "precisions")."""
    import torch

    from vfa import animate
    from vfa.weights import geodesic_weights

    source, controllers, corners = avatar(opt.grid)
    control = geodesic_weights(source.mesh.vertices, source.mesh.faces, corners, method="fast", show_progress=False)
    generator = seeded_generator(SIZE, distilling=True).eval()
    rgbd = animate.norm_image(source.colour_bgr_float, source.zbuf, "avatar")
    precisions = ["fp32", *(p for p in opt.precisions if p != "fp32")]
    animators = {p: animate.Animator(generator, source, rgbd, controllers, control, precision=p) for p in precisions}
    start, driving = rgbd_frames(2).split(1)
    for each in animators.values():
        each.set_start(start)
    animator = animators["fp32"]
    state["baseline_mib"] = peak_mib()

    @torch.no_grad()
    def generator_forward(each):
        with autocast(each.precision, each.device):
            return generator(each.source_rgbd, driving, h_start=each.h_start, testing=True)

    frames = alternating_best({p: functools.partial(a.animate, driving) for p, a in animators.items()}, opt.repeats)
    forwards = alternating_best({p: functools.partial(generator_forward, a) for p, a in animators.items()}, opt.repeats)
    (total, result), (forward, (recon, extra)) = frames["fp32"], forwards["fp32"]
    with torch.no_grad():
        flop = count_flops(generator, animator.source_rgbd, driving, h_start=animator.h_start, testing=True)
    reduced = {
        p: {
            "seconds": frames[p][0],
            "generator forward": forwards[p][0],
            "frame_agreement": frame_agreement(frame_panels(result), frame_panels(frames[p][1])),
            "forward_agreement": frame_agreement(unit_range(recon), unit_range(forwards[p][1][0])),
        }
        for p in precisions[1:]
    }
    flow = extra["rgb_motion_flow"][0].numpy()
    tracking_args = (flow, result.depth_u16, controllers, source.camera, source.depth_min, source.depth_max)
    track, tracking = best_of(lambda: animate.track_controllers(*tracking_args), opt.repeats)

    def deform():
        moved = animate.blend_displacements(control.weights, control.index, tracking.translations, tracking.untracked)
        return animate.laplacian_smooth(moved, control.weights_lap, control.index_lap)

    blend, displacement = best_of(deform, opt.repeats)
    renders, _ = best_of(lambda: animator.render_views(displacement), opt.repeats)
    return {
        "seconds": total,
        "parts": {"generator forward": forward, "tracking": track, "blend + smoothing": blend, "two renders": renders},
        "vertices": len(source.mesh.vertices),
        "controllers": len(controllers),
        "tracked": int((~tracking.untracked).sum()),
        "gflop": flop / 1e9,
        "precisions": reduced,
    }


def weights_fast(opt, state: dict) -> dict:
    from vfa.weights import geodesic_weights

    source, controllers, corners = avatar(opt.grid)
    state["baseline_mib"] = peak_mib()
    start = time.perf_counter()
    geodesic_weights(source.mesh.vertices, source.mesh.faces, corners, method="fast", show_progress=False)
    return {"seconds": time.perf_counter() - start, "vertices": len(source.mesh.vertices)}


def heat_solve_seconds(mesh, solves: int) -> float:
    """Mean seconds of one potpourri3d heat-method distance solve on `mesh`."""
    import potpourri3d

    solver = potpourri3d.MeshHeatMethodDistanceSolver(mesh.vertices.astype(np.float64), mesh.faces)
    solver.compute_distance(0)  # factorisation
    vertices = np.linspace(0, len(mesh.vertices) - 1, solves).astype(int)
    start = time.perf_counter()
    for vertex in vertices:
        solver.compute_distance(int(vertex))
    return (time.perf_counter() - start) / solves


def weights_faithful(opt, state: dict) -> dict:
    """Measured on the small grid, extrapolated to the full one by per-vertex time x the ratio of
    one heat solve there to one here."""
    from vfa.weights import geodesic_weights

    source, _, corners = avatar(opt.small_grid)
    state["baseline_mib"] = peak_mib()
    start = time.perf_counter()
    geodesic_weights(source.mesh.vertices, source.mesh.faces, corners, method="faithful", show_progress=False)
    small = time.perf_counter() - start
    small_count, full_count = opt.small_grid**2, opt.grid**2
    solve_small = heat_solve_seconds(source.mesh, opt.solves)
    solve_full = heat_solve_seconds(heightfield(opt.grid), opt.solves)
    estimate = small / small_count * solve_full / solve_small * full_count
    return {"seconds": estimate, "small_seconds": small, "small_vertices": small_count, "vertices": full_count}


def train_step(opt, state: dict) -> dict:
    """Seconds of the second training step (the first allocates Adam's state)."""
    import torch

    from common.vgg.torch_vgg import VGGFeatures
    from vfa.losses import VGGPyramidLoss
    from vfa.train import Losses, make_optimizer
    from vfa.train import train_step as step

    distilling, batch = state["distilling"], state["batch"]
    torch.manual_seed(0)
    losses = Losses(VGGPyramidLoss(VGGFeatures("vgg19")))
    generator = seeded_generator(opt.train_size, distilling)
    optim, scheduler = make_optimizer(generator, 2e-4, 5000)
    frames = rgbd_frames(2 * batch, opt.train_size)
    pair = (frames[:batch], frames[batch:])
    state["baseline_mib"] = peak_mib()
    step(generator, optim, pair, losses, distilling, scheduler)
    seconds, values = best_of(lambda: step(generator, optim, pair, losses, distilling, scheduler), opt.repeats)
    return {"seconds": seconds, "loss": values["loss"]}


@contextlib.contextmanager
def original_on_path(root: str):
    """The original's folder first on sys.path, `torch.Tensor.cuda` a no-op (its base grids)."""
    import torch

    sys.path.insert(0, root)
    saved = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = saved
        sys.path.remove(root)


def original_generator(opt, state: dict) -> dict:
    """The original's and our generator forward (testing mode) on the same weights and inputs,
    timed alternately; agreement checked in float64."""
    import torch

    ours = seeded_generator(SIZE, distilling=True).eval()
    with original_on_path(opt.original):
        from networks.generator import Generator as OriginalGenerator

        theirs = OriginalGenerator(SIZE, in_channels=4, depth_motion_dim=5, distilling=True).eval()
        theirs.load_state_dict(ours.state_dict(), strict=True)
        source, driving, start = rgbd_frames(3).split(1)
        times = {"ours": math.inf, "original": math.inf}
        with torch.no_grad():
            h_start = ours.enc.enc_motion(start)
            for _ in range(opt.repeats):
                for name, model in (("ours", ours), ("original", theirs)):
                    seconds, _ = best_of(functools.partial(model, source, driving, h_start=h_start, testing=True), 1)
                    times[name] = min(times[name], seconds)
            outputs = [
                model.double()(source.double(), driving.double(), h_start=h_start.double(), testing=True)
                for model in (ours, theirs)
            ]
    (ours_rgbd, ours_res), (their_rgbd, their_res) = outputs
    return {
        **times,
        "teacher_difference": relative_difference(ours_rgbd, their_rgbd),
        "flow_difference": relative_difference(ours_res["rgb_motion_flow"], their_res["rgb_motion_flow"]),
    }


@contextlib.contextmanager
def original_trainer_shims(vgg_features):
    """What the original's `trainer.py` needs on a CPU without torchvision, in this process only: a
    stand-in `torchvision` whose `models.vgg19(...).features` is `vgg_features` (torchvision's
    layout and weights of the caller's choosing; nothing is downloaded), `DDP` the module itself and
    its Adam's integer beta `0 ** 1` a float (torch 2.13 refuses it)."""
    import torch

    saved = sys.modules.get("torchvision")
    stand_in = types.ModuleType("torchvision")
    stand_in.models = types.SimpleNamespace(vgg19=lambda *args, **kwargs: types.SimpleNamespace(features=vgg_features))
    sys.modules["torchvision"] = stand_in
    try:
        import trainer

        trainer.DDP = lambda module, *args, **kwargs: module
        trainer.optim = types.SimpleNamespace(
            Adam=lambda params, lr, betas: torch.optim.Adam(params, lr=lr, betas=tuple(map(float, betas)))
        )
        yield trainer
    finally:
        if saved is None:
            sys.modules.pop("torchvision", None)
        else:
            sys.modules["torchvision"] = saved


def original_train_step(opt, state: dict) -> dict:
    """One training step of the original's `Trainer.gen_update` and of ours (`vfa.train.train_step`),
    same weights, frames and random VGG19, at `train_size` and batch 1, alternately, best of
    `repeats` after one untimed step each; the first step's loss of each side is compared."""
    import torch

    from common.vgg.torch_vgg import VGGFeatures
    from vfa.losses import VGGPyramidLoss
    from vfa.train import Losses, make_optimizer
    from vfa.train import train_step as step

    distilling = state["distilling"]
    torch.manual_seed(0)
    vgg = VGGFeatures("vgg19")
    ours = seeded_generator(opt.train_size, distilling)
    frames = rgbd_frames(2, opt.train_size)
    source, driving = frames[:1], frames[1:]
    with original_on_path(opt.original), original_trainer_shims(vgg.features) as trainer:
        args = types.SimpleNamespace(
            batch_size=1, size=opt.train_size, latent_dim_style=512, latent_dim_motion=20, channel_multiplier=1,
            in_channels=4, latent_dim_depth_motion=5, distilling=distilling, lr=2e-4, lr_freq=5000,
            lambda_loss_l1=200.0, lambda_loss_sm=200.0, lambda_loss_gr=100.0, lambda_loss_sp=50.0,
        )  # fmt: skip
        theirs = trainer.Trainer(args, "cpu", "cpu")
        theirs.gen.load_state_dict(ours.state_dict(), strict=True)
        losses = Losses(VGGPyramidLoss(vgg))
        optim, scheduler = make_optimizer(ours, 2e-4, 5000)

        def their_step() -> float:
            terms, _ = theirs.gen_update(source, driving, distilling=distilling)
            return float(sum(term.detach() for term in terms.values()))

        sides = {
            "ours": lambda: step(ours, optim, (source, driving), losses, distilling, scheduler)["loss"],
            "original": their_step,
        }
        first = {side: fn() for side, fn in sides.items()}
        times = dict.fromkeys(sides, math.inf)
        for repeat in range(opt.repeats):
            for side, fn in sorted(sides.items(), reverse=repeat % 2 == 1):
                seconds, _ = best_of(fn, 1)
                times[side] = min(times[side], seconds)
    difference = abs(first["ours"] - first["original"]) / abs(first["original"])
    return {**times, "losses": first, "relative_difference": difference}


def original_convert_flow(opt, state: dict) -> dict:
    """rgbd2mesh.convert_flow against our forward map on one flow, for the lattice controllers."""
    import torch

    from vfa.animate import forward_positions

    source, controllers, _ = avatar(opt.small_grid)
    generator = seeded_generator(SIZE, distilling=True).eval()
    frames = rgbd_frames(2)
    with torch.no_grad():
        _, extra = generator(frames[:1], frames[1:], h_start=generator.enc.enc_motion(frames[:1]), testing=True)
    flow_px = (extra["rgb_motion_flow"][0].numpy() + 1.0) / 2.0 * SIZE
    with original_on_path(opt.original):
        import rgbd2mesh

        theirs, (positions, weights) = best_of(lambda: rgbd2mesh.convert_flow(flow_px), opt.repeats)
    ours, moved = best_of(lambda: forward_positions(flow_px, controllers.pixels), opt.repeats)
    expected = np.full_like(moved, np.nan)
    for c, (x, y) in enumerate(controllers.pixels.tolist()):
        share = np.asarray(weights.get((x, y), []), np.float64)
        if share.size and share.sum() != 0:
            expected[c] = (np.asarray(positions[(x, y)], np.float64) * share[:, None]).sum(0) / share.sum()
    both = np.isfinite(expected).all(1) & np.isfinite(moved).all(1)
    same_missing = bool((np.isfinite(expected).all(1) == np.isfinite(moved).all(1)).all())
    return {
        "ours": ours,
        "original": theirs,
        "difference": relative_difference(moved[both], expected[both]) if both.any() else None,
        "same_missing": same_missing,
    }


STAGES = {
    "inference": inference,
    "weights_fast": weights_fast,
    "weights_faithful": weights_faithful,
    "train_step": train_step,
    "original_generator": original_generator,
    "original_convert_flow": original_convert_flow,
    "original_train_step": original_train_step,
}


def _measure(name: str, opt: argparse.Namespace, state: dict) -> dict:
    import torch

    if opt.threads:
        torch.set_num_threads(opt.threads)
    result = STAGES[name](opt, state)
    result["peak_mib"] = peak_mib()
    result["baseline_mib"] = state.get("baseline_mib")
    return result


def run_stage(name: str, opt: argparse.Namespace, state: dict | None = None) -> dict:
    """One stage in a fresh spawned process (in this one with --in_process)."""
    return run_isolated(_measure, name, opt, state, opt.in_process)


# -------------------------------------------------------------------------------------- report
def precision_note(fp32_seconds, seconds, agreement: dict) -> str:
    """The contract's note of a reduced-precision row: speed-up and frame agreement with fp32."""
    if not fp32_seconds or not seconds:
        return ""
    return (
        f"x{fp32_seconds / seconds:.2f} vs fp32; frames vs fp32 {agreement['psnr_db']:.1f} dB PSNR, "
        f"max {agreement['max_levels']} levels"
    )


def precision_rows(frame: dict) -> list[tuple[str, str, float, str]]:
    """(precision, which, seconds, note) of each reduced precision's frame and generator forward;
    `which` is "frame" or "forward"."""
    rows = []
    fp32 = {"frame": frame.get("seconds"), "forward": frame.get("parts", {}).get("generator forward")}
    for precision, result in frame.get("precisions", {}).items():
        for which, key in (("frame", "seconds"), ("forward", "generator forward")):
            note = precision_note(fp32[which], result[key], result[f"{which}_agreement"])
            rows.append((precision, which, result[key], note))
    return rows


def _row(stage: str, result: dict, ours=None, original=None, unit: str = "s", note: str = "") -> dict:
    ours = result.get("seconds") if ours is None else ours
    note = result.get("error", note)
    if "baseline_mib" in result and result["baseline_mib"] is not None:
        note = f"{note}; baseline {result['baseline_mib']:.0f} MiB".lstrip("; ")
    ratio = original / ours if ours and original else None
    return dict(
        stage=stage, ours=ours, original=original, ratio=ratio, unit=unit, peak_mib=result.get("peak_mib"), note=note
    )


def build_rows(results: dict, opt: argparse.Namespace) -> list[dict]:
    rows = []
    frame = results["inference"]
    note = f"{frame.get('vertices')} vertices, {frame.get('controllers')} controllers ({frame.get('tracked')} tracked)"
    rows.append(_row("inference per frame (Animator.animate)", frame, note=note))
    compare = results.get("original_generator", {})
    for part, seconds in frame.get("parts", {}).items():
        rows.append(_row(f"  {part}", {}, seconds))
    for precision, which, seconds, note in precision_rows(frame):
        label = "inference per frame (Animator.animate)" if which == "frame" else "  generator forward"
        rows.append(_row(f"{label} [{precision}]", {"peak_mib": frame.get("peak_mib")}, seconds, note=note))
    if compare:
        difference = "error" not in compare and (
            "timed alternately; float64 max abs(ours - original) / max abs(original): "
            f"teacher RGBD {compare['teacher_difference']:.1e}, "
            f"student flow {compare['flow_difference']:.1e}"
        )
        rows.append(
            _row(
                "generator forward, ours vs original",
                compare,
                compare.get("ours"),
                compare.get("original"),
                note=difference or "",
            )
        )
    flow = results.get("original_convert_flow")
    if flow:
        note = "error" not in flow and (
            f"controller forward positions: max relative difference {fixed(flow['difference'], 1)}, "
            f"same untracked set: {flow['same_missing']}; original's source_to_driving / weights need CUDA tensors "
            "and its renderer pytorch3d: not timed"
        )
        rows.append(
            _row(
                "forward map of the flow (rgbd2mesh.convert_flow)",
                flow,
                flow.get("ours"),
                flow.get("original"),
                note=note or "",
            )
        )
    fast, faithful = results["weights_fast"], results["weights_faithful"]
    rows.append(_row("controlling weights, fast", fast, note=f"{fast.get('vertices')} vertices"))
    note = (
        f"ESTIMATE for {faithful.get('vertices')} vertices: measured {fixed(faithful.get('small_seconds'), 2)} s on "
        f"{faithful.get('small_vertices')} vertices, scaled per vertex and by the heat-solve time ratio"
    )
    rows.append(_row("controlling weights, faithful", faithful, note=note))
    for (distilling, batch), result in results["train"].items():
        label = f"stage-{2 if distilling else 1} training step, batch {batch} at {opt.train_size}"
        steps = 1 / result["seconds"] if "seconds" in result else None
        note = f"{fixed(result.get('seconds'), 2)} s per step"
        rows.append(_row(label, result, steps, unit="steps/s", note=note))
    for stage, result in results.get("original_train", {}).items():
        note = "error" not in result and (
            f"Trainer.gen_update; first loss |ours - original| / |original| = {result['relative_difference']:.1e}"
        )
        label = f"stage-{stage[-1]} training step, batch 1 at {opt.train_size}, ours vs original"
        rows.append(_row(label, result, result.get("ours"), result.get("original"), note=note or ""))
    return rows


def standard_rows(results: dict, opt: argparse.Namespace) -> list[BenchRow]:
    """The stages as common.bench rows (CPU); a stage that failed keeps its error as the note."""

    def row(result: dict, label: str, kind: str, unit: str, seconds=None, gflop=None, note: str = "") -> BenchRow:
        seconds = result.get("seconds") if seconds is None else seconds
        return BenchRow("vfa", label, kind, seconds, unit, result.get("peak_mib"), gflop, result.get("error", note))

    frame = results["inference"]
    generator = frame.get("parts", {}).get("generator forward")
    counted = "GFLOP: the generator forward"
    rows = [
        row(frame, "inference per frame (Animator.animate)", "inference", "frame", None, frame.get("gflop"), counted),
        row(frame, "generator forward per frame", "inference", "frame", generator, frame.get("gflop")),
    ]
    for precision, which, seconds, note in precision_rows(frame):
        label = "inference per frame (Animator.animate)" if which == "frame" else "generator forward per frame"
        rows.append(row(frame, f"{label} [{precision}]", "inference", "frame", seconds, frame.get("gflop"), note))
    rows += [
        row(results["weights_fast"], "controlling weights, fast", "other", "call"),
        row(results["weights_faithful"], "controlling weights, faithful", "other", "call", note="estimated"),
    ]
    for (distilling, batch), result in results["train"].items():
        label = f"stage-{2 if distilling else 1} training step, batch {batch} at {opt.train_size}"
        rows.append(row(result, label, "training", "step"))
    return rows


@cli_main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vfa.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one timed call per stage, batch 1 only (a few minutes)")
    parser.add_argument("--original", metavar="DIR", help="why986/VFA extracted from git, to time side by side")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=PRECISIONS,
        default=["fp32", "bf16"],
        help="inference precisions to time (default fp32 bf16; fp16 needs a GPU); fp32 always runs, as the reference",
    )
    parser.add_argument(
        "--tiny", action="store_true", help=argparse.SUPPRESS
    )  # small meshes, training at 128: the test
    parser.add_argument("--in_process", action="store_true", help=argparse.SUPPRESS)  # no child processes
    opt = parser.parse_args(argv)
    for precision in opt.precisions:
        check_precision(precision, "cpu")
    opt.repeats = 1 if opt.quick else 3
    opt.grid, opt.small_grid, opt.solves = (
        (48, 16, 3) if opt.tiny else (GRID, 32 if opt.quick else 64, 5 if opt.quick else 20)
    )
    opt.train_size = 128 if opt.tiny else SIZE
    if opt.original is not None:
        if not Path(opt.original, "networks", "generator.py").is_file():
            raise InputError(f"--original {opt.original}: not a checkout of why986/VFA (no networks/generator.py)")
        opt.original = str(Path(opt.original).resolve())

    results = {name: run_stage(name, opt) for name in ("inference", "weights_fast", "weights_faithful")}
    if opt.original:
        results["original_generator"] = run_stage("original_generator", opt)
        results["original_convert_flow"] = run_stage("original_convert_flow", opt)
    batches = (1,) if opt.quick or opt.tiny else (1, ORIGINAL_BATCH)
    results["train"] = {
        (distilling, batch): run_stage("train_step", opt, {"distilling": distilling, "batch": batch})
        for distilling in (False, True)
        for batch in batches
    }
    if opt.original:
        results["original_train"] = {
            f"stage{2 if distilling else 1}": run_stage("original_train_step", opt, {"distilling": distilling})
            for distilling in (False, True)
        }

    import torch

    header = (
        f"VFA bench: {SIZE}x{SIZE}, seeded random weights, CPU, {opt.threads or torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, best of {opt.repeats}"
    )
    rows = build_rows(results, opt)
    print(side_by_side_table(rows, header))
    if opt.json:
        standard = standard_rows(results, opt)
        results["train"] = {f"stage{2 if d else 1}_batch{b}": r for (d, b), r in results["train"].items()}
        write_rows_json(opt.json, standard, header, {"rows": rows, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
