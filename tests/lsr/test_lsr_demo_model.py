"""lsr.demo_model: the recipe parses through LSR's own flags, records cover every training frame
and never a held-out one, the committed demo model restores strictly into the recipe's model,
and the CLI trains a loadable checkpoint end to end (a few steps on an 8-frame sample)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import InputError
from common.sample import SampleFrame
from lsr import demo_model

ROOT = Path(__file__).parents[2]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
MAX_DEMO_BYTES = 8 * 2**20


def _run(*args, timeout=120):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=timeout)


def _frame(name: str) -> SampleFrame:
    return SampleFrame(Path(name), Path(f"{name}.npy"), Path(f"{name}.label"))


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    result = _run("-m", "tools.make_sample_data", "--out", str(out), "--frames", "8", "--size", "128")
    assert result.returncode == 0, result.stderr
    return out


def _load(folder: Path):
    """Restore `folder` as `--run_mode=infer` does (strict for every variable of the model)."""
    from lsr import checkpoint
    from lsr.models import create_model

    model = create_model(demo_model.make_config(**demo_model.recipe_options()))
    model.init_extra_train_and_eval_networks()
    counters = checkpoint.make_counters()
    checkpoint.load_model(model, folder, "infer", counters)
    return int(counters["global_step"].numpy())


def test_recipe_options_are_typed(tmp_path):
    options = demo_model.recipe_options()
    assert options["train_resolution"] == 64 and options["K"] == 1 and options["fix_lr_starting_step"] is True
    assert options["w_loss_vgg"] == 0.0 and isinstance(options["g_lr"], float)
    bad = tmp_path / "bad.flags"
    bad.write_text("# comment\n--K=1\n--no_such_option=3\n")
    with pytest.raises(InputError, match=r"bad.flags:3: expected --<LSR option>=<value>"):
        demo_model.recipe_options(bad)


def test_records_start_with_the_photo_and_cover_every_frame():
    frames = [_frame(f"{i:05d}") for i in range(10)]
    records = demo_model.record_frames(_frame("photo"), frames, 4)
    assert len(records) == len(frames)
    assert all(len(r) == 4 and r[0].image == Path("photo") for r in records)
    assert [r[1] for r in records] == frames
    assert records[0][1:] == [frames[0], frames[3], frames[6]]
    with pytest.raises(InputError, match="a record needs the photo and a frame"):
        demo_model.record_frames(_frame("photo"), frames, 1)


def test_training_frames_leave_out_the_held_out_tail(sample):
    identities = demo_model.training_identities(sample)
    photo, frames = identities["source"]
    assert photo.image == sample / "source.png"
    assert [f.image.name for f in frames] == [f"{i:05d}.png" for i in range(4)]
    photo_2, frames_2 = identities["source_2"]
    assert photo_2.image == sample / "source_2.png" and all(f.image.parent.name == "driving_2" for f in frames_2)
    assert len(frames_2) == 4


def test_committed_demo_model_loads_strictly():
    files = sorted(p.name for p in demo_model.DEMO_DIR.iterdir())
    step = _load(demo_model.DEMO_DIR)
    assert files == ["checkpoint", f"ckpt-{step}.data-00000-of-00001", f"ckpt-{step}.index"]
    assert step > 1000
    assert sum(p.stat().st_size for p in demo_model.DEMO_DIR.iterdir()) < MAX_DEMO_BYTES


def test_cli_trains_a_loadable_checkpoint(sample, tmp_path):
    out = tmp_path / "model"
    result = _run(
        "-m", "lsr.demo_model", "--sample", str(sample), "--work", str(tmp_path / "work"), "--out", str(out),
        "--steps", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert _load(out) == 2
    assert "demo model: checkpoint, ckpt-2.data-00000-of-00001, ckpt-2.index" in result.stdout
    assert not list(tmp_path.glob(".model*")), "staging folders left behind"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sample", "nope"], "nope/source.png not found"),
        (["--steps", "0"], "--steps must be at least 1, got 0"),
        (["--recipe", "nope.flags"], "nope.flags: recipe not found"),
    ],
)
def test_bad_input_is_a_one_line_error(sample, tmp_path, args, message):
    args = [str(tmp_path / a) if a.startswith("nope") else a for a in args]
    if "--sample" not in args:
        args = ["--sample", str(sample), *args]
    result = _run("-m", "lsr.demo_model", *args, "--out", str(tmp_path / "out"), timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "out").exists()
