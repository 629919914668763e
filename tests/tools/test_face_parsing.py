"""tools.face_parsing end to end: real photo in, label and colour PNGs out, one-line errors."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from common.image import read_image, write_image
from common.parsing import colorize
from common.parsing.bisenet import BiSeNet
from common.parsing.unet import CelebAMaskUNet
from tools.face_parsing import main


def _labels(path):
    with Image.open(path) as img:
        assert img.mode == "L"  # 8-bit grey, as LSR's loader expects
        return np.array(img)


@pytest.fixture(scope="module")
def files(tmp_path_factory, astronaut):
    """Random-weight checkpoints (U-Net BatchNorm statistics set from the photo, so its maps
    are not constant) and the astronaut photo as a PNG."""
    folder = tmp_path_factory.mktemp("face_parsing")
    torch.manual_seed(0)
    unet = CelebAMaskUNet()
    for module in unet.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    x = torch.from_numpy(np.array(Image.fromarray(astronaut).resize((64, 64)))).permute(2, 0, 1)
    with torch.no_grad():
        unet.train()(x[None].float() / 127.5 - 1)
    torch.save(unet.state_dict(), folder / "model.pth")
    torch.save(BiSeNet(19).state_dict(), folder / "79999_iter.pth")
    write_image(folder / "astronaut.png", astronaut)
    return folder


def test_image_end_to_end(files, tmp_path):
    out = tmp_path / "out"
    assert (
        main(
            [
                "--input",
                str(files / "astronaut.png"),
                "--output",
                str(out),
                "--checkpoint",
                str(files / "model.pth"),
                "--imsize",
                "128",
            ]
        )
        == 0
    )
    labels = _labels(out / "astronaut_labels.png")
    assert labels.shape == (512, 512) and labels.max() <= 18 and len(np.unique(labels)) > 1
    colour = read_image(out / "astronaut_color.png")
    np.testing.assert_array_equal(colour, colorize(labels))
    assert sorted(p.name for p in out.iterdir()) == ["astronaut_color.png", "astronaut_labels.png"]


def test_lsr_merge_writes_224_maps_in_lsr_colours(files, tmp_path, astronaut):
    write_image(tmp_path / "00000_rgb.png", np.array(Image.fromarray(astronaut).resize((224, 224))))
    out = tmp_path / "out"
    main(
        [
            "--input",
            str(tmp_path / "00000_rgb.png"),
            "--output",
            str(out),
            "--checkpoint",
            str(files / "model.pth"),
            "--lsr_merge",
        ]
    )
    labels = _labels(out / "00000_rgb_labels.png")
    assert labels.shape == (224, 224) and labels.max() <= 18
    np.testing.assert_array_equal(read_image(out / "00000_rgb_color.png"), colorize(labels, "lsr"))


def test_folder_and_video_inputs(files, tmp_path, astronaut):
    from common.video import write_video

    folder = tmp_path / "frames"
    write_image(folder / "a.png", astronaut[:100, :120])
    write_image(folder / "b.jpg", astronaut[200:264, 200:264])
    main(
        [
            "--input",
            str(folder),
            "--output",
            str(tmp_path / "out"),
            "--checkpoint",
            str(files / "model.pth"),
            "--imsize",
            "64",
        ]
    )
    assert _labels(tmp_path / "out" / "a_labels.png").shape == (100, 120)
    assert read_image(tmp_path / "out" / "b_color.png").shape == (64, 64, 3)

    clip = np.stack([astronaut[i * 8 : i * 8 + 64, 150:214] for i in range(3)])
    write_video(tmp_path / "clip.mp4", clip)
    main(
        [
            "--input",
            str(tmp_path / "clip.mp4"),
            "--output",
            str(tmp_path / "video"),
            "--checkpoint",
            str(files / "model.pth"),
            "--imsize",
            "64",
        ]
    )
    written = sorted(p.name for p in (tmp_path / "video").glob("*_labels.png"))
    assert written == ["00000_labels.png", "00001_labels.png", "00002_labels.png"]
    assert _labels(tmp_path / "video" / "00002_labels.png").shape == (64, 64)


def test_bisenet_model(files, tmp_path):
    out = tmp_path / "out"
    main(
        [
            "--input",
            str(files / "astronaut.png"),
            "--output",
            str(out),
            "--model",
            "bisenet",
            "--checkpoint",
            str(files / "79999_iter.pth"),
            "--imsize",
            "64",
        ]
    )
    assert _labels(out / "astronaut_labels.png").shape == (512, 512)
    assert read_image(out / "astronaut_color.png").shape == (512, 512, 3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--checkpoint", "{files}/nope.pth"], "models/parsenet/model.pth"),
        (["--checkpoint", "{files}/79999_iter.pth"], "does not match CelebAMaskUNet"),
        (["--checkpoint", "{files}/model.pth", "--imsize", "100"], "multiple of 16"),
        (["--checkpoint", "{files}/model.pth", "--imsize", "256", "--lsr_merge"], "--imsize has no effect"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(files, tmp_path, capsys, args, message):
    argv = ["--input", str(files / "astronaut.png"), "--output", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as info:
        main(argv + [a.format(files=files) for a in args])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err
    assert not (tmp_path / "out").exists()


def test_module_entry_point_missing_input_and_checkpoint(files, tmp_path):
    base = [sys.executable, "-m", "tools.face_parsing", "--output", str(tmp_path / "out")]
    run = subprocess.run(
        base + ["--input", str(files / "astronaut.png"), "--checkpoint", str(tmp_path / "model.pth")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "Google Drive" in run.stderr
    run = subprocess.run(
        base + ["--input", str(tmp_path / "missing.png"), "--checkpoint", str(files / "model.pth")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and run.stderr.strip() == f"error: {tmp_path / 'missing.png'}: input not found"
