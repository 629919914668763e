"""Time VPGC at the official sizes with seeded random weights: `python -m vpgc.bench [--quick] [--original DIR]`.

Rows: the stage-1 forward of one 4-frame batch at 512x512 (encoder, hard grid lookup, decoder), the
hard grid quantiser alone, stage-2 inference per frame (landmark maps -> frames through
`Reenactor.render_windows`: landmark encoder, PriorTrans, soft lookup, post_quant_conv, decoder),
and one training step of each stage (stage 1: generator and discriminator steps with LPIPS on 4
frames, `--stage1_train_frames` fewer where memory is short; stage 2: one iteration of
`vpgc.reenact.train`, its GFLOP counted on one more) as steps per second. Each stage runs in a
fresh process (spawn) whose resident peak is the stage's peak (ru_maxrss never goes down; on CUDA
the allocator's peak); `baseline` is that process's peak before the timed work (torch + weights).

`--original DIR` (a checkout of uniBruce/VPGC_Pytorch; never needed otherwise) builds the original's
Reenactment modules in child processes with runtime shims only (`original_modules`), loads the same
weights, and times its stage-2 inference part by part alternately with ours (best of N each),
reporting max|ours - original| / max|original|; it also compares the stage-1 hard indices of one
batch, and times its stage-2 training iteration (`GridFormer7_Model.optimize_parameters`) beside
ours (`compare_stage2_training`). The original's hard lookup materialises four
[4, 256, 64, 4096, 4] float32 tensors (16 GiB) for one batch, so it runs on slices of 16 cells
(each cell computed by its own code) and its full-batch memory is given analytically and as 16x
the measured increase for one slice.

`--precisions` (default fp32 bf16 on the CPU, fp32 fp16 on a GPU): stage-2 inference, the stage the
reenactment command runs, is also timed at each other precision (`Reenactor.precision`, autocast with
the soft lookup in float32), taking turns with fp32 on the same weights and maps, as the rows
`... [bf16]` whose notes give the speed-up over fp32 and the frames' agreement with fp32's
(`common.precision.frame_agreement`). The stage-1 forward is not: no command runs it at reduced
precision, and under plain autocast its hard lookup picks other codewords. Training is fp32 only.

`--json OUT` writes the table, the raw results and common.bench rows (`standard_rows`), stage-2
inference with the counted GFLOP of `render_windows` per frame.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import importlib.machinery
import importlib.util
import io
import math
import platform
import resource
import sys
import time
import types
from pathlib import Path

import numpy as np

from common.bench import BenchRow, count_flops, fixed, side_by_side_table, write_rows_json
from common.distributed import add_device_argument, resolve_device
from common.errors import InputError, cli_main
from common.isolated import run_isolated
from common.precision import PRECISIONS, check_precision, frame_agreement

FRAMES = 4  # frames per batch (the original's batch_internal)
SLICE_CELLS = 16  # grid cells per call of the original's hard lookup
GIB = 2**30
# The original's hard lookup for one batch: z and the bank repeated to [4, 256, 64, 4096, 4], their
# difference and its square are alive together (float32).
ORIGINAL_HARD_BYTES = 4 * (FRAMES * 256 * 64 * 4096 * 4) * 4
OFFICIAL_LANDMARK = dict(ch=64, ch_mult=(1, 1, 2, 2, 4, 4), resolution=512)
# --tiny (this module's test): the latent stays 16x16x256, the size the grid quantiser needs.
TINY_DDCONFIG = dict(ch=32, ch_mult=[1, 2, 2], num_res_blocks=1, resolution=64)
TINY_LANDMARK = dict(ch=32, ch_mult=(1, 2, 2), resolution=64)


# ------------------------------------------------------------------------------------------ models and inputs
def seed_weights(module, seed: int):
    """Well-scaled random weights in place: matrices N(0, 1/fan_in), norm scales 1 + N(0, 0.1^2), other
    vectors N(0, 0.05^2), the grid codebook N(0, 1) as the original initialises it. Buffers are kept."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    norms = (torch.nn.GroupNorm, torch.nn.LayerNorm, torch.nn.BatchNorm2d)
    with torch.no_grad():
        for part in module.modules():
            for name, param in part.named_parameters(recurse=False):
                noise = torch.randn(param.shape, generator=generator)
                if name == "embedding":
                    param.copy_(noise)
                elif param.dim() > 1:
                    param.copy_(noise / param[0].numel() ** 0.5)
                elif isinstance(part, norms) and name == "weight":
                    param.copy_(1 + 0.1 * noise)
                else:
                    param.copy_(0.05 * noise)
    return module


def stage1_ddconfig(tiny: bool) -> dict:
    from vpgc.config import load_config

    return {**load_config()["model"]["params"]["ddconfig"], **(TINY_DDCONFIG if tiny else {})}


def landmark_config(tiny: bool) -> dict:
    """The landmark encoder's Encoder arguments (GridFormer7_Model's, or the --tiny ones)."""
    sizes = TINY_LANDMARK if tiny else OFFICIAL_LANDMARK
    return dict(sizes, out_ch=256, num_res_blocks=2, attn_resolutions=[16], in_channels=7, z_channels=256)


def stage1_model(tiny: bool, with_loss: bool = False):
    from vpgc.config import load_config
    from vpgc.model import VQGridModel

    config = load_config()
    config["model"]["params"]["ddconfig"] = stage1_ddconfig(tiny)
    return seed_weights(VQGridModel.from_config(config, with_loss=with_loss), 11)


def stage2_networks(tiny: bool):
    from vpgc.model import PriorTrans, landmark_encoder

    sizes = TINY_LANDMARK if tiny else OFFICIAL_LANDMARK
    encoder = landmark_encoder(sizes["resolution"], sizes["ch"], sizes["ch_mult"])
    return seed_weights(encoder, 12), seed_weights(PriorTrans(), 13)


def make_frames(size: int, count: int = FRAMES):
    """[count, 3, size, size] smooth random images in [-1, 1] with a little fine texture."""
    import torch

    generator = torch.Generator().manual_seed(1)
    coarse = torch.rand(count, 3, 8, 8, generator=generator) * 2 - 1
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (smooth + 0.1 * torch.randn(count, 3, size, size, generator=generator)).clamp(-1, 1)


def make_windows(size: int):
    """uint8 [4, 7, size, size]: the 7-map windows of 4 frames of the original's 68-point drawing of a
    jittering face-sized outline."""
    import torch

    from vpgc import data

    rng = np.random.default_rng(2)
    angle = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    outline = np.stack([0.5 + 0.3 * np.cos(angle), 0.5 + 0.35 * np.sin(angle) * np.cos(3 * angle)], 1)
    maps = [data.landmark_map((outline + 0.01 * rng.standard_normal(outline.shape)) * size, size) for _ in range(4)]
    windows = [data.window(t, FRAMES) for t in range(FRAMES)]
    return torch.from_numpy(np.stack(maps)[np.array(windows)])


# ------------------------------------------------------------------------------------------ measuring
def peak_mib(device: str) -> float:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def best_of(fn, repeats: int, device: str) -> tuple[float, object]:
    """(fastest wall seconds of `repeats` calls, the last result)."""
    import torch

    best, result = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, result


def relative_difference(ours, reference) -> float:
    """max|ours - reference| / max|reference|, the measure of tests/numerics.py."""
    ours, reference = ours.detach().double().cpu(), reference.detach().double().cpu()
    return float((ours - reference).abs().max() / reference.abs().max())


# ------------------------------------------------------------------------------------------ our stages
def stage1_forward(opt, state: dict) -> dict:
    import torch

    model = stage1_model(opt.tiny).to(opt.device).eval()
    frames = make_frames(stage1_ddconfig(opt.tiny)["resolution"]).to(opt.device)
    state["baseline_mib"] = peak_mib(opt.device)
    with torch.inference_mode():
        seconds, (_, _, (_, _, indices)) = best_of(lambda: model(frames), opt.repeats, opt.device)
    return {"seconds": seconds, "indices": indices.cpu().numpy()}


def hard_quantiser(opt, state: dict) -> dict:
    import torch

    from vpgc.model import GridQuantizer

    quantiser = seed_weights(GridQuantizer(), 11).to(opt.device)
    z = torch.randn(FRAMES, 256, 16, 16, generator=torch.Generator().manual_seed(3)).to(opt.device)
    state["baseline_mib"] = peak_mib(opt.device)
    with torch.inference_mode():
        seconds, _ = best_of(lambda: quantiser(z), opt.repeats, opt.device)
    return {"seconds": seconds}


def stage2_inference(opt, state: dict) -> dict:
    """Seconds per frame at fp32, and at each other precision of `opt.precisions` (taking turns with
    fp32, best of `repeats` each) with the frames' agreement with fp32's under "precisions"."""
    from vpgc.reenactment import Reenactor

    reenactor = Reenactor(stage1_model(opt.tiny), *stage2_networks(opt.tiny), device=opt.device)
    windows = make_windows(stage1_ddconfig(opt.tiny)["resolution"])
    state["baseline_mib"] = peak_mib(opt.device)
    order = ["fp32", *(p for p in opt.precisions if p != "fp32")]
    best, frames = dict.fromkeys(order, math.inf), {}
    for repeat in range(opt.repeats):
        for precision in order[::-1] if repeat % 2 else order:
            reenactor.precision = precision
            seconds, frames[precision] = best_of(lambda: reenactor.render_windows(windows), 1, opt.device)
            best[precision] = min(best[precision], seconds)
    reenactor.precision = "fp32"
    reduced = {
        precision: {"seconds": best[precision] / FRAMES, **frame_agreement((frames["fp32"] + 1) / 2, (out + 1) / 2)}
        for precision, out in frames.items()
        if precision != "fp32"
    }
    gflop = count_flops(reenactor.render_windows, windows) / FRAMES / 1e9
    return {"seconds": best["fp32"] / FRAMES, "gflop": gflop, "precisions": reduced}


def stage1_train_step(opt, state: dict) -> dict:
    from vpgc.codebook.train import make_optimizers, train_step

    model = stage1_model(opt.tiny, with_loss=True).to(opt.device)
    optimizers = make_optimizers(model, 4.5e-5)
    frames = make_frames(stage1_ddconfig(opt.tiny)["resolution"], opt.stage1_train_frames).to(opt.device)
    step = model.loss.discriminator_iter_start  # GAN term and adaptive weight on
    state["baseline_mib"] = peak_mib(opt.device)
    seconds, _ = best_of(lambda: train_step(model, optimizers, frames, step), opt.repeats, opt.device)
    return {"seconds": seconds}


def stage2_train_step(opt, state: dict) -> dict:
    from vpgc.model import init_normal
    from vpgc.reenact.train import make_optimizers, train_step

    vq = stage1_model(opt.tiny).to(opt.device).eval().requires_grad_(False)
    encoder, imp = (init_normal(net).to(opt.device) for net in stage2_networks(opt.tiny))
    optimizers = make_optimizers(encoder, imp)
    size = stage1_ddconfig(opt.tiny)["resolution"]
    maps, images = (make_windows(size).float() / 255).to(opt.device), make_frames(size).to(opt.device)
    state["baseline_mib"] = peak_mib(opt.device)
    step = functools.partial(train_step, (encoder, imp), optimizers, vq, maps, images)
    seconds, _ = best_of(step, opt.repeats, opt.device)
    return {"seconds": seconds, "gflop": count_flops(step) / 1e9}  # counted on one more step


# ------------------------------------------------------------------------------------------ the original
class GridNeighbours:
    """Stand-in for sklearn.neighbors.NearestNeighbors where scikit-learn is missing: replays the shipped
    KD-tree table (`vpgc.model.grid.GRID_WINDOW`) for the one query the original makes (the 16x16 cell
    centres against themselves), so the window and its tie order are the original's."""

    def __init__(self, n_neighbors: int, algorithm: str = "auto"):
        self.k = n_neighbors

    def fit(self, points):
        self.points = np.asarray(points, dtype=np.float64)
        return self

    def kneighbors(self, queries, return_distance: bool = True):
        from vpgc.model.grid import GRID_WINDOW

        queries = np.asarray(queries, dtype=np.float64)
        if len(queries) != len(GRID_WINDOW) or not np.array_equal(queries, self.points):
            raise InputError("the scikit-learn stand-in only answers the original's 16x16 grid-window query")
        table = np.asarray(GRID_WINDOW)[:, : self.k]
        distances = np.linalg.norm(queries[:, None] - self.points[table], axis=-1)
        return (distances, table) if return_distance else table


def _stub(name: str, **attributes) -> None:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)  # torch._dynamo probes installed packages
    module.__dict__.update(attributes)
    sys.modules[name] = module


def _missing(name: str) -> bool:
    return name not in sys.modules and importlib.util.find_spec(name) is None


@functools.cache
def original_modules(root: str) -> types.SimpleNamespace:
    """Import the original's Reenactment code here, with runtime shims only (no file edited): `.cuda()`
    returns its tensor or module; `np.float` is `float`; where pytorch_lightning or scikit-learn are not
    installed, a `LightningModule` = `nn.Module` stub and `GridNeighbours`; where torchvision or
    easydict are not, empty stand-ins (the stage-2 trainer's modules import them for code not run
    here). Its loss module is never built (LPIPS would need torchvision), so nothing else is needed."""
    import torch

    reenactment = Path(root) / "Reenactment"
    if not (reenactment / "taming" / "modules" / "vqvae" / "quantize.py").is_file():
        raise InputError(f"{root}: not a checkout of uniBruce/VPGC_Pytorch (no Reenactment/taming)")
    if _missing("einops"):
        raise InputError("the original needs einops (pip install einops)")
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    if not hasattr(np, "float"):
        np.float = float
    if _missing("pytorch_lightning"):
        _stub("pytorch_lightning", LightningModule=torch.nn.Module)
    if _missing("sklearn"):
        _stub("sklearn")
        _stub("sklearn.neighbors", NearestNeighbors=GridNeighbours)
    # imported at the top of its stage-2 trainer's modules, used only by code no bench calls (its VGG
    # loss, its __init__'s config reading)
    if _missing("torchvision"):
        _stub("torchvision", models=types.SimpleNamespace())
    if _missing("easydict"):
        _stub("easydict", EasyDict=dict)
    sys.path.insert(0, str(reenactment))
    spec = importlib.util.spec_from_file_location("vpgc_original_prior", reenactment / "models" / "seq_prior_final.py")
    prior = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prior)
    return types.SimpleNamespace(
        vqgan=importlib.import_module("taming.models.vqgan_slidinggrid"),
        quantize=importlib.import_module("taming.modules.vqvae.quantize"),
        model=importlib.import_module("taming.modules.diffusionmodules.model"),
        prior=prior,
    )


def original_quantiser(original, embedding):
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
        return original.quantize.GridQuantizer(256, 4, embedding=embedding.detach().clone())


def original_stage1(original, ours, ddconfig: dict):
    """The original's VQGridModel (Reenactment copy) with our weights, restored as its `ckpt_path` route
    does: state dict loaded, then the quantiser built from the loaded codebook."""
    state = ours.state_dict()
    with contextlib.redirect_stdout(io.StringIO()):
        model = original.vqgan.VQGridModel(ddconfig, {"target": "torch.nn.Identity"}, 256, 4)
    model.load_state_dict({k: v for k, v in state.items() if k != "quantize.embedding"}, strict=True)
    model.quantize = original_quantiser(original, state["quantize.embedding"])
    return model.eval()


def hard_on_slices(quantiser, cells: int = SLICE_CELLS) -> None:
    """Make the original quantiser's hard lookup (`chamfer_compare`, identical in its stage-1 copy) run on
    slices of `cells` grid cells; each cell's distances and argmin are still computed by its code."""
    import torch

    whole = type(quantiser).chamfer_compare

    def chamfer_compare(z):
        bank, indices, codes = quantiser.c_window, [], []
        try:
            for start in range(0, z.shape[1], cells):
                quantiser.c_window = bank[:, start : start + cells].contiguous()
                index, code = whole(quantiser, z[:, start : start + cells])
                indices.append(index)
                codes.append(code.view(z.shape[0], -1, *code.shape[1:]))
        finally:
            quantiser.c_window = bank
        return torch.cat(indices, 1), torch.cat(codes, 1).flatten(0, 1)

    quantiser.chamfer_compare = chamfer_compare
    quantiser.soft_quant = False  # the stage-1 setting


def original_hard(opt, state: dict) -> dict:
    """The original's hard lookup: memory of one 16-cell slice (and x16), then ours and its sliced run timed
    alternately on one latent."""
    import torch

    from vpgc.model import GridQuantizer

    original = original_modules(opt.original)
    ours = seed_weights(GridQuantizer(), 11)
    theirs = original_quantiser(original, ours.embedding)
    z = torch.randn(FRAMES, 256, 16, 16, generator=torch.Generator().manual_seed(3))
    rows = z.permute(0, 2, 3, 1).reshape(FRAMES, 256, 64, 4)
    before = peak_mib("cpu")
    with torch.no_grad():
        bank, theirs.c_window = theirs.c_window, theirs.c_window[:, :SLICE_CELLS].contiguous()
        type(theirs).chamfer_compare(theirs, rows[:, :SLICE_CELLS].contiguous())
        theirs.c_window = bank
    slice_mib = peak_mib("cpu") - before
    hard_on_slices(theirs)
    times, indices = {"ours": math.inf, "original": math.inf}, {}
    with torch.no_grad():
        for _ in range(opt.repeats):
            for side, quantiser in (("ours", ours), ("original", theirs)):
                seconds, (_, _, (_, _, indices[side])) = best_of(functools.partial(quantiser, z), 1, "cpu")
                times[side] = min(times[side], seconds)
    same = int((indices["ours"].reshape(-1) == indices["original"].reshape(-1)).sum())
    return {**times, "slice_increase_mib": slice_mib, "identical": same, "total": indices["ours"].numel()}


def original_stage1_indices(opt, state: dict) -> dict:
    """Stage-1 encoder -> quant_conv -> hard lookup of the original on the batch our stage-1 forward ran."""
    import torch

    original = original_modules(opt.original)
    ddconfig = stage1_ddconfig(opt.tiny)
    theirs = original_stage1(original, stage1_model(opt.tiny), ddconfig)
    hard_on_slices(theirs.quantize)
    with torch.no_grad():
        indices = theirs.quantize(theirs.quant_conv(theirs.encoder(make_frames(ddconfig["resolution"]))))[2][2]
    ours = torch.from_numpy(state["our_indices"])
    return {"identical": int((indices == ours).sum()), "total": indices.numel()}


def original_stage2_trainer(original, vq, encoder, imp, tiny: bool):
    """The original's `GridFormer7_Model` (isTrain, mean_codebook, Adam(Encoder, 5e-4), Adam(Imp, 1e-4),
    betas (0.5, 0.999)) holding copies of our networks: its training step and, in eval mode, its
    inference parts. Its `__init__` reads a checkpoint and a config
    and moves everything to CUDA, so the instance is assembled here with what that `__init__` builds
    (its VQ with requires_grad on, as there); its own `forward`, `backward_G` and
    `optimize_parameters` then run unchanged."""
    import torch

    grid = importlib.import_module("models.grid_seq_final")
    model = grid.GridFormer7_Model.__new__(grid.GridFormer7_Model)
    torch.nn.Module.__init__(model)
    model.opt = types.SimpleNamespace(lambda_L1=100, batch_internal=FRAMES)
    model.VQ = original_stage1(original, vq, stage1_ddconfig(tiny)).train()
    model.Encoder = original.model.Encoder(**landmark_config(tiny), double_z=False)
    model.Encoder.load_state_dict(encoder.state_dict(), strict=True)
    model.Imp = original.prior.PriorTrans(batch_size=FRAMES, dim=256, depth=4, heads=4, mlp_dim=256, dropout=0.1)
    model.Imp.load_state_dict(imp.state_dict(), strict=True)
    # mean_codebook: each cell's mean codeword, repeated over the 4 frames
    model.codebook = torch.mean(model.VQ.quantize.embedding, 1).unsqueeze(0).repeat(FRAMES, 1, 1)
    model.loss_names_G = ["Feature", "Color", "Temporal"]
    model.criterionL1 = torch.nn.L1Loss()
    model.optimizer_E = torch.optim.Adam(model.Encoder.parameters(), lr=5e-4, betas=(0.5, 0.999))
    model.optimizer_I = torch.optim.Adam(model.Imp.parameters(), lr=1e-4, betas=(0.5, 0.999))
    return model


def compare_stage2(opt, state: dict) -> dict:
    """Stage-2 inference of 4 frames, ours and the original's on the same weights and maps, part by part,
    alternately; best of `repeats` per part and side."""
    import torch

    original = original_modules(opt.original)
    vq = stage1_model(opt.tiny).eval()
    encoder, imp = (net.eval() for net in stage2_networks(opt.tiny))
    theirs = original_stage2_trainer(original, vq, encoder, imp, opt.tiny)
    their_vq, their_encoder, their_imp = (net.eval() for net in (theirs.VQ, theirs.Encoder, theirs.Imp))
    their_prior = theirs.codebook
    maps = make_windows(stage1_ddconfig(opt.tiny)["resolution"]).float() / 255

    def parts(run_encoder, run_imp, soft, decode, prior):
        def run():
            out, seconds = maps, {}
            for name, fn in (("encoder", run_encoder), ("PriorTrans", lambda f: run_imp(f, prior)), ("soft", soft)):
                start = time.perf_counter()
                out = fn(out)
                seconds[name] = time.perf_counter() - start
            start = time.perf_counter()
            out = decode(out)
            seconds["decoder"] = time.perf_counter() - start
            return seconds, out

        return run

    sides = {
        "ours": (
            torch.inference_mode,
            parts(encoder, imp, lambda c: vq.quantize.soft(vq.quant_conv(c)), vq.decode, vq.quantize.prior(FRAMES)),
        ),
        "original": (
            torch.no_grad,
            parts(
                their_encoder,
                their_imp,
                lambda c: their_vq.quantize(their_vq.quant_conv(c))[0],
                their_vq.decode,
                their_prior,
            ),
        ),
    }
    best = {side: {} for side in sides}
    images = {}
    for mode, run in sides.values():  # untimed: first-call set-up (oneDNN primitives, first touch)
        with mode():
            run()
    for repeat in range(opt.repeats):
        for side, (mode, run) in sorted(sides.items(), reverse=repeat % 2 == 1):
            with mode():
                seconds, images[side] = run()
            for name, value in seconds.items():
                best[side][name] = min(best[side].get(name, math.inf), value / FRAMES)
    return {"parts": best, "relative_difference": relative_difference(images["ours"], images["original"])}


def compare_stage2_training(opt, state: dict) -> dict:
    """One stage-2 training iteration, ours (`vpgc.reenact.train.train_step`) and the original's
    `optimize_parameters`, on the same weights and 4 frames, alternately, best of `repeats` each after
    one untimed step each. Both draw the transformer's dropout from the same seed on their first step,
    whose losses are compared. The original also decodes its prediction (the logged Color loss) and
    keeps the stage-1 encoder in autograd; ours computes what its optimisers use."""
    import torch

    from vpgc.reenact.train import make_optimizers, train_step

    original = original_modules(opt.original)
    vq = stage1_model(opt.tiny).eval().requires_grad_(False)
    encoder, imp = stage2_networks(opt.tiny)
    theirs = original_stage2_trainer(original, vq, encoder, imp, opt.tiny)
    optimizers = make_optimizers(encoder, imp)
    size = stage1_ddconfig(opt.tiny)["resolution"]
    maps, images = make_windows(size).float() / 255, make_frames(size)
    theirs.feature_map, theirs.tgt_image = maps, images  # what its set_input leaves for a 4-frame batch

    def their_step():
        theirs.feature_map = maps  # its forward replaces the input with the encoder's output
        theirs.optimize_parameters()
        return float(theirs.loss_G.detach())

    sides = {
        "ours": lambda: train_step((encoder, imp), optimizers, vq, maps, images)["loss"],
        "original": their_step,
    }
    losses = {}
    for side, step in sides.items():
        torch.manual_seed(0)
        losses[side] = step()
    best = dict.fromkeys(sides, math.inf)
    for repeat in range(opt.repeats):
        for side, step in sorted(sides.items(), reverse=repeat % 2 == 1):
            seconds, _ = best_of(step, 1, "cpu")
            best[side] = min(best[side], seconds)
    difference = abs(losses["ours"] - losses["original"]) / abs(losses["original"])
    return {**best, "losses": losses, "relative_difference": difference}


STAGES = {
    "stage1_forward": stage1_forward,
    "hard_quantiser": hard_quantiser,
    "stage2_inference": stage2_inference,
    "stage1_train_step": stage1_train_step,
    "stage2_train_step": stage2_train_step,
    "original_hard": original_hard,
    "original_stage1_indices": original_stage1_indices,
    "compare_stage2": compare_stage2,
    "compare_stage2_training": compare_stage2_training,
}


# ------------------------------------------------------------------------------------------ processes
def _measure(name: str, opt: argparse.Namespace, state: dict) -> dict:
    result = STAGES[name](opt, state)
    result["peak_mib"] = peak_mib(opt.device)
    result["baseline_mib"] = state.get("baseline_mib")
    return result


def run_stage(name: str, opt: argparse.Namespace, state: dict | None = None) -> dict:
    """One stage in a fresh spawned process (in this one with --in_process)."""
    return run_isolated(_measure, name, opt, state, opt.in_process)


# ------------------------------------------------------------------------------------------ report
def _row(stage: str, ours=None, original=None, unit: str = "s", peak=None, note: str = "", ratio=None) -> dict:
    if ratio is None and ours and original:
        ratio = original / ours
    return dict(stage=stage, ours=ours, original=original, ratio=ratio, unit=unit, peak_mib=peak, note=note)


def _baseline(result: dict) -> str:
    return result.get("error", f"baseline {fixed(result.get('baseline_mib'), 0)} MiB")


def precision_rows(result: dict) -> list[tuple[str, float, str]]:
    """(precision, seconds per frame, notes) of each reduced precision of a stage-2 inference result."""
    rows = []
    for precision, measured in result.get("precisions", {}).items():
        notes = (
            f"x{result['seconds'] / measured['seconds']:.2f} vs fp32; frames vs fp32 {measured['psnr_db']:.1f} dB "
            f"PSNR, max {measured['max_levels']} levels"
        )
        rows.append((precision, measured["seconds"], notes))
    return rows


def _identical(result: dict, what: str) -> str:
    return result.get("error", f"{what} {result.get('identical')}/{result.get('total')}")


def build_rows(results: dict) -> list[dict]:
    """Table rows from the stages' results (time in s, or steps/s for training; ratio = original / ours)."""
    forward, hard = results["stage1_forward"], results["hard_quantiser"]
    note = _baseline(forward)
    if "original_stage1_indices" in results:
        note += "; " + _identical(results["original_stage1_indices"], "indices identical to the original's")
    rows = [_row("stage-1 forward, 4 frames", forward.get("seconds"), peak=forward.get("peak_mib"), note=note)]
    original, note = results.get("original_hard", {}), _baseline(hard)
    if original:
        slice_mib = original.get("slice_increase_mib", 0)
        note += (
            f"; original on {SLICE_CELLS}-cell slices: one batch at once needs {ORIGINAL_HARD_BYTES / GIB:.0f} GiB "
            f"(4 x [4,256,64,4096,4] float32), measured 16 x {slice_mib:.0f} MiB = {16 * slice_mib / 1024:.1f} GiB; "
            + _identical(original, "indices identical")
        )
    ratio = original["original"] / original["ours"] if "ours" in original else None  # timed in one process
    seconds, peak = hard.get("seconds"), hard.get("peak_mib")
    rows.append(_row("hard grid quantiser, 4 frames", seconds, original.get("original"), "s", peak, note, ratio))
    inference, label = results["stage2_inference"], "stage-2 inference per frame (Reenactor)"
    rows.append(_row(label, inference.get("seconds"), peak=inference.get("peak_mib"), note=_baseline(inference)))
    for precision, reduced_seconds, notes in precision_rows(inference):
        rows.append(_row(f"{label} [{precision}]", reduced_seconds, peak=inference.get("peak_mib"), note=notes))
    compare = results.get("compare_stage2")
    if compare and "error" in compare:
        rows.append(_row("stage-2 inference, ours vs original", note=compare["error"]))
    elif compare:
        ours, theirs = compare["parts"]["ours"], compare["parts"]["original"]
        rows += [_row(f"stage-2 {part} per frame", ours[part], theirs[part]) for part in ours]
        difference = f"max abs difference / max abs original = {compare['relative_difference']:.1e}"
        rows.append(
            _row("stage-2 inference per frame (sum)", sum(ours.values()), sum(theirs.values()), note=difference)
        )
    for name, label in (
        ("stage1_train_step", f"stage-1 training step (G + D, LPIPS), {results['stage1_train_frames']} frames"),
        ("stage2_train_step", "stage-2 training step"),
    ):
        result = results[name]
        steps = 1 / result["seconds"] if "seconds" in result else None
        note = result.get("error", f"{fixed(result.get('seconds'), 1)} s per step; " + _baseline(result))
        rows.append(_row(label, steps, unit="steps/s", peak=result.get("peak_mib"), note=note))
    training = results.get("compare_stage2_training")
    if training and "error" in training:
        rows.append(_row("stage-2 training step beside the original", note=training["error"]))
    elif training:
        note = f"first step's loss: |ours - original| / |original| = {training['relative_difference']:.1e}"
        label = "stage-2 training step beside the original"
        rows.append(_row(label, training["ours"], training["original"], note=note))
    return rows


def standard_rows(results: dict, device: str) -> list[BenchRow]:
    """The stages as common.bench rows; a stage that failed keeps its error as the note."""
    stages = (
        ("stage1_forward", "stage-1 reconstruction per frame (4-frame batch)", "inference", "frame", FRAMES),
        ("hard_quantiser", "hard grid quantiser, 4 frames", "other", "call", 1),
        ("stage2_inference", "stage-2 inference per frame (Reenactor)", "inference", "frame", 1),
        ("stage1_train_step", f"stage-1 training step, {results['stage1_train_frames']} frames", "training", "step", 1),
        ("stage2_train_step", "stage-2 training step, 4 frames", "training", "step", 1),
    )
    rows = []
    for name, label, kind, unit, per in stages:
        result = results[name]
        seconds = result["seconds"] / per if "seconds" in result else None
        peak, gflop, note = result.get("peak_mib"), result.get("gflop"), result.get("error", "")
        rows.append(BenchRow("vpgc", label, kind, seconds, unit, peak, gflop, note, device))
        if name == "stage2_inference":
            for precision, reduced_seconds, notes in precision_rows(result):
                stage = f"{label} [{precision}]"
                rows.append(BenchRow("vpgc", stage, kind, reduced_seconds, unit, peak, gflop, notes, device))
    return rows


@cli_main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vpgc.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one timed call per stage instead of two")
    parser.add_argument("--original", metavar="DIR", help="a checkout of uniBruce/VPGC_Pytorch to time side by side")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    parser.add_argument(
        "--stage1_train_frames",
        type=int,
        default=FRAMES,
        help="frames of the stage-1 training batch (4 as trained; 4 at 512x512 needs about 20 GB of memory on CPU)",
    )
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=PRECISIONS,
        help="also time stage-2 inference at these (default: fp32 bf16 on the CPU, fp32 fp16 on a GPU)",
    )
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # 64x64 networks: the module's test
    parser.add_argument("--in_process", action="store_true", help=argparse.SUPPRESS)  # no child processes
    add_device_argument(parser)
    opt = parser.parse_args(argv)
    opt.device = str(resolve_device(opt.device))
    opt.repeats = 1 if opt.quick else 2
    opt.precisions = opt.precisions or ["fp32", "fp16" if opt.device.startswith("cuda") else "bf16"]
    for precision in opt.precisions:
        check_precision(precision, opt.device)
    if opt.original is not None:
        if not Path(opt.original, "Reenactment").is_dir():
            raise InputError(f"--original {opt.original}: not a checkout of uniBruce/VPGC_Pytorch (no Reenactment/)")
        if not opt.device.startswith("cpu"):
            raise InputError("--original runs on the CPU only (the stand-ins replace .cuda())")
        opt.original = str(Path(opt.original).resolve())

    results = {"stage1_train_frames": opt.stage1_train_frames}
    for name in ("stage1_forward", "hard_quantiser", "stage2_inference"):
        results[name] = run_stage(name, opt)
    if opt.original:
        indices = results["stage1_forward"].pop("indices", None)
        if indices is not None:
            results["original_stage1_indices"] = run_stage("original_stage1_indices", opt, {"our_indices": indices})
        results["original_hard"] = run_stage("original_hard", opt)
        results["compare_stage2"] = run_stage("compare_stage2", opt)
    results["stage1_forward"].pop("indices", None)
    for name in ("stage1_train_step", "stage2_train_step"):
        results[name] = run_stage(name, opt)
    if opt.original:
        results["compare_stage2_training"] = run_stage("compare_stage2_training", opt)

    import torch

    size = stage1_ddconfig(opt.tiny)["resolution"]
    header = (
        f"VPGC bench: {size}x{size}, seeded random weights, {opt.device}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, best of {opt.repeats}"
    )
    rows = build_rows(results)
    print(side_by_side_table(rows, header))
    if opt.json:
        write_rows_json(opt.json, standard_rows(results, opt.device), header, {"rows": rows, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
