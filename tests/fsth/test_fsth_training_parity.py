"""fsth.loss and fsth.meta_train.train_step against one recorded meta-training step of the original.

Recording (tests/fsth/data/original_training_step.npz), made once outside this repository:

* Code: `face/` of github.com/bowen-xiao96/reenact at commit
  a2eb8d3d74e37c519ec3f36f50074f005e35d12d, run unmodified except for these patches: every
  `.cuda()` in `meta_train.py` removed (CPU); `from dataset.voxceleb import VoxCeleb` replaced by
  a stub dataset of 3 "videos" whose items 0 and 1 are the two episodes below; right after
  `initialize_param(D)`, the G, E, D states below loaded (strict); the loop's
  `total_step += 1` replaced by a dump of the step's locals and `return`; in
  `vgg_model/vgg_network.py` the conv widths of `vgg16_config`/`vgg19_config` set to 4, 4 | 6, 6 |
  8 ... (same block structure, so the same `conv_layers` indices) and the unused fc layers shrunk
  to 8 -> 16 -> 16 -> classes; `config.py` extended with the SMALL layer configs of conftest.py,
  embedding_dim 16, input_size 32, metatrain_batch_size 2, metatrain_T 2, dataset_shuffle False,
  num_worker 0 and the two VGG files. Loss weights, learning rates and Adam betas are the
  original's defaults (identical to fsth.config.DEFAULTS). `meta_train.main()` then ran its first
  iteration, with torch 2.13.0+cpu, numpy float32 on an x86-64 CPU.
* G, E, D (3 videos): the weights and spectral-norm u, v of data/original_outputs.npz (float16,
  used as float32), except D.b = -13.25 so that real and fake scores are near 0 and both hinge
  terms of L_DSC are active.
* Inputs: x, y (the target frame and its landmarks, batch 2), xs, ys (the T = 2 embedder frames
  per episode, (b T) flattened) and video indices idx = [2, 0], all from original_outputs.npz.
* VGG19 / VGGFace: tiny random Caffe-layout networks, stored here as `vgg/<name>/conv_layers.*`
  (float16): per conv, torch.Generator seeded 100 (VGG19) / 101 (VGGFace), weight =
  randn * sqrt(2 / (9 in_channels)), bias = randn * 10, in layer order; both sides load these.
* Recorded: the logged values (`loss/*`: L_VGG19 ... D_SCORE_HAT as `.item()`), x_hat and
  e_hat, for every parameter of G, E, D the sums of |delta| (after - before the step) and of
  |grad| (G, E: the gradient of L_EG + L_DSC1; D: of L_DSC2, which is what `.grad` holds after
  the step), full deltas and gradients of a few tensors (`delta/*`, `grad/*`) and every
  spectral-norm u, v after the step (`after/*`).

The step draws no random numbers (no dropout; spectral norm's power iteration starts from the
stored u, v; Adam is deterministic), so nothing needs seeding beyond the recorded tensors.
Adam's first step moves E and G by lr * sign(grad) (beta1 = 0), so their deltas check signs
only; the gradients check the values. D's deltas (two Adam steps) depend on both gradients.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numerics import FORWARD, mismatch

from fsth.config import load_config
from fsth.loss import Loss_EG_meta
from fsth.meta_train import LOG_COLUMNS, train_step
from fsth.network import Discriminator, Embedder, Generator

LOGGED = LOG_COLUMNS[3:]  # the values one step logs (after epoch, step, total_step)
D_BIAS = -13.25


def _float(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float32) if a.dtype == np.float16 else a)


@pytest.fixture(scope="module")
def recording(data_dir) -> dict[str, np.ndarray]:
    with np.load(data_dir / "original_training_step.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def start(data_dir) -> dict[str, torch.Tensor]:
    """Weights and inputs of the recording (shared with test_fsth_network.py)."""
    with np.load(data_dir / "original_outputs.npz") as data:
        return {k: _float(data[k]) for k in data.files}


@pytest.fixture(scope="module")
def cfg(small):
    return load_config(None, **small, input_size=32, metatrain_T=2, metatrain_batch_size=2)


@pytest.fixture(scope="module")
def vgg_files(recording, tiny_vgg_files, tmp_path_factory) -> dict:
    """{'vgg19': (arch, file), 'vggface': (arch, file)} with the recorded VGG weights."""
    folder, out = tmp_path_factory.mktemp("parity_vgg"), {}
    for name, (arch, _) in tiny_vgg_files.items():
        state = {k.split("/")[2]: _float(v) for k, v in recording.items() if k.startswith(f"vgg/{name}/")}
        torch.save(state, folder / f"{name}.pth")
        out[name] = (arch, folder / f"{name}.pth")
    return out


def run_step(start, cfg, vgg_files, perturb: float = 1.0, mch_scale: float = 1.0) -> dict[str, torch.Tensor]:
    """Our train_step from the recorded state; `perturb` scales the first output channel of G's
    first convolution, `mch_scale` the matching-loss weight."""
    dim = cfg["embedding_dim"]
    nets = {
        "G": Generator(cfg["G_config"], dim),
        "E": Embedder(cfg["E_config"], dim),
        "D": Discriminator(cfg["V_config"], 3, dim),
    }
    before = {}
    for name, net in nets.items():
        state = {k[2:]: v.clone() for k, v in start.items() if k.startswith(f"{name}/")}
        if name == "D":
            state["b"] = torch.tensor(D_BIAS)
        if name == "G":
            state["layers.0.conv_r1.weight_orig"][0] *= perturb
        net.load_state_dict(state, strict=True)
        net.train()
        before.update({f"{name}/{k}": p.detach().clone() for k, p in net.named_parameters()})
    loss = Loss_EG_meta(
        cfg["vgg19_layers"],
        cfg["vggface_layers"],
        vgg_files["vgg19"][1],
        vgg_files["vggface"][1],
        cfg["vgg19_loss_weight"],
        cfg["vggface_loss_weight"],
        cfg["fm_loss_weight"],
        cfg["mch_loss_weight"] * mch_scale,
        normalize=cfg["input_normalize"],
        vgg19_arch=vgg_files["vgg19"][0],
        vggface_arch=vgg_files["vggface"][0],
    ).eval()
    G, E, D = nets["G"], nets["E"], nets["D"]
    optim_EG = torch.optim.Adam(list(E.parameters()) + list(G.parameters()), lr=cfg["lr_EG"], betas=cfg["adam_betas"])
    optim_D = torch.optim.Adam(D.parameters(), lr=cfg["lr_D"], betas=cfg["adam_betas"])
    T = cfg["metatrain_T"]
    batch = (
        start["idx"],
        start["xs"].view(2, T, 3, 32, 32),
        start["ys"].view(2, T, 3, 32, 32),
        start["x"],
        start["y"],
    )
    values, x_hat = train_step(E, G, D, loss, optim_EG, optim_D, batch, torch.device("cpu"))
    out = {f"loss/{k}": torch.tensor(v) for k, v in values.items()}
    out["x_hat"] = x_hat
    for name, net in nets.items():
        for k, p in net.named_parameters():
            key = f"{name}/{k}"
            delta = p.detach() - before[key]
            out[f"delta_abs_sum/{key}"] = delta.double().abs().sum()
            out[f"grad_abs_sum/{key}"] = p.grad.double().abs().sum()
            out[f"delta/{key}"], out[f"grad/{key}"] = delta, p.grad.detach().clone()
        for k, v in net.state_dict().items():
            if k.endswith(("weight_u", "weight_v")):
                out[f"after/{name}/{k}"] = v
    return out


# Parameters whose gradient is zero in exact arithmetic: conv biases followed by an instance
# normalisation (the I layer after a D block in G, AdaIN in G's BA / U blocks, D's B block) and
# the attention key biases (softmax ignores a constant added to every key). Their recorded
# gradients are float32 rounding noise (sums of |grad| <= 8.3e-6; every other tensor's >= 1.4e-3),
# which Adam's normalised step turns into noise of up to lr per element, in the original as in
# ours: so only "their gradient is null" is checked, not their deltas.
NULL_GRADIENT = frozenset(
    [f"G/layers.{i}.{c}.bias" for i in (0, 2, 5) for c in ("conv_l", "conv_r2")]
    + [f"G/layers.{i}.{c}.bias" for i in (7, 8) for c in ("conv_1", "conv_2")]
    + [f"G/layers.{i}.conv_r1.bias" for i in (9, 10, 12)]
    + ["D/layers.4.conv_1.bias", "D/layers.4.conv_2.bias"]
    + ["G/layers.4.key_conv.bias", "G/layers.11.key_conv.bias", "E/layers.2.key_conv.bias", "D/layers.2.key_conv.bias"]
)
NULL_BOUND = 1e-4  # sum of |grad| of a NULL_GRADIENT tensor

# Adam's step is lr * g / (|g| + 1e-8) (E, G: one step; D: two): for the smallest recorded
# gradients (|g| ~ 1e-5) the 1e-8 turns a rounding error of g into up to ~1e-3 of lr.
# Measured worst case 3.7e-5 of max |delta| (ATEN_CPU_CAPABILITY=default, one thread); a 1%
# change of a weight or a loss weight moves deltas by more than 2e-2 of it.
DELTA = 1e-3
# A sum of |delta| over a tensor counts ~lr for each element, less for an element whose |g| is
# near 1e-8, where rounding moves it by up to lr: G's BA convolutions (layers 7, 8) have about 7%
# of such elements (sum |delta| = 0.93 lr * numel); measured worst case 1.7e-3 (ATEN default,
# one thread), so 1e-2. The gradient sums and full tensors carry the precise checks.
DELTA_SUM = 1e-2


def mismatches(ours: dict, recording: dict) -> dict[str, str]:
    """Every recorded quantity that ours does not reproduce, with the reason."""
    out = {}
    for key, expected in recording.items():
        if key.startswith("vgg/") or key == "e_hat":
            continue
        kind, _, param = key.partition("/")
        if kind in ("delta", "delta_abs_sum", "grad", "grad_abs_sum") and param in NULL_GRADIENT:
            if kind == "grad_abs_sum" and not (expected <= NULL_BOUND and float(ours[key]) <= NULL_BOUND):
                out[key] = f"not a null gradient: {float(ours[key]):.3g} (recorded {float(expected):.3g})"
            continue
        rel = {"delta": DELTA, "delta_abs_sum": DELTA_SUM}.get(kind, FORWARD)
        problem = mismatch(ours[key], expected, rel)
        if problem is not None:
            out[key] = problem
    return out


@pytest.fixture(scope="module")
def ours(start, cfg, vgg_files):
    return run_step(start, cfg, vgg_files)


def test_config_defaults_are_the_recorded_originals(cfg):
    """The loss weights, learning rates and betas of the recording (the original's config.py)."""
    expected = dict(vgg19_loss_weight=1e-2, vggface_loss_weight=2e-3, fm_loss_weight=1e1, mch_loss_weight=8e1)
    expected.update(lr_EG=5e-5, lr_D=2e-4, adam_betas=(0.0, 0.999))
    expected.update(vgg19_layers=(0, 5, 10, 19, 28), vggface_layers=(0, 5, 10, 17, 24))
    assert {k: tuple(cfg[k]) if isinstance(cfg[k], list) else cfg[k] for k in expected} == expected


def test_recording_is_complete(recording, start):
    assert {f"loss/{k}" for k in LOGGED} <= set(recording)
    params = {k.split("/", 1)[1] for k in recording if k.startswith("grad_abs_sum/")}
    assert len(params) == 126 and NULL_GRADIENT <= params
    assert {p for p in params if recording[f"grad_abs_sum/{p}"] <= NULL_BOUND} == NULL_GRADIENT
    assert min(float(recording[f"grad_abs_sum/{p}"]) for p in params - NULL_GRADIENT) > 1e-3
    vectors = {k.replace("after_train/", "after/") for k in start if k.startswith("after_train/")}
    assert {k for k in recording if k.startswith("after/")} == vectors


def test_step_matches_the_original(ours, recording):
    """Every logged value, x_hat, the u, v after the step and the gradients to `numerics.FORWARD`
    of each quantity's magnitude (measured worst cases, ATEN_CPU_CAPABILITY=default and one
    thread: 3.5e-6 for L_ADV, a mean of scores whose terms are 100 times larger; 3.1e-6 for a
    gradient), the parameter deltas to DELTA and DELTA_SUM."""
    assert all(float(recording[f"loss/{k}"]) != 0 for k in LOGGED)
    problems = mismatches(ours, recording)
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())


def test_a_perturbed_weight_fails(start, cfg, vgg_files, recording):
    """One output channel of G's first convolution scaled by 1.01: x_hat, that convolution's u,
    v and the gradients of G and E leave the tolerance."""
    problems = mismatches(run_step(start, cfg, vgg_files, perturb=1.01), recording)
    must = {"x_hat", "after/G/layers.0.conv_r1.weight_u", "after/G/layers.0.conv_r1.weight_v"}
    must |= {f"grad/{k}" for k in ("G/P.weight", "G/layers.12.conv_r2.weight_orig", "E/layers.3.conv_r2.weight_orig")}
    assert must <= set(problems), must - set(problems)


@pytest.mark.parametrize("loss_weight", ["vgg19", "vggface", "fm", "mch"])
def test_a_perturbed_loss_weight_fails(start, cfg, vgg_files, recording, loss_weight):
    """One loss weight scaled by 1.01: L_EG or L_CNT and gradients of G or E leave the tolerance."""
    key = f"{loss_weight}_loss_weight"
    problems = mismatches(run_step(start, {**cfg, key: cfg[key] * 1.01}, vgg_files), recording)
    logged = {"loss/L_EG", "loss/L_CNT"} if loss_weight.startswith("vgg") else {"loss/L_EG"}
    assert logged & set(problems), sorted(problems)
    assert any(k.startswith(("grad/G/", "grad/E/")) for k in problems), sorted(problems)
