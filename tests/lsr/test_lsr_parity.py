"""Same weights and inputs give the original code's outputs.

data/original_outputs.npz was computed by the original `MoustafaMeshry/lsr` (a9a6643; TF
2.15.1 with the fact sheet's Conv2DScaled patch) for `small_options`, K=2, batch 2, with every
variable set to `keyed_value(<its checkpoint key>)` and inputs drawn from RandomState(2021).
Here those weights reach our model through a checkpoint, so the keys are checked too.

Other CPUs and oneDNN settings move float32 outputs by a few millionths of their magnitude
(1.6e-6 of the segmentation logits' range on an AVX-512 machine), hence `numerics.FORWARD`;
`test_a_perturbed_weight_fails` shows that a 1% change of one kernel per encoder is far outside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numerics import FORWARD, assert_close, mismatch

from lsr import checkpoint

GOLDEN = Path(__file__).parent / "data" / "original_outputs.npz"
_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
# The first convolution of the style and of the layout encoder: every output depends on one.
PERTURBED = ("encoder/blocks/0/kernel", "layout_encoder/blocks/0/kernel")


def compute_outputs(
    build_model, small_options, keyed_value, write_checkpoint, folder: Path, perturb: float = 1.0
) -> dict[str, np.ndarray]:
    """Our outputs for the recorded weights, restored from a checkpoint, and inputs; `perturb`
    scales the `PERTURBED` kernels first."""
    model = build_model(**small_options)
    keys = checkpoint.checkpoint_keys(checkpoint.build_checkpoint(model, "eval"))
    values = {k[: -len(_SUFFIX)]: keyed_value(k[: -len(_SUFFIX)], tuple(spec.shape)) for k, spec in keys.items()}
    for key in PERTURBED:
        values[key] = values[key] * np.float32(perturb)
    checkpoint.load_model(model, write_checkpoint(folder / "ckpt-1", values), "eval")

    rng = np.random.RandomState(2021)
    frames = rng.uniform(-1, 1, (2, 2, 32, 32, 6)).astype(np.float32)
    landmarks = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    out = model.process(frames, landmarks, training=False)
    scales = model.discriminator(out["output"], landmarks, training=False)
    ours = {
        "z_style": out["latents"][0],
        "z_layout": out["latents"][1],
        "segmap_logits_sub2": out["segmap_logits"][:, ::2, ::2],
        "aux_frame_recon": out["aux_frame_recon"],
        "output": out["output"],
        "segmap_label_map": out["segmap_label_map"],
    }
    for i, maps in enumerate(scales):
        ours[f"disc_{i}_logits"], ours[f"disc_{i}_features"] = maps[-1], maps[-2]
    return {name: np.asarray(value) for name, value in ours.items()}


def test_forward_pass_equals_the_original(build_model, small_options, keyed_value, write_checkpoint, tmp_path):
    ours = compute_outputs(build_model, small_options, keyed_value, write_checkpoint, tmp_path)
    golden = np.load(GOLDEN)
    labels = ours.pop("segmap_label_map")
    for name, value in ours.items():
        assert np.abs(golden[name]).max() > 1e-2, name  # a real signal, not an all-zero output
        assert_close(value, golden[name], FORWARD, name)
    # argmax may only flip on near ties, so allow a pixel or two on other CPUs.
    assert np.mean(labels != golden["segmap_label_map"]) < 1e-3


def test_a_perturbed_weight_fails(build_model, small_options, keyed_value, write_checkpoint, tmp_path):
    ours = compute_outputs(build_model, small_options, keyed_value, write_checkpoint, tmp_path, perturb=1.01)
    golden = np.load(GOLDEN)
    del ours["segmap_label_map"]
    for name, value in ours.items():
        assert mismatch(value, golden[name], FORWARD) is not None, name
