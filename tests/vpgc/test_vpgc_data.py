"""VPGC data: the landmark maps and driving windows against the original's, and the dataset layout.

`data/original_drawing.npz` was recorded from the original code (uniBruce/VPGC_Pytorch 5f1c0089fa90)
in a scratch folder outside this repository: `Reenactment/util/util.py` and
`Reenactment/datasets/grid_dataset.py` imported as they are, with empty stub modules standing in
for torchvision, albumentations and h5py (imported at module level, unused by what was called).

* `<style>/<kind>/points` float64 [68|86, 2] and `<style>/<kind>/map` uint8 [512, 512]: the output of
  `util.draw_heatmap_from_68_landmark` (style vpgc68) and `util.draw_heatmap_from_86_landmark`
  (vpgc86) for point sets drawn with numpy's default_rng(2023): `random` (uniform in the canvas),
  `coincident` (half the points on one spot, the last ten on another), `outside` (far and just
  outside the canvas, incl. +-1e4), `fractional` (integers plus .0/.4999/.5/.5001/.99999) and
  `negative` (small negative values such as -0.5, -0.99, -1.5, truncated towards zero by int());
  `vpgc68/face` is dlib's 68 landmarks of skimage's astronaut photo.
* `windows/<files>` int64 [M, 7], M = files floored to a multiple of 4: the frame indices that
  `GridDataset.get_sevenset` reads for every frame (its `get_image` replaced by one returning the
  index), -1 rows where it raises IndexError.

cv2.line with integer end points, thickness 2 and no anti-aliasing is integer arithmetic, so the
maps are the same bytes on every CPU: they are compared exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import InputError
from common.image import write_image
from vpgc.data import (
    FrameGroups,
    LandmarkGroups,
    draw_split,
    group_frames,
    groups,
    landmark_map,
    list_frames,
    list_pairs,
    read_heatmaps,
    read_image_pm1,
    read_landmarks,
    rescale_points,
    window,
    window_indices,
    window_maps,
)

RECORDED = np.load(Path(__file__).parent / "data" / "original_drawing.npz")
SIDE = 32


@pytest.mark.parametrize("key", sorted(k.rsplit("/", 1)[0] for k in RECORDED.files if k.endswith("/map")))
def test_landmark_maps_equal_the_originals_drawing(key):
    style = key.split("/")[0]
    expected = RECORDED[f"{key}/map"]
    ours = landmark_map(RECORDED[f"{key}/points"], 512, style)
    assert ours.dtype == np.uint8 and ours.shape == (512, 512)
    np.testing.assert_array_equal(ours, expected)
    assert (expected > 0).any()


def recorded_windows() -> dict[int, np.ndarray]:
    return {int(k.split("/")[1]): RECORDED[k] for k in RECORDED.files if k.startswith("windows/")}


def test_windows_equal_the_original_loaders_from_eight_frames_on():
    for files, expected in recorded_windows().items():
        used = files - files % 4
        assert len(expected) == used
        ours = window_indices(used)
        assert ours.tolist() == [window(t, used) for t in range(used)]
        if used >= 8:
            np.testing.assert_array_equal(ours, expected)


def test_with_four_frames_the_original_reads_past_them_and_we_clamp():
    for files, expected in recorded_windows().items():
        if files - files % 4 == 4:
            np.testing.assert_array_equal(expected[[0, 3]], window_indices(4)[[0, 3]])
            assert expected[1].tolist() == ([0, 0, 0, 1, 2, 3, 4] if files >= 5 else [-1] * 7)
            assert expected[2].tolist() == ([0, 0, 1, 2, 3, 4, 5] if files >= 6 else [-1] * 7)
    assert window_indices(4)[1:3].tolist() == [[0, 0, 0, 1, 2, 3, 3], [0, 0, 1, 2, 3, 3, 3]]


def test_window_edges_and_bounds():
    assert window(0, 1) == [0] * 7
    assert window(2, 20) == [0, 0, 1, 2, 3, 4, 5]
    assert window(17, 20) == [14, 15, 16, 17, 18, 19, 19]
    with pytest.raises(IndexError):
        window(5, 5)


def test_window_maps_stacks_each_frames_window_for_numpy_and_torch():
    maps = np.broadcast_to(np.arange(5, dtype=np.uint8)[:, None, None], (5, 2, 3)).copy()
    stacked = window_maps(maps)
    assert stacked.shape == (5, 7, 2, 3) and stacked.dtype == np.uint8
    assert stacked[:, :, 0, 0].tolist() == window_indices(5).tolist()
    np.testing.assert_array_equal(window_maps(torch.from_numpy(maps)).numpy(), stacked)


def test_groups_cover_every_frame_and_pad_the_last():
    assert groups(9) == [(0, 4), (4, 4), (8, 1)]
    assert groups(8) == [(0, 4), (4, 4)]
    assert groups(0) == []
    assert groups(5, size=2) == [(0, 2), (2, 2), (4, 1)]
    assert group_frames(8, 1) == [8, 8, 8, 8]
    assert group_frames(4, 3) == [4, 5, 6, 6]


# ------------------------------------------------------------------------------------- layout
def face_points(rng: np.random.Generator, side: int = SIDE) -> np.ndarray:
    return rng.uniform(2, side - 2, (68, 2))


def make_subject(root: Path, frames: int, split: str = "train", side: int = SIDE, suffix: str = ".png") -> Path:
    """A subject folder with random images and landmarks (PNG by default, so pixels are exact)."""
    rng = np.random.default_rng(frames)
    for i in range(frames):
        write_image(root / "images" / split / f"{i:05d}{suffix}", rng.integers(0, 256, (side, side, 3), np.uint8))
        (root / "ldmks" / split).mkdir(parents=True, exist_ok=True)
        np.savetxt(root / "ldmks" / split / f"{i:05d}.txt", face_points(rng, side))
    return root


def test_pairs_follow_sorted_order_jpg_before_png(tmp_path):
    root = make_subject(tmp_path, 3)
    write_image(root / "images/train/00003.jpg", np.zeros((SIDE, SIDE, 3), np.uint8))
    np.savetxt(root / "ldmks/train/00003.txt", np.zeros((68, 2)))
    assert [p.name for p in list_frames(root, "train")] == ["00003.jpg", "00000.png", "00001.png", "00002.png"]
    assert [p.name for p in list_frames(root, "train", limit=2)] == ["00003.jpg", "00000.png"]
    with pytest.raises(InputError, match="00003.jpg is unpaired: .* is 00000.txt"):
        list_pairs(root, "train")


def test_layout_errors_are_one_line(tmp_path):
    root = make_subject(tmp_path, 3)
    (root / "ldmks/train/00002.txt").unlink()
    with pytest.raises(InputError, match=r"images/train holds 3 images but .*ldmks/train holds 2 landmark files"):
        list_pairs(root, "train")
    with pytest.raises(InputError, match=r"images/test: folder not found"):
        list_frames(root, "test")
    np.savetxt(root / "ldmks/train/00002.txt", np.zeros((67, 2)))
    with pytest.raises(InputError, match=r"00002.txt: expected 68 rows"):
        read_landmarks(root / "ldmks/train/00002.txt")
    with pytest.raises(InputError, match="fewer than one group"):
        FrameGroups(root, "train")


def test_images_read_to_minus_one_one_as_the_original(tmp_path):
    image = np.arange(SIDE * SIDE * 3).reshape(SIDE, SIDE, 3).astype(np.uint8)
    path = write_image(tmp_path / "x.png", image)
    ours = read_image_pm1(path)
    expected = (torch.from_numpy(image).permute(2, 0, 1).float().div(255) - 0.5) / 0.5
    assert ours.dtype == torch.float32 and torch.equal(ours, expected)
    assert read_image_pm1(path, resolution=16).shape == (3, 16, 16)


def test_frame_groups_drop_or_pad_the_trailing_frames(tmp_path):
    root = make_subject(tmp_path, 6)
    dropped, kept = FrameGroups(root, "train"), FrameGroups(root, "train", keep_partial=True)
    assert len(dropped) == 1 and kept.groups == [(0, 4), (4, 2)]
    item = kept[1]
    assert item.shape == (4, 3, SIDE, SIDE) and item.dtype == torch.float32
    frames = list_frames(root, "train")
    assert torch.equal(item[1], read_image_pm1(frames[5])) and torch.equal(item[3], item[1])
    assert torch.equal(dropped[0][2], read_image_pm1(frames[2]))


def test_landmark_groups_give_seven_maps_per_frame_and_the_images(tmp_path):
    root = make_subject(tmp_path, 9)
    data = LandmarkGroups(root, "train")
    assert len(data) == 2 and data.used == 8
    maps, images = data[1]
    assert maps.shape == (4, 7, SIDE, SIDE) and maps.dtype == torch.float32
    assert images.shape == (4, 3, SIDE, SIDE)
    pairs = list_pairs(root, "train")
    for slot, t in enumerate(range(4, 8)):
        for channel, source in enumerate(window(t, 8)):
            expected = landmark_map(read_landmarks(pairs[source][1]), SIDE) / np.float32(255)
            np.testing.assert_array_equal(maps[slot, channel].numpy(), expected)
        assert torch.equal(images[slot], read_image_pm1(pairs[t][0]))
    assert set(np.unique(maps.numpy())) <= {0.0, 1.0}
    partial = LandmarkGroups(root, "train", keep_partial=True, style="vpgc68")
    last_maps, _ = partial[2]  # frame 8 alone, padded; its window clamps at 8 (all 9 frames used)
    assert window(8, 9) == [5, 6, 7, 8, 8, 8, 8]
    expected = landmark_map(read_landmarks(pairs[8][1]), SIDE) / np.float32(255)
    np.testing.assert_array_equal(last_maps[3, 3].numpy(), expected)
    with pytest.raises(InputError, match="unknown VPGC landmark style"):
        LandmarkGroups(root, "train", style="fsth")


def test_reduced_resolution_draws_scaled_landmarks(tmp_path):
    root = make_subject(tmp_path, 4)
    maps, images = LandmarkGroups(root, "train", resolution=16)[0]
    assert maps.shape == (4, 7, 16, 16) and images.shape == (4, 3, 16, 16)
    points = read_landmarks(list_pairs(root, "train")[0][1])
    expected = landmark_map(rescale_points(points, (SIDE, SIDE), 16), 16) / np.float32(255)
    np.testing.assert_array_equal(maps[0, 3].numpy(), expected)
    # pixel centres map onto pixel centres: 0.5-pixel border stays at the border
    np.testing.assert_allclose(rescale_points([[-0.5, SIDE - 0.5]], (SIDE, SIDE), 16), [[-0.5, 15.5]])


def test_pre_drawn_heatmaps_are_read_as_grey(tmp_path):
    maps = np.stack([landmark_map(face_points(np.random.default_rng(i)), SIDE) for i in range(3)])
    for i, drawn in enumerate(maps):
        write_image(tmp_path / "Subject/heatmap/test" / f"{51000 + i}.png", drawn)
    write_image(tmp_path / "Subject/heatmap/test/51003.png", np.repeat(maps[0][..., None], 3, axis=2))
    read = read_heatmaps(tmp_path / "Subject/heatmap/test")
    assert read.dtype == np.uint8 and read.shape == (4, SIDE, SIDE)
    np.testing.assert_array_equal(read[:3], maps)
    np.testing.assert_array_equal(read[3], maps[0])  # RGB converted to grey exactly
    np.testing.assert_array_equal(draw_split(tmp_path / "Subject", limit=2), maps[:2])
    with pytest.raises(InputError, match="neither ldmks/train/ nor heatmap/train/"):
        draw_split(tmp_path / "Subject", "train")


def test_draw_split_draws_the_landmark_files(tmp_path):
    root = make_subject(tmp_path, 5, split="test")
    pairs = list_pairs(root, "test")
    drawn = draw_split(root)
    assert drawn.shape == (5, SIDE, SIDE)
    np.testing.assert_array_equal(drawn[4], landmark_map(read_landmarks(pairs[4][1]), SIDE))
    assert draw_split(root, resolution=16, limit=3).shape == (3, 16, 16)
