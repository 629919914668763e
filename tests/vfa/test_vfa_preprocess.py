"""vfa.preprocess: the face box rule, background and depth normalisation by hand, an RGB+EXR
folder with a fixed face box end to end (exact depth), a synthetic Record3D depth|colour video
through mediapipe, and one-line errors that leave nothing behind."""

from __future__ import annotations

import numpy as np
import pytest

from common.errors import InputError, NoFaceError
from common.image import write_image
from common.video import iter_frames, read_depth_video, side_by_side, video_info, write_exr, write_video
from vfa.preprocess import crop_resize, face_box, normalize_depth, preprocess


class FixedFace:
    """A stand-in for FaceMesh: the same normalised landmarks in every frame, or none."""

    def __init__(self, landmarks):
        self.points = None if landmarks is None else np.asarray(landmarks, dtype=np.float32)

    def landmarks(self, image):
        return self.points


def test_face_box_squares_a_tall_box_downwards():
    tall = [[0.1, 0.25], [0.3, 0.75]]  # in a 100 x 80 frame: x 10-30, y 20-60
    assert face_box(np.array(tall), 100, 80) == (10 - (55 - 20) // 2, 20, 55, 55)
    wide = [[0.1, 0.25], [0.9, 0.5]]
    assert face_box(np.array(wide), 100, 80) == (10, 20, 80, 20)


def test_normalize_depth_by_hand():
    depth = np.array([[0, 0.2], [0.3, 0.2]], np.float32)
    assert normalize_depth(depth).tolist() == [[0, 1], [65535, 1]]
    outlier = np.array([1.0] * 9 + [100.0], np.float32)[None]  # clipped to mean + 2 std, still the top
    assert normalize_depth(outlier).tolist() == [[1] * 9 + [65535]]
    assert normalize_depth(np.array([[0, 0.3, 0.3]], np.float32)).tolist() == [[0, 1, 1]]
    assert normalize_depth(np.zeros((2, 2), np.float32)).tolist() == [[0, 0], [0, 0]]


def test_crop_resize_background_and_nearest():
    depth = np.full((128, 128), 0.3, np.float32)
    depth[0, :5] = [np.nan, -1, 0, 0.5, 0.6]
    depth[1, 0] = 0.49
    color = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    out_color, out_depth = crop_resize(color, depth, (0, 0, 64, 64))
    assert out_color.shape == (256, 256, 3) and out_color.dtype == np.uint8 and out_depth.shape == (256, 256)
    assert np.all(out_depth[0, :20] == 0) and np.all(out_color[0, :20] == 0)
    assert out_depth[4, 0] == np.float32(0.49)
    np.testing.assert_array_equal(out_color[4:], np.repeat(np.repeat(color[1:64, :64], 4, 0), 4, 1))
    # past the top-left corner: the 32x32 part inside the image, not a wrapped-around slice
    clipped, _ = crop_resize(color, depth, (-32, -32, 64, 64))
    np.testing.assert_array_equal(clipped[8:], np.repeat(np.repeat(color[1:32, :32], 8, 0), 8, 1))


def write_capture_folder(folder, frames: int = 3, depth_size: int = 128):
    """rgb/<i>.jpg and depth/<i>.exr, 128x128: a 64x64 foreground square at (16, 16), left half
    0.2 m, right half 0.3 m; background 0.6 m and NaN."""
    rng = np.random.default_rng(1)
    for index in range(frames):
        color = (rng.random((128, 128, 3)) * 60 + 120).astype(np.uint8)
        write_image(folder / "rgb" / f"{index}.jpg", color)
        depth = np.full((depth_size, depth_size), 0.6, np.float32)
        depth[:8] = np.nan
        depth[16:80, 16:48], depth[16:80, 48:80] = 0.2, 0.3
        write_exr(folder / "depth" / f"{index}.exr", depth)


def test_rgb_exr_folder_end_to_end(tmp_path):
    capture = tmp_path / "capture"
    write_capture_folder(capture)
    face = FixedFace([[0.125, 0.125], [0.625, 0.625], [0.3, 0.4]])  # box (16, 16, 64, 64): 4x nearest
    color_path, depth_path = preprocess(capture, "take1", face_mesh=face)
    assert color_path == tmp_path / "capture_output" / "color" / "take1.mp4"
    assert depth_path == tmp_path / "capture_output" / "depth" / "take1.nut"
    depth = read_depth_video(depth_path)
    expected = np.zeros((256, 256), np.uint16)
    expected[:, :128], expected[:, 128:] = 1, 65535
    assert depth.shape == (3, 256, 256)
    assert all(np.array_equal(frame, expected) for frame in depth)
    info = video_info(color_path)
    assert (info.width, info.height, info.fps, info.codec, info.pix_fmt) == (256, 256, 30.0, "h264", "yuv420p")
    assert video_info(depth_path).codec == "ffv1"
    assert len(list(iter_frames(color_path))) == 3


def test_no_face_and_size_mismatch_write_nothing(tmp_path):
    capture = tmp_path / "capture"
    write_capture_folder(capture, frames=1)
    with pytest.raises(NoFaceError, match="no face"):
        preprocess(capture, face_mesh=FixedFace(None))
    odd = tmp_path / "odd"
    write_capture_folder(odd, frames=1, depth_size=64)
    with pytest.raises(InputError, match="colour 128x128 and depth 64x64 differ in size") as info:
        preprocess(odd, face_mesh=FixedFace([[0.1, 0.1], [0.5, 0.5]]))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "capture_output").exists() and not (tmp_path / "odd_output").exists()
    with pytest.raises(InputError, match="expected a folder"):
        preprocess(tmp_path / "clip.avi")


def astronaut_record3d(path, frames: int = 3):
    """A Record3D-style video from skimage's astronaut photo: 256x512, depth (a left-to-right ramp
    of 0.23-0.34 m on an ellipse around the face, 0.78 m elsewhere) in the left half's red channel,
    colour on the right."""
    from skimage import data

    color = np.ascontiguousarray(data.astronaut()[0:256, 100:356])
    ys, xs = np.mgrid[0:256, 0:256]
    face = ((xs - 125) / 45) ** 2 + ((ys - 123) / 60) ** 2 < 1
    depth = np.where(face, 60 + (xs - 80) // 4, 200).astype(np.uint8)
    write_video(path, [side_by_side(depth, color)] * frames, fps=30, crf=0)


def test_record3d_video_through_mediapipe(tmp_path):
    from vfa.facemesh import face_mesh_solution

    try:
        face_mesh_solution()
    except InputError as exc:
        pytest.skip(str(exc))
    video = tmp_path / "selfie.mp4"
    astronaut_record3d(video)
    color_path, depth_path = preprocess(video)
    assert color_path == tmp_path / "selfie" / "color" / "output.mp4"
    depth = read_depth_video(depth_path)
    colors = np.stack(list(iter_frames(color_path)))
    assert depth.shape == (3, 256, 256) and colors.shape == (3, 256, 256, 3)
    for frame, color in zip(depth, colors):
        foreground = frame > 0
        assert 0.3 < foreground.mean() < 0.8  # the ellipse fills about half of the face box
        assert frame[foreground].min() == 1 and frame[foreground].max() == 65535
        assert color[~foreground].mean() < 8  # background colour is black (up to H.264 rounding)
