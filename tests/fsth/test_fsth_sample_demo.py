"""fsth.sample_demo on the shared sample (6 driving frames at 128 px): quick fit and checkpoint mode."""

import numpy as np
import pytest

from common.image import read_image
from common.video import video_info
from fsth.meta_train import meta_train
from fsth.sample_demo import QUICK_SIZE, main


def _check_output(out, count, size):
    frames = sorted((out / "frames").glob("*.png"))
    assert [p.name for p in frames] == [f"{i:05d}.png" for i in range(count)]
    assert all(read_image(p).shape == (size, size, 3) for p in frames)
    info = video_info(out / "result.mp4")
    assert (info.width, info.height) == (size, size)
    assert info.frames in (None, count)
    return frames


def test_quick_fit_is_labelled_and_writes_every_frame(sample_data, tmp_path, capsys):
    out = tmp_path / "out"
    main(["--sample", str(sample_data), "--out", str(out), "--steps", "2"])
    frames = _check_output(out, 6, QUICK_SIZE)
    printed = capsys.readouterr().out
    readme = (out / "README.txt").read_text()
    for text in (printed, readme):
        assert "QUICK FIT on the sample, NOT the official model" in text
        assert "meta-trained from scratch for 2 steps" in text
        assert "no VGG weights were loaded" in text and "(weight 0)" in text
    assert np.ptp(read_image(frames[0])) > 0  # rendered, not a blank canvas


def test_checkpoint_runs_inference_only(sample_data, tiny_config, tiny_loss, tmp_path, capsys):
    ckpt = meta_train(tiny_config, tmp_path / "run", tiny_loss, max_steps=1)
    out = tmp_path / "out"
    main(["--sample", str(sample_data), "--out", str(out), "--checkpoint", str(ckpt)])
    _check_output(out, 6, tiny_config["input_size"])
    readme = (out / "README.txt").read_text()
    assert f"checkpoint {ckpt}" in readme and "QUICK FIT" not in readme
    assert readme in capsys.readouterr().out


def test_missing_sample_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--sample", str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "make_sample_data" in err and "\n" not in err
