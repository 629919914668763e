"""Our VPGC networks reproduce the original code's outputs, stored in data/original_outputs.npz.

How the recording was made (scripts kept outside the repository, see the end of this docstring):

* Original: uniBruce/VPGC_Pytorch at 5f1c0089fa90 (5f1c0089fa90ce175f17113cd72665477d14cec2), its files
  written out of git to a scratch folder and run there on CPU with torch 2.13.0+cpu, numpy 1.26 and, in
  a scratch --target folder, scikit-learn 1.9.1 (the window table's KD-tree), pytorch-lightning 1.9.5,
  omegaconf and easydict. No file of it is edited; runtime patches only, none of which changes a layer:
  P1 a stand-in `torchvision` whose `models.vgg16().features` is VGG16's feature stack with
  torchvision's layer indices (there is no torchvision wheel for torch 2.13); P2 `.cuda()` returns its
  tensor / module; P3 the `np.float` alias; P4 a `torch._six` module for `main.py`'s imports; P5 the
  original `GridQuantizer.chamfer_compare` called on slices of 16 grid cells and concatenated (unsliced
  it materialises ~17 GB; every cell's distances and argmin are computed by the same code); P6 stage 2's
  `init_net` kept on CPU and wrapped in `nn.DataParallel` (which without CUDA calls the module); P7
  stage 2's hard-coded landmark Encoder size replaced by `SMALL_LANDMARK_ENCODER`.
* Stage 1: `taming.models.vqgan_slidinggrid.VQGridModel(SMALL_DDCONFIG, obama_sliding_4's loss
  (LOSS_PARAMS, disc_start 10000), n_embed 256, embed_dim 4)`: 64x64 images, the 16x16x256 latent the
  grid quantiser needs. Its whole state dict (248 entries, the names and order of ours, checked here)
  filled by `vpgc_testlib.seeded_vq_state` (seed 11; LPIPS's input scaling constants kept), then the
  quantiser rebuilt from the loaded codebook as the original's `ckpt_path` route does. Model in eval
  mode (no dropout; the discriminator's BatchNorm on its seeded running statistics). Inputs
  `make_frames()` (4 frames, [-1, 1]). Recorded: encoder output, quant_conv output, hard indices
  [4, 256, 64], the straight-through z_q, the codebook loss, the reconstruction, LPIPS(x, rec), the
  discriminator logits of x and rec at both scales, and the loss module's generator and discriminator
  losses with every logged term (d_weight included, computed with grad enabled) at global steps 9999
  and 10000, either side of disc_start.
* Stage 2: Reenactment's `GridFormer7_Model` (isTrain, mean_codebook) with that stage-1 model saved as
  its `--load_path` checkpoint, the landmark Encoder at `SMALL_LANDMARK_ENCODER` (seed 12) and
  `PriorTrans` at its real size (seed 13), Imp in eval mode (the original never calls eval: its
  transformer dropout is random). Inputs `make_landmark_maps()`: sparse cv2 line drawings of a moving
  random 68-point face, 7 maps per frame. Recorded: the landmark encoder output, the codebook prior P,
  the PriorTrans output, the soft-quantised code and the decoded image (`infer_ldmk`).
* Stored: the subsets in `SUBSETS` (every 16th latent channel, every other image pixel), indices as
  int16, to keep the file small; everything else whole.

Tolerance `numerics.FORWARD` of each tensor's largest magnitude. The hard indices are compared exactly,
except that float32 rounding may flip a near-tie: a position may differ when the two candidates'
distances to our latent are equal within what a FORWARD-sized change of the latent can move them
(`TIE_SLACK`), for at most 0.1 % of the positions; z_q is then compared where the indices agree.
Measured on the recording machine (AVX-512): stage 1, the losses and the stage-2 networks are
bit-identical; the soft lookup differs by 1.7e-6 of its magnitude (2.0e-6 in the decoded image).
With ATEN_CPU_CAPABILITY=default and one thread: at most 9.0e-6 (soft_z_q), 2.7e-6 (landmark
features), 1.9e-6 (stage-1 latents), no index flip. `test_a_perturbed_weight_fails` shows that
scaling one weight tensor per network by 1.01 moves every output beyond ten times the tolerance.
Recording scripts: /tmp/vpgc_record/{patches,record_stage1,record_stage2,merge}.py at recording time
(not part of the repository).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numerics import FORWARD, assert_close, mismatch
from vpgc_testlib import (
    DATA,
    LOSS_PARAMS,
    PARITY_SEEDS,
    SMALL_DDCONFIG,
    SMALL_LANDMARK_ENCODER,
    make_frames,
    make_landmark_maps,
    seeded_state,
    seeded_vq_state,
)

from vpgc.model import Encoder, PriorTrans, VQGridModel

RECORDING = DATA / "original_outputs.npz"
CHANNELS = np.s_[:, ::16]
PIXELS = np.s_[:, :, ::2, ::2]
SUBSETS = {
    "stage1/h": CHANNELS,
    "stage1/quant_conv": CHANNELS,
    "stage1/z_q": CHANNELS,
    "stage1/rec": PIXELS,
    "stage2/landmark_features": CHANNELS,
    "stage2/code": CHANNELS,
    "stage2/soft_z_q": CHANNELS,
    "stage2/image": PIXELS,
    "stage2/prior": np.s_[0],
}
FLOAT_OUTPUTS = [k for k in SUBSETS if k != "stage1/z_q"] + ["stage1/codebook_loss", "stage1/lpips"]
FLOAT_OUTPUTS += [f"stage1/disc_{kind}_{scale}" for kind in ("real", "fake") for scale in (0, 1)]
LOSS_STEPS = (9999, 10000)
TIE_SLACK = 4 * FORWARD  # x max |latent|: bound on how far a tolerated latent change moves a distance's root
MAX_FLIPS = 1e-3
# One weight tensor per network, scaled by 1.01 in test_a_perturbed_weight_fails.
PERTURBED = (
    "stage1:encoder.conv_in.weight",
    "stage1:quantize.embedding",
    "stage1:loss.discriminator.discriminator_0.model3.0.weight",
    "stage1:loss.discriminator.discriminator_1.model3.0.weight",
    "encoder:conv_in.weight",
    "imp:mlp_head.0.weight",
)


def _state_names(state) -> tuple[list[str], list[str]]:
    return list(state), [",".join(map(str, v.shape)) for v in state.values()]


def stage1_model(disc_start: int = LOSS_PARAMS["disc_start"], with_loss: bool = True) -> VQGridModel:
    """Our stage-1 model with the recording's weights (eval mode)."""
    full = VQGridModel(SMALL_DDCONFIG, {**LOSS_PARAMS, "disc_start": disc_start})
    state = seeded_vq_state(full.state_dict())
    if with_loss:
        full.load_state_dict(state)
        return full.eval()
    model = VQGridModel(SMALL_DDCONFIG, None)
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("loss.")})
    return model.eval()


def stage2_networks() -> tuple[Encoder, PriorTrans]:
    """Our landmark encoder and PriorTrans with the recording's weights (eval mode)."""
    encoder, imp = Encoder(**SMALL_LANDMARK_ENCODER), PriorTrans()
    encoder.load_state_dict(seeded_state(encoder.state_dict(), PARITY_SEEDS["landmark_encoder"]))
    imp.load_state_dict(seeded_state(imp.state_dict(), PARITY_SEEDS["prior"]))
    return encoder.eval(), imp.eval()


def _scale(modules: dict[str, torch.nn.Module], factor: float) -> None:
    with torch.no_grad():
        for item in PERTURBED:
            net, name = item.split(":")
            modules[net].get_parameter(name).mul_(factor)


def compute_outputs(perturb: float = 1.0) -> dict[str, torch.Tensor]:
    """Our outputs for the recorded weights and inputs; `perturb` scales the PERTURBED tensors."""
    model = stage1_model()
    encoder, imp = stage2_networks()
    _scale({"stage1": model, "encoder": encoder, "imp": imp}, perturb)
    x = make_frames()
    # One pass with grad (the adaptive weight differentiates through the decoder); records are detached.
    h = model.encoder(x)
    hq = model.quant_conv(h)
    zq, qloss, info = model.quantize(hq)
    rec = model.decode(zq)
    out = {"stage1/h": h, "stage1/quant_conv": hq, "stage1/z_q": zq, "stage1/codebook_loss": qloss, "stage1/rec": rec}
    out["stage1/indices"] = info[2]
    with torch.no_grad():
        out["stage1/lpips"] = model.loss.perceptual_loss(x, rec)
        for kind, image in (("real", x), ("fake", rec)):
            for scale, logits in enumerate(model.loss.discriminator(image)):
                out[f"stage1/disc_{kind}_{scale}"] = logits
    for step in LOSS_STEPS:
        for idx in (0, 1):
            loss, log = model.loss(qloss, x, rec, idx, step, last_layer=model.last_layer(), split="train")
            out[f"stage1/loss{idx}_{step}/loss"] = loss
            out.update({f"stage1/loss{idx}_{step}/{k.split('/')[1]}": v for k, v in log.items()})
    with torch.no_grad():
        out["stage2/landmark_features"] = features = encoder(make_landmark_maps())
        out["stage2/prior"] = prior = model.quantize.prior(4)
        out["stage2/code"] = code = imp(features, prior)
        out["stage2/soft_z_q"] = model.quantize.soft(model.quant_conv(code))
        out["stage2/image"] = model.decode_code(code, soft=True)
    out = {k: v.detach() for k, v in out.items()}
    return {k: v[SUBSETS[k]] if k in SUBSETS else v for k, v in out.items()}


def index_flips(ours: torch.Tensor, expected: np.ndarray, latent: torch.Tensor, model: VQGridModel) -> np.ndarray:
    """Mask [4, 256, 64] of the positions whose index differs from the original's; asserts each is a near-tie."""
    expected = torch.from_numpy(expected.astype(np.int64))
    flips = ours != expected
    if flips.any():
        vectors = latent.permute(0, 2, 3, 1).reshape(4, 256, 64, 4).double()
        bank = model.quantize.candidates().double()
        cells = torch.arange(256)[None, :, None].expand_as(ours)
        root_ours = (vectors - bank[cells, ours]).norm(dim=-1)
        root_expected = (vectors - bank[cells, expected]).norm(dim=-1)
        gap = (root_ours - root_expected).abs()[flips]
        assert (gap <= TIE_SLACK * float(latent.abs().max())).all(), f"index flips that are no near-tie: {gap.max()}"
    return flips.numpy()


@pytest.fixture(scope="module")
def recording():
    return np.load(RECORDING)


@pytest.fixture(scope="module")
def outputs() -> dict[str, torch.Tensor]:
    return compute_outputs()


def test_same_state_dict_layout(recording):
    """The seeded recipe gives the same tensors only if names, shapes and order agree with the original's."""
    full = VQGridModel(SMALL_DDCONFIG, LOSS_PARAMS).state_dict()
    encoder, imp = stage2_networks()
    states = {"stage1/": full, "stage2/Encoder_": encoder.state_dict(), "stage2/Imp_": imp.state_dict()}
    for prefix, state in states.items():
        keys, shapes = _state_names(state)
        assert keys == list(recording[prefix + "keys"])
        assert shapes == list(recording[prefix + "shapes"])


@pytest.mark.parametrize("name", FLOAT_OUTPUTS)
def test_matches_the_original(recording, outputs, name):
    expected = recording[name]
    assert np.abs(expected).max() > 1e-2  # a real signal, not an all-zero output
    assert_close(outputs[name], expected, FORWARD, name)


def test_hard_indices_and_z_q(recording, outputs):
    """Indices equal the original's but for near-ties; z_q matches wherever the indices agree."""
    model = stage1_model()
    with torch.no_grad():
        latent = model.quant_conv(model.encoder(make_frames()))
    flips = index_flips(outputs["stage1/indices"], recording["stage1/indices"], latent, model)
    assert flips.mean() <= MAX_FLIPS, f"{flips.sum()} index flips"
    # z_q subset: channel c = 16 k is component 0 of the 4-vector 4 k of each cell
    agree = ~flips[:, :, ::4].transpose(0, 2, 1).reshape(4, 16, 16, 16)
    ours, expected = outputs["stage1/z_q"].numpy(), recording["stage1/z_q"]
    assert_close(ours[agree], expected[agree], FORWARD * np.abs(expected).max() / np.abs(expected[agree]).max(), "z_q")


@pytest.mark.parametrize("step", LOSS_STEPS)
def test_losses_match(recording, outputs, step):
    keys = [k for k in recording.files if k.startswith((f"stage1/loss0_{step}/", f"stage1/loss1_{step}/"))]
    assert len(keys) == 2 + 8 + 3
    for key in keys:
        assert_close(outputs[key].reshape(recording[key].shape), recording[key], FORWARD, key)
    assert float(recording[f"stage1/loss0_{step}/disc_factor"]) == (step >= LOSS_PARAMS["disc_start"])


def test_a_perturbed_weight_fails(recording):
    """The tolerance is no blanket: one weight tensor per network scaled by 1.01 moves every output
    more than ten times beyond it (and flips hard indices). Not the hinge discriminator loss: with
    logits near 0 it is 1 + (mean fake - mean real) / 2, which a 1 % change barely moves."""
    perturbed = compute_outputs(perturb=1.01)
    for name in FLOAT_OUTPUTS + ["stage1/z_q", "stage1/loss0_10000/loss", "stage1/loss0_10000/d_weight"]:
        expected = recording[name]
        assert mismatch(perturbed[name].reshape(expected.shape), expected, 10 * FORWARD) is not None, name
    flips = (perturbed["stage1/indices"].numpy() != recording["stage1/indices"]).mean()
    assert flips > MAX_FLIPS
