"""`python -m vfa.infer` end to end on tiny data: a random-weight checkpoint in the official layout,
the photo heightfield avatar as an .obj, and 3-frame RGBD driving clips (mp4 + FFV1 .nut, and a
PNG folder). Bad inputs must give one `error:` line, exit 2 and leave no result folder."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.io
import torch
from vfa_infer_testlib import photo_heightfield, sample_photo_rgb, write_driving_folder, write_driving_mp4

from common.video import read_video, video_info, write_depth_video, write_video
from vfa import infer
from vfa.checkpoint import INPUT_CONV, save_vfa
from vfa.mesh import write_obj
from vfa.model import Generator


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("vfa_infer")
    torch.manual_seed(0)
    generator = Generator(size=256, in_channels=4, distilling=True)
    save_vfa(root / "models" / "vfa" / "VFA.pt", generator)
    # LIA's input convolution takes RGB; the refusal looks at that tensor before anything else
    lia = {INPUT_CONV: generator.state_dict()[INPUT_CONV][:, :3].clone()}
    torch.save({"gen": lia, "g_optim": None, "args": None}, root / "models" / "lia.pt")
    write_obj(root / "avatar.obj", photo_heightfield(sample_photo_rgb(), grid=48))
    grey = photo_heightfield(np.full((64, 64, 3), 150, np.uint8), grid=24)
    write_obj(root / "blank.obj", grey)
    write_driving_mp4(root / "drive", count=3)
    write_driving_folder(root / "frames", count=3)
    return root


def run(data, monkeypatch, *extra):
    monkeypatch.chdir(data)
    return infer.main(
        [
            "--checkpoint",
            "models/vfa/VFA.pt",
            "--source_path",
            "avatar.obj",
            "--save_folder",
            "results",
            "--weights_method",
            "fast",
            "--device",
            "cpu",
            *extra,
        ]
    )


def test_names_and_flags():
    assert infer.path_part("dataset/demo_driving/color/output.mp4") == "demo_driving"
    assert infer.path_part("./saved_models/VFA.pt") == "saved_models"  # the original's rule, as is
    assert infer.path_part("clip.mp4") == "clip"
    assert infer.avatar_name("dataset/demo_source/woman_coeffs.npy") == "woman"
    assert infer.avatar_name("meshes/my_head.v2.obj") == "my_head"
    assert infer.depth_video_path("d/color/color_a.mp4").as_posix() == "d/depth/depth_a.nut"
    args = infer.parse_args(["--eye", "0", "0.5", "9", "--translation", "0.1", "0", "-0.2"])
    assert args.eye == [0.0, 0.5, 9.0] and args.translation == [0.1, 0.0, -0.2]
    assert infer.result_folder(args).as_posix() == "results/vfa/woman_none_0"


def test_panels_video_from_an_mp4_clip(data, monkeypatch):
    assert run(data, monkeypatch, "--driving_path", "drive/color/clip.mp4", "--length", "2") == 0
    folder = data / "results" / "vfa" / "avatar_color_0"
    assert sorted(p.name for p in folder.iterdir()) == ["color.png", "controllers.png", "depth.png", "inference.mp4"]
    info = video_info(folder / "inference.mp4")
    assert (info.width, info.height, info.fps) == (1024, 512, 30.0)
    frames = read_video(folder / "inference.mp4")
    assert len(frames) == 2
    assert frames[:, :256, :256].max() < 40  # the black panel
    avatar = cv2.imread(str(folder / "color.png"))[..., ::-1]
    assert np.abs(frames[0, :256, 256:512].astype(int) - avatar).mean() < 12  # the avatar, true colours
    assert cv2.imread(str(folder / "depth.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert sorted(p.name for p in (data / "weights").iterdir())[0] == "avatar_index.npy"
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_target_frame_pngs_from_a_folder(data, monkeypatch):
    assert run(data, monkeypatch, "--driving_path", "frames", "--target_frame", "1", "--offset", "0") == 0
    folder = data / "results" / "vfa" / "avatar_frames_0"
    names = {p.name for p in folder.iterdir()}
    expected = {"1_depth_img.png", "source_img.png", "1_driving_img.png", "1_recon_img.png"}
    assert expected | {"1_recon_img_angles.png", "1_recon_img_rgb.png"} <= names
    depth = cv2.imread(str(folder / "1_depth_img.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == (256, 256) and depth.max() == 65535


def test_adjust_camera_needs_only_the_avatar(data, monkeypatch, capsys):
    assert run(data, monkeypatch, "--adjust_camera", "--eye", "0", "0", "9") == 0
    assert "depth range 8.8" in capsys.readouterr().out
    assert {p.name for p in (data / "results" / "vfa" / "avatar_none_0").iterdir()} == {"color.png", "depth.png"}


def bad_input_cases(data):
    write_video(data / "odd" / "color" / "a.mp4", [np.zeros((256, 256, 3), np.uint8)] * 2, fps=30)
    write_depth_video(data / "odd" / "depth" / "a.nut", [np.ones((128, 128), np.uint16)] * 2)
    write_video(data / "lonely" / "color" / "a.mp4", [np.zeros((256, 256, 3), np.uint8)] * 2, fps=30)
    scipy.io.savemat(data / "wrong.mat", {"tri": np.ones((3, 3))})
    np.save(data / "woman_coeffs.npy", np.zeros(257))
    drive = ["--driving_path", "drive/color/clip.mp4"]
    return {
        "no face": (["--source_path", "blank.obj", *drive], "no face found on the rendered avatar"),
        "no depth": (["--driving_path", "lonely/color/a.mp4"], "lonely/depth/a.nut: depth video of the driving clip"),
        "sizes": (["--driving_path", "odd/color/a.mp4"], "depth frames are 128x128, the colour frames"),
        "lia": (["--checkpoint", "models/lia.pt", *drive], "a 3-channel LIA checkpoint"),
        "mat": (["--source_path", "woman_coeffs.npy", "--bfm_model", "wrong.mat", *drive], "field 'meanshape'"),
    }


@pytest.mark.parametrize("case", ["no face", "no depth", "sizes", "lia", "mat"])
def test_bad_inputs_are_one_line_errors(data, monkeypatch, capsys, case):
    arguments, message = bad_input_cases(data)[case]
    monkeypatch.chdir(data)
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    with pytest.raises(SystemExit) as stop:
        run(data, monkeypatch, "--save_folder", "bad_results", *arguments)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1]
    assert not (data / "bad_results").exists()
    after = sorted(p.relative_to(data) for p in data.rglob("*"))
    assert [p for p in after if p not in before and p.parts[0] == "weights"] == []
