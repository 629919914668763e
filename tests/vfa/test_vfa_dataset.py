"""vfa.dataset: the training normalisation by hand, the MMFace4D layout (80/20 split in sorted
order, optional Kinect folder, test persons), reproducible driving frames, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vfa_train_testlib import driving_frame_number, write_kinect, write_mmface4d, write_rgbd_video

from common.errors import InputError
from vfa.dataset import MMFace4D, color_norm

SIZE = 64  # the layout logic does not depend on the size; 256 is the default


def test_color_norm_by_hand():
    depth = np.array([[0, 10], [20, 40]], np.uint16)
    color = np.array([[[9, 9, 9], [0, 10, 100]], [[2, 10, 100], [4, 40, 100]]], np.uint8)
    out = color_norm(color, depth)
    # foreground channel means 2, 20, 100; population stds sqrt(8/3), sqrt(200) and 0 (a constant: 0, not NaN)
    std_r, std_g = np.sqrt(8 / 3), np.sqrt(200)
    assert out.dtype == np.float32 and out.shape == (2, 2, 4)
    np.testing.assert_allclose(out[0, 0], [-1, -1, -1, -1])
    np.testing.assert_allclose(out[:, :, 0][depth > 0], np.clip([-2 / (2 * std_r), 0, 2 / (2 * std_r)], -1, 1), 1e-6)
    np.testing.assert_allclose(out[:, :, 1][depth > 0], [-10 / (2 * std_g), -10 / (2 * std_g), 20 / (2 * std_g)], 1e-6)
    np.testing.assert_allclose(out[:, :, 2][depth > 0], [0, 0, 0])
    np.testing.assert_allclose(out[:, :, 3], [[-1, -0.5], [0, 1]], 1e-7)


def test_color_norm_clips_and_rgb_only():
    depth = np.ones((1, 3), np.uint16)
    color = np.array([[[0, 0, 0], [0, 0, 0], [255, 255, 255]]], np.uint8)  # (c − 85) / (2·120.2): within ±1
    assert np.abs(color_norm(color, depth)[..., :3]).max() <= 1
    np.testing.assert_allclose(color_norm(np.array([[[0, 255, 51]]], np.uint8)), [[[-1, 1, -0.6]]], 1e-6)


def test_no_foreground_is_all_minus_one():
    out = color_norm(np.full((2, 2, 3), 50, np.uint8), np.zeros((2, 2), np.uint16))
    assert np.all(out == -1) and out.shape == (2, 2, 4)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = write_mmface4d(tmp_path_factory.mktemp("data"), SIZE, videos=(5, 1), frames=3)
    write_rgbd_video(root / "MMFace4D_test" / "personT", "t0", 3, SIZE)
    write_rgbd_video(root / "MMFace4D_test" / "personT", "t1", 3, SIZE)
    (root / "MMFace4D" / "notes.txt").write_text("not a person")
    return root


def test_split_in_sorted_order_without_kinect(root):
    train = MMFace4D(root, "train", size=SIZE)
    assert [p.videos for p in train.parts] == [["v0.mp4", "v1.mp4", "v2.mp4", "v3.mp4"], []]
    assert len(train) == 4
    test = MMFace4D(root, "test", size=SIZE)
    assert [p.videos for p in test.parts] == [["t1.mp4"]]  # 2 * 8 // 10 = 1 trains, 1 tests


def test_sample_is_frame_0_and_a_reproducible_random_frame(root):
    train = MMFace4D(root, "train", size=SIZE, seed=3)
    source, driving = train[(2, 11)]
    assert source.shape == driving.shape == (4, SIZE, SIZE) and source.dtype == torch.float32
    assert driving_frame_number(source, SIZE) == 0
    assert torch.equal(train[(2, 11)][1], driving)
    drawn = {driving_frame_number(train[(2, draw)][1], SIZE) for draw in range(12)}
    assert drawn == {0, 1, 2}
    assert source.min() >= -1 and source.max() <= 1
    with pytest.raises(IndexError):
        train[4]


def test_kinect_folder_comes_first_when_present(tmp_path):
    root = write_mmface4d(tmp_path, SIZE, videos=(5,), frames=3)
    write_kinect(root / "kinect_data", count=12, size=SIZE)  # (13 − 1) // 4 = 3 frames, 3 * 8 // 10 = 2 train
    train = MMFace4D(root, "train", size=SIZE)
    assert len(train) == 2 + 4
    source, driving = train[1]
    assert driving_frame_number(source, SIZE) == 0  # static.png is frame 0 of write_kinect's series
    assert driving_frame_number(driving, SIZE) == 4 + 1  # 4.png = series frame 5
    raw = MMFace4D(root, "raw", size=SIZE)  # every frame, last 20 %: 12 − 12 * 8 // 10 = 3 (9.png … 11.png)
    assert len(raw) == 3 and driving_frame_number(raw[0][1], SIZE) == 10


def test_in_channels_3_is_rgb_only(root):
    source, driving = MMFace4D(root, "train", in_channels=3, size=SIZE)[0]
    assert source.shape == (3, SIZE, SIZE) and driving.shape == (3, SIZE, SIZE)


def test_wrong_size_video_is_a_one_line_error(root):
    with pytest.raises(InputError, match=r"v0\.mp4: frames are 64x64, this training needs 256x256") as info:
        MMFace4D(root, "train")[0]
    assert "\n" not in str(info.value)


def test_missing_folders_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="MMFace4D: dataset folder not found"):
        MMFace4D(tmp_path, "train")
    with pytest.raises(InputError, match="kinect_data"):
        MMFace4D(tmp_path, "raw")
    (tmp_path / "MMFace4D" / "p" / "color").mkdir(parents=True)
    with pytest.raises(InputError, match="no train samples"):
        MMFace4D(tmp_path, "train")
