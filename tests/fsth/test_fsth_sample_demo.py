"""fsth.sample_demo: the committed demo model, an explicit checkpoint, the quick fit, bad input."""

import json

import numpy as np
import pytest

from common.image import list_images, read_image
from fsth.meta_train import meta_train
from fsth.sample_demo import main

PART_KEYS = {"frames", "source", "driving", "identity"}


@pytest.fixture(scope="module")
def demo_sample(make_small_sample):
    """The shared sample at the demo model's size: 8 driving frames, the first 4 trainable."""
    return make_small_sample(8, 64)


def _check_parts(out, sample, size):
    """self/ and cross/ hold one frame per driving frame, same stems, at `size`; returns run.json."""
    stems = [p.stem for p in list_images(sample / "driving")]
    for part in ("self", "cross"):
        frames = list_images(out / part / "frames")
        assert [p.stem for p in frames] == stems
        assert all(read_image(p).shape == (size, size, 3) for p in frames)
        assert np.ptp(read_image(frames[0])) > 0  # rendered, not a blank canvas
        assert (out / part / "result.mp4").is_file()
    info = json.loads((out / "run.json").read_text())
    assert info["method"] == "fsth" and info["size"] == size and info["seconds_per_frame"] > 0
    assert set(info["parts"]) == {"self", "cross"}
    assert all(set(part) == PART_KEYS for part in info["parts"].values())
    assert info["parts"]["self"]["source"] == str(sample / "source.png")
    assert info["parts"]["cross"]["identity"] == str(sample / "source_2.png")
    assert info["parts"]["cross"]["driving"] == str(sample / "driving")
    return info


def test_demo_model_is_the_default(demo_sample, tmp_path, capsys):
    out = tmp_path / "out"
    main(["--sample", str(demo_sample), "--out", str(out)])
    info = _check_parts(out, demo_sample, 64)
    assert info["model"] == "demo model" and info["checkpoint"].endswith("model.pkl")
    readme = (out / "README.txt").read_text()
    assert readme.startswith("DEMO MODEL trained on the sample by `make demo-models` (recipe fsth/runs/sample.yaml)")
    assert readme in capsys.readouterr().out


def test_checkpoint_runs_inference_only(sample_data, tiny_config, tiny_loss, tmp_path):
    ckpt = meta_train(tiny_config, tmp_path / "run", tiny_loss, max_steps=1)
    out = tmp_path / "out"
    main(["--sample", str(sample_data), "--out", str(out), "--checkpoint", str(ckpt)])
    info = _check_parts(out, sample_data, tiny_config["input_size"])
    assert info["model"] == "official" and info["checkpoint"] == str(ckpt)
    readme = (out / "README.txt").read_text()
    assert f"checkpoint {ckpt}" in readme and "QUICK FIT" not in readme and "DEMO MODEL" not in readme


def test_quick_fit_is_labelled(demo_sample, tmp_path):
    out = tmp_path / "out"
    main(["--sample", str(demo_sample), "--out", str(out), "--quick_fit", "--steps", "1"])
    info = _check_parts(out, demo_sample, 64)
    assert info["model"] == "quick fit"
    readme = (out / "README.txt").read_text()
    assert readme.startswith("QUICK FIT on the sample, NOT the official model")
    assert "for only 1 steps" in readme and "no VGG weights were loaded" in readme


@pytest.mark.parametrize("problem", ["no_sample", "no_checkpoint"])
def test_bad_input_is_a_one_line_error(problem, sample_data, tmp_path, capsys):
    sample = tmp_path / "nope" if problem == "no_sample" else sample_data
    argv = ["--sample", str(sample), "--out", str(tmp_path / "out")]
    if problem == "no_checkpoint":
        argv += ["--checkpoint", str(tmp_path / "save_1.pkl")]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    assert ("make_sample_data" if problem == "no_sample" else "save_1.pkl") in err
