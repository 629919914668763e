"""fsth.demo_model: the committed demo model, and the recipe end to end for one step."""

import pytest
import torch
from cli_testlib import one_line_error
from numerics import ROUNDING, assert_close

from common.image import list_images
from fsth.checkpoint import build_meta_networks, read_meta_checkpoint
from fsth.config import load_config
from fsth.demo_model import DEMO_DIR, MODEL_FILE, RECIPE, main
from fsth.loss import Loss_EG_meta


@pytest.fixture(scope="module")
def demo_sample(make_small_sample):
    """The shared sample at the demo model's size: 8 driving frames, the first 4 trainable."""
    return make_small_sample(8, 64)


def test_committed_demo_model_loads_strictly():
    ckpt = read_meta_checkpoint(DEMO_DIR / MODEL_FILE)
    build_meta_networks(ckpt)  # strict: any missing or unexpected key raises
    recipe = load_config(RECIPE)
    assert ckpt.config["input_size"] == recipe["input_size"] == 64
    assert ckpt.config["G_config"] == recipe["G_config"] and ckpt.sample_count == 2
    assert ckpt.config["train_dataset"] is None and ckpt.optim_EG is None
    assert sum(p.stat().st_size for p in DEMO_DIR.iterdir()) < 8 * 2**20


def test_one_step_end_to_end(demo_sample, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    main(["--sample", str(demo_sample), "--work", str(work), "--out", str(out), "--steps", "1"])
    # training frames only: the 8-frame clip keeps its last 4 out of training
    for person, video, source in (("identity_1", "driving", "source"), ("identity_2", "driving_2", "source_2")):
        names = [p.stem for p in list_images(work / "data" / person / video)]
        assert names == ["00000", "00001", "00002", "00003", source]
    ckpt = read_meta_checkpoint(out / MODEL_FILE)
    build_meta_networks(ckpt)
    assert ckpt.total_step == 0 and ckpt.optim_EG is None and ckpt.config["train_dataset"] is None


@pytest.mark.parametrize("case", ["zero_steps", "missing_sample"])
def test_bad_input_is_a_one_line_error(case, demo_sample, tmp_path, capsys):
    sample = tmp_path / "nope" if case == "missing_sample" else demo_sample
    argv = ["--sample", str(sample), "--out", str(tmp_path / "out")]
    argv += ["--steps", "0"] if case == "zero_steps" else []
    one_line_error(capsys, main, argv, "--steps" if case == "zero_steps" else "make_sample_data")
    assert not (tmp_path / "out").exists()


def test_l1_term_joins_the_content_loss():
    """The recipe's stand-in for the VGG terms: content = l1_loss_weight * L1(x_hat, x); 0 leaves it out."""
    gen = torch.Generator().manual_seed(0)
    x, x_hat = torch.rand(2, 3, 8, 8, generator=gen), torch.rand(2, 3, 8, 8, generator=gen)
    features = [torch.rand(2, 4, 4, 4, generator=gen)]
    e_hat, w = torch.rand(2, 1, 5, generator=gen), torch.rand(2, 5, generator=gen)
    args = (x, x_hat, features, features, torch.zeros(2), e_hat, w)
    cfg = load_config(RECIPE)
    with_l1 = Loss_EG_meta.from_config(cfg)(*args)
    without = Loss_EG_meta.from_config({**cfg, "l1_loss_weight": 0.0})(*args)
    expected = cfg["l1_loss_weight"] * (x_hat - x).abs().mean()
    assert_close(with_l1.content, expected, ROUNDING, "content")
    assert float(without.content) == 0.0
    assert_close(with_l1.total - without.total, expected, ROUNDING, "total")
