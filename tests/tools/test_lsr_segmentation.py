"""tools.lsr_segmentation: LSR's oracle maps beside every processed frame (random U-Net)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from common.image import write_image
from common.parsing import load_parser, lsr_oracle_segmentation
from common.parsing.unet import CelebAMaskUNet
from tools import lsr_segmentation as S


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("unet") / "model.pth"
    torch.save(CelebAMaskUNet().state_dict(), path)
    return path


@pytest.fixture()
def subject(tmp_path, astronaut):
    part = tmp_path / "root" / "id00017" / "vid1" / "00001"
    rgbs = [np.ascontiguousarray(astronaut[20 + 8 * i : 244 + 8 * i, 140:364]) for i in range(2)]
    for i, rgb in zip((0, 5), rgbs):
        write_image(part / f"{i:05d}_rgb.png", rgb)
        write_image(part / f"{i:05d}_contour.png", np.zeros_like(rgb))
    return tmp_path / "root", part, rgbs


def test_writes_merged_maps_like_the_shared_oracle(checkpoint, subject, capsys):
    root, part, rgbs = subject
    assert S.main(["--data_dir", str(root), "--checkpoint", str(checkpoint), "--keep_plain"]) == 0
    parser = load_parser("celebamask_unet", checkpoint)
    for i, rgb in zip((0, 5), rgbs):
        expected = lsr_oracle_segmentation(parser, rgb)
        for kind, labels in (("merged", expected.merged), ("256", expected.segmap_256), ("512", expected.segmap_512)):
            written = np.asarray(Image.open(part / f"{i:05d}_segmap_{kind}.png"))
            assert written.shape == (224, 224) and written.dtype == np.uint8
            # the tool ran the same function on the same (PNG-exact) frame in this process: exact
            assert np.array_equal(written, labels) and written.max() <= 18
    assert "wrote 2 merged maps" in capsys.readouterr().out
    # resumable: nothing is redone without --keep_plain
    assert S.main(["--data_dir", str(root), "--checkpoint", str(checkpoint)]) == 0
    assert "wrote 0 merged maps" in capsys.readouterr().out


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_dir", "data directory not found"),
        ("no_frames", "no *_rgb.png frames found"),
        ("missing_ckpt", "checkpoint not found"),
    ],
)
def test_bad_inputs_give_one_line_errors(tmp_path, checkpoint, subject, capsys, case, message):
    root, ckpt = subject[0], checkpoint
    if case == "missing_dir":
        root = tmp_path / "nope"
    elif case == "no_frames":
        root = tmp_path / "empty"
        root.mkdir()
    else:
        ckpt = tmp_path / "model.pth"
    with pytest.raises(SystemExit) as exc:
        S.main(["--data_dir", str(root), "--checkpoint", str(ckpt)])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and err.startswith("error:") and message in err and "\n" not in err
