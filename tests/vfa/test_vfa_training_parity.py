"""One training step of ours against the original trainer's, stored in data/original_training_step.npz.

Recording: why986/VFA at 92c61a5a4f5b (`trainer.py`, `vgg19.py`, `networks/*.py`, taken with
`git show` into a scratch folder outside this repository), torch 2.13.0+cpu, CPU, one thread,
float64. Changes around the original, none inside its files: `torch.Tensor.cuda` and
`nn.Module.cuda` are no-ops; `trainer.DDP` returns the module itself; `trainer.optim.Adam` gets
the betas as floats (its integer `0 ** 1` is refused by torch 2.13's Adam); a stand-in
`torchvision` module whose `models.vgg19()` has torchvision's `features` layout (in-place ReLUs)
filled with `vfa_train_testlib.numpy_vgg19_state(51)` rounded to float32. For each stage,
`Trainer(args, "cpu", "cpu")` with size 128 (the smallest whose 1/8 pyramid level reaches
relu5_1), the loss weights 200 / 200 / 50 and `distilling` False / True; its generator filled with
`vfa_testlib.seeded_state(state, 52)`, then the generator, `criterion_vgg` and the three depth
filters converted to float64; `gen_update(source, target)` on `make_rgbd_frames(4, 128, 53)`
(frames 0-1 source, 2-3 target, batch 2). Stored: every weighted loss term (float64) and the
gradients it left on a few parameters across the networks (float32; of the 128x512 modulation
weight its first 32 rows). The state-dict key order of both sides was checked to be identical.

Ours runs the same in float64: the loss terms agree to 2e-15 and the gradients to 5e-8 of their
largest magnitude (the float32 storage). Scaling one weight tensor (the 128x128 depth head) by 1.01
moves the depth terms 9-21x and the gradients 100-600x beyond `numerics.FORWARD`.
"""

from __future__ import annotations

import numpy as np
import pytest
from numerics import FORWARD, assert_close
from vfa_testlib import DATA, make_rgbd_frames, seeded_state
from vfa_train_testlib import numpy_vgg19_state

from common.checkpoint import load_strict
from common.vgg.torch_vgg import VGGFeatures
from vfa.losses import VGGPyramidLoss
from vfa.model import Generator
from vfa.train import Losses, make_optimizer, train_step

SEEDS = dict(vgg=51, weights=52, frames=53)
SIZE = 128


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(DATA / "original_training_step.npz") as recorded:
        return dict(recorded)


@pytest.fixture(scope="module")
def losses() -> Losses:
    vgg = VGGFeatures("vgg19")
    load_strict(vgg, {k: v.float() for k, v in numpy_vgg19_state(SEEDS["vgg"]).items()})
    return Losses(VGGPyramidLoss(vgg).double())


@pytest.mark.parametrize("distilling", [False, True], ids=["stage1", "stage2"])
def test_one_step_matches_the_original(expected, losses, distilling):
    tag = "stage2" if distilling else "stage1"
    gen = Generator(SIZE, distilling=distilling)
    gen.load_state_dict(seeded_state(gen.state_dict(), SEEDS["weights"]))
    gen.double()
    optim, scheduler = make_optimizer(gen, 2e-4, 5000)
    frames = make_rgbd_frames(count=4, size=SIZE, seed=SEEDS["frames"])
    values = train_step(gen, optim, (frames[:2], frames[2:]), losses, distilling, scheduler)

    mine = {key.split("/", 1)[1]: value for key, value in expected.items() if key.startswith(f"{tag}/")}
    terms = {name: value for name, value in mine.items() if not name.startswith("grad/")}
    assert set(terms) == set(values) - {"loss"}
    for name, value in terms.items():
        assert values[name] == pytest.approx(float(value), rel=FORWARD), name
    params = dict(gen.named_parameters())
    grads = {name[len("grad/") :]: value for name, value in mine.items() if name.startswith("grad/")}
    assert grads
    for name, value in grads.items():
        assert_close(params[name].grad[: len(value)], value, FORWARD, name)
