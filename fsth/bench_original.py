"""Our FSTH beside the original re-implementation (bowen-xiao96/reenact, `face/`) on one machine.

    python -m fsth.bench --original DIR        (DIR: a checkout of that repository, or its face/ folder)

The original is imported from DIR here and nowhere else. It is written for CUDA; on the CPU its
code runs unchanged once `.cuda()` of tensors and modules is the identity (`_cuda_calls_stay_on_cpu`).
Both sides get the same weights (our state dicts load into its networks: same names) and the same
inputs, and are timed taking turns, best of `repeats` after an untimed warm-up each, so that load
from other processes slows both alike:

* G forward per frame at batch 1 and E over T frames, eval mode, no gradient;
* one meta-training iteration: `fsth.meta_train.train_step` against the loop body of the
  original's own `meta_train.main()`, VGG19 / VGGFace with the same random weights on both sides.
  main() runs with its config constants set for the bench (batch 1, no workers, one epoch per
  iteration, no display / check images / checkpoints), its `VoxCeleb` replaced by a one-episode
  dataset that runs our iteration while it hands out its item (so the two alternate), its
  `initialize_param` followed by loading our weights, in a temporary working directory holding a
  copy of its config.py (which main() copies into log/<run>/).

The outputs of the first call of each side (same weights, same inputs) are compared: they agree
when within common.bench.PARITY_TOLERANCE of the original's largest magnitude (tests/numerics.py FORWARD).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from common.bench import BenchRow, Comparison, best_alternating, relative_difference, worst_difference
from common.errors import InputError
from common.vgg.torch_vgg import VGGFeatures
from fsth.config import load_config
from fsth.loss import Loss_EG_meta
from fsth.meta_train import LOG_COLUMNS, train_step
from fsth.network import Discriminator, Embedder, Generator

REQUIRED_FILES = ("config.py", "meta_train.py", "model/network.py", "model/loss.py", "vgg_model/vgg_network.py")
TOP_LEVEL_NAMES = ("config", "meta_train", "model", "dataset", "vgg_model")  # what the original imports as
VGG_CLASSES = {"vgg19": 1000, "vggface": 2622}
LOSS_NAMES = LOG_COLUMNS[3:12]  # L_VGG19 ... L_DSC2: what one iteration computes on both sides
ORIGINAL_LOSS_ORDER = ("L_EG", "L_VGG19", "L_VGGFace", "L_CNT", "L_ADV", "L_FM", "L_MCH")  # its Loss_EG_meta's tuple


def find_face_dir(path: str | os.PathLike, device_type: str = "cpu") -> Path:
    """The original's `face/` folder in `path` (the repository root or that folder itself); the
    side-by-side run is CPU-only."""
    if device_type != "cpu":
        raise InputError(f"--original runs on the CPU only, not on {device_type}")
    root = Path(path)
    for face in (root / "face", root):
        if all((face / name).is_file() for name in REQUIRED_FILES):
            return face
    raise InputError(
        f"--original {path}: not a checkout of bowen-xiao96/reenact (needs face/{', face/'.join(REQUIRED_FILES)})"
    )


@contextlib.contextmanager
def original_modules(face: Path):
    """The original's `config`, `model.network`, `model.loss` and `meta_train` modules, imported
    from `face` as the original imports them (top-level names); removed again afterwards, with
    the environment variable its meta_train sets at import."""
    taken = sorted(name for name in sys.modules if name.split(".")[0] in TOP_LEVEL_NAMES)
    if taken:
        raise InputError(f"cannot import the original: modules {', '.join(taken)} are already imported")
    saved_cuda_devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    sys.path.insert(0, str(face))
    try:
        names = {"config": "config", "network": "model.network", "loss": "model.loss", "meta_train": "meta_train"}
        modules = SimpleNamespace(**{key: importlib.import_module(name) for key, name in names.items()})
        if Path(modules.config.__file__).parent != face:
            raise InputError(f"'config' was imported from {modules.config.__file__}, not from {face}")
        yield modules
    finally:
        sys.path.remove(str(face))
        for name in [name for name in sys.modules if name.split(".")[0] in TOP_LEVEL_NAMES]:
            del sys.modules[name]
        if saved_cuda_devices is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved_cuda_devices


@contextlib.contextmanager
def _cuda_calls_stay_on_cpu():
    """Tensor.cuda and Module.cuda return their object unchanged (the original calls them everywhere)."""
    saved = torch.Tensor.cuda, torch.nn.Module.cuda
    torch.Tensor.cuda = torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda, torch.nn.Module.cuda = saved


@contextlib.contextmanager
def _settings(module, **values):
    """Module-level constants of the original's config.py replaced while the block runs."""
    saved = {name: getattr(module, name) for name in values}
    for name, value in values.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


def write_vgg_files(folder: Path) -> dict[str, str]:
    """Random VGG19 / VGGFace weights in the original's layout, which both losses read. Its
    VGGNetwork loads strictly, so the fc layers it never uses for features are there too, as
    zeros stored as one-element views (the files stay a few tens of MB)."""
    files = {}
    for arch, classes in VGG_CLASSES.items():
        state = {k.replace("features.", "conv_layers."): v for k, v in VGGFeatures(arch).state_dict().items()}
        for index, (inputs, outputs) in zip((0, 3, 6), ((512 * 7 * 7, 4096), (4096, 4096), (4096, classes))):
            state[f"linear_layers.{index}.weight"] = torch.zeros(1).expand(outputs, inputs)
            state[f"linear_layers.{index}.bias"] = torch.zeros(1).expand(outputs)
        files[f"{arch}_weight_file"] = str(folder / f"{arch}.pth")
        torch.save(state, files[f"{arch}_weight_file"])
    return files


class _OneEpisode(torch.utils.data.Dataset):
    """The one-video dataset the original's main() iterates over, one item per epoch. Handing out
    the item first runs `ours` (our iteration, timed here), so that the two sides alternate; the
    moments around it delimit the original's iterations."""

    def __init__(self, item: tuple, ours: Callable[[], None]):
        self.item, self.ours = item, ours
        self.our_seconds: list[float] = []
        self.handed_out: list[float] = []  # when the original's next iteration started
        self.asked: list[float] = []  # when the original's previous iteration ended

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> tuple:
        self.asked.append(time.perf_counter())
        self.ours()
        self.our_seconds.append(time.perf_counter() - self.asked[-1])
        self.handed_out.append(time.perf_counter())
        return self.item

    def original_seconds(self, finished: float) -> list[float]:
        return [end - start for start, end in zip(self.handed_out, [*self.asked[1:], finished])]


def compare_training(original, nets: dict, cfg: Mapping[str, Any], inputs: tuple, repeats: int) -> Comparison:
    """Our train_step against the original's meta_train.main() loop, `repeats` + 1 iterations
    each from the same weights (`nets`: our G, E, D with one training video), batch 1."""
    states = {name: copy.deepcopy(net.state_dict()) for name, net in nets.items()}
    G, E, D = nets["G"], nets["E"], nets["D"]
    for net in nets.values():
        net.train()
    loss = Loss_EG_meta.from_config(cfg).eval()
    optim_EG = torch.optim.Adam([*E.parameters(), *G.parameters()], lr=cfg["lr_EG"], betas=cfg["adam_betas"])
    optim_D = torch.optim.Adam(D.parameters(), lr=cfg["lr_D"], betas=cfg["adam_betas"])
    video_idx, x, y, x_t, y_t = inputs
    batch = (torch.tensor([video_idx]), x[None], y[None], x_t[None], y_t[None])
    ours_first: dict[str, torch.Tensor] = {}

    def record_e_hat(module, args, out) -> None:
        ours_first.setdefault("e_hat", out.detach().clone())

    record_e = E.register_forward_hook(record_e_hat)

    def our_iteration() -> None:
        values, x_hat = train_step(E, G, D, loss, optim_EG, optim_D, batch, torch.device("cpu"))
        ours_first.setdefault("x_hat", x_hat.clone())
        for name in LOSS_NAMES:
            ours_first.setdefault(name, torch.tensor(values[name]))

    episodes = _OneEpisode(inputs, our_iteration)
    theirs = _run_original_main(original, episodes, states, cfg, repeats + 1)
    finished = time.perf_counter()
    record_e.remove()
    original_seconds = episodes.original_seconds(finished)
    worst, name = worst_difference(ours_first, theirs)
    stage = f"meta-training step, batch 1, T = {x.shape[0]}"
    return Comparison(stage, "training", "step", min(episodes.our_seconds[1:]), min(original_seconds[1:]), worst, name)


def _run_original_main(original, episodes: _OneEpisode, states: dict, cfg: Mapping[str, Any], iterations: int):
    """Runs the original's meta_train.main() for `iterations` iterations over `episodes`, its
    G, E, D holding `states`; returns the first iteration's outputs (x_hat, e_hat, the losses)."""
    mt, first = original.meta_train, {}
    initialize = mt.initialize_param
    wanted = {"Generator": "G", "Embedder": "E", "Discriminator": "D"}

    def initialize_then_load(net):  # main() initialises each network right after building it
        count = initialize(net)
        net.load_state_dict(states[wanted[type(net).__name__]], strict=True)
        return count

    def record(module, args, out) -> None:
        if isinstance(module, original.network.Generator):
            first.setdefault("x_hat", out.detach().clone())
        elif isinstance(module, original.network.Embedder):
            first.setdefault("e_hat", out.detach().clone())
        elif isinstance(module, original.loss.Loss_EG_meta):
            for name, value in zip(ORIGINAL_LOSS_ORDER, out):
                first.setdefault(name, value.detach().clone())

    dsc, dsc_values = mt.Loss_DSC, []

    def recorded_dsc(score_hat, score):
        dsc_values.append(dsc(score_hat, score))
        return dsc_values[-1]

    settings = {
        **{name: cfg[name] for name in ("G_config", "E_config", "V_config", "embedding_dim", "input_size")},
        **{name: cfg[name] for name in ("vgg19_weight_file", "vggface_weight_file", "metatrain_T")},
        **dict(metatrain_batch_size=1, num_worker=0, dataset_shuffle=False, max_epoch=iterations),
        **dict.fromkeys(("display_every", "check_every", "save_every"), 10**9),
    }
    patched = dict(
        VoxCeleb=lambda *args, **kwargs: episodes, initialize_param=initialize_then_load, Loss_DSC=recorded_dsc
    )
    with tempfile.TemporaryDirectory() as run_dir, contextlib.ExitStack() as stack:
        # main() writes log/<run>/ and copies config.py from its working directory
        shutil.copy(Path(original.config.__file__), Path(run_dir) / "config.py")
        stack.callback(os.chdir, os.getcwd())
        os.chdir(run_dir)
        stack.callback(torch.nn.modules.module.register_module_forward_hook(record).remove)
        stack.enter_context(_settings(original.config, **settings))
        stack.enter_context(_settings(mt, **patched))
        stack.enter_context(_cuda_calls_stay_on_cpu())
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))  # it prints every network
        stack.enter_context(warnings.catch_warnings())  # its DataLoader asks for pinned memory, CUDA's
        warnings.filterwarnings("ignore", message=".*pin_memory.*no accelerator")
        mt.main()
    first["L_DSC1"], first["L_DSC2"] = dsc_values[0].detach(), dsc_values[1].detach()
    return first


def compare_forward(original, nets: dict, cfg: Mapping[str, Any], inputs: tuple, repeats: int) -> list[Comparison]:
    """G at batch 1 and E over the T frames of `inputs`, ours against the original's networks
    holding our weights, eval mode, no gradient."""
    _, x, y, _, y_t = inputs
    theirs = {
        "G": original.network.Generator(cfg["G_config"], cfg["embedding_dim"], cfg["input_normalize"]),
        "E": original.network.Embedder(cfg["E_config"], cfg["embedding_dim"]),
    }
    for name, net in theirs.items():
        net.load_state_dict(nets[name].state_dict(), strict=True)
        net.eval()
        nets[name].eval()
    e = torch.randn(1, cfg["embedding_dim"], generator=torch.Generator().manual_seed(1))
    stages = {
        "G forward, batch 1": (
            "frame",
            lambda: nets["G"](y_t[None], e),
            lambda: theirs["G"](y_t[None], e),
        ),
        f"E forward, {x.shape[0]} frames": (
            "call",
            lambda: nets["E"](x, y),
            lambda: theirs["E"](torch.cat((x, y), dim=1)),
        ),
    }
    out = []
    with torch.no_grad():
        for stage, (unit, ours, original_call) in stages.items():
            best, first = best_alternating({"ours": ours, "original": original_call}, repeats)
            worst = relative_difference(first["ours"], first["original"])
            out.append(Comparison(stage, "inference", unit, best["ours"], best["original"], worst, "output"))
    return out


def random_inputs(size: int, T: int, seed: int = 0) -> tuple:
    """(video index 0, T frames, their landmark images, target frame, its landmark image) in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return (
        0,
        torch.rand(T, 3, size, size, generator=generator),
        torch.rand(T, 3, size, size, generator=generator),
        torch.rand(3, size, size, generator=generator),
        torch.rand(3, size, size, generator=generator),
    )


def compare(face: Path, repeats: int, **overrides) -> list[Comparison]:
    """Every stage, ours against the original in `face`, at fsth.config.DEFAULTS with `overrides`
    (layer configs, embedding_dim, input_size, metatrain_T: tests use small ones)."""
    with tempfile.TemporaryDirectory() as folder:
        cfg = load_config(None, **overrides, **write_vgg_files(Path(folder)))
        torch.manual_seed(0)
        dim = cfg["embedding_dim"]
        nets = {
            "G": Generator(cfg["G_config"], dim),
            "E": Embedder(cfg["E_config"], dim),
            "D": Discriminator(cfg["V_config"], 1, dim),
        }
        inputs = random_inputs(cfg["input_size"], cfg["metatrain_T"])
        with original_modules(face) as original:
            return [
                *compare_forward(original, nets, cfg, inputs, repeats),
                compare_training(original, nets, cfg, inputs, repeats),
            ]


def table(comparisons: list[Comparison], repeats: int) -> list[str]:
    """Lines for fsth.bench's printout: per stage ours' speed-up, both times and the agreement."""
    if not comparisons:
        return []
    lines = [f"side by side with the original, alternating, best of {repeats}; speed-up = original time / ours"]
    for c in comparisons:
        lines.append(
            f"{c.stage:<38} {c.speedup:>6.2f}x  (original {c.original:.3g} s, ours {c.ours:.3g} s per {c.unit}); "
            f"outputs {_agreement(c)}"
        )
    return lines


def _agreement(c: Comparison) -> str:
    verdict = "agree" if c.agrees else "DIFFER"
    return f"{verdict}: worst {c.worst:.2g} of max |original| ({c.worst_output})"


def bench_rows(comparisons: list[Comparison], repeats: int, device: str = "cpu") -> list[BenchRow]:
    """common.bench rows of both sides of every stage, the speed-up and agreement in the notes."""
    rows = []
    for c in comparisons:
        notes = (
            f"ours {c.speedup:.2f}x faster than the original (alternating, best of {repeats}); outputs {_agreement(c)}"
        )
        for side, seconds in (("original", c.original), ("ours", c.ours)):
            rows.append(
                BenchRow(
                    "fsth", f"{c.stage} [{side}, side by side]", c.kind, seconds, c.unit, notes=notes, device=device
                )
            )
    return rows
