"""common.sample: the sample's frames in order with their landmark / label paths, one-line errors
that say how to build the sample, and the fps from meta.json."""

import json

import numpy as np
import pytest

from common.errors import InputError
from common.image import write_image
from common.sample import DEFAULT_FPS, held_out_frames, require, sample_fps, sample_frames, training_count


def make_sample(folder, frames=3):
    write_image(folder / "source.png", np.zeros((8, 8, 3), np.uint8))
    for i in range(frames):
        write_image(folder / "driving" / f"{i:05d}.png", np.zeros((8, 8, 3), np.uint8))
    return folder


def test_frames_are_source_then_driving_with_their_files(tmp_path):
    frames = sample_frames(make_sample(tmp_path))
    assert [f.image.name for f in frames] == ["source.png", "00000.png", "00001.png", "00002.png"]
    assert frames[0].landmarks == tmp_path / "landmarks" / "source.npy"
    assert frames[2].landmarks == tmp_path / "landmarks" / "driving" / "00001.npy"
    assert frames[3].parsing == tmp_path / "parsing" / "driving" / "00002.png"


@pytest.mark.parametrize("missing", ["source.png", "driving"])
def test_missing_parts_name_the_file_and_the_command(tmp_path, missing):
    make_sample(tmp_path)
    target = tmp_path / missing
    if target.is_dir():
        for child in target.iterdir():
            child.unlink()
        target.rmdir()
    else:
        target.unlink()
    with pytest.raises(InputError, match=f"{missing} not found .*tools.make_sample_data --out {tmp_path}"):
        sample_frames(tmp_path)


def test_empty_driving_folder_and_require(tmp_path):
    make_sample(tmp_path, frames=0)
    (tmp_path / "driving").mkdir()
    with pytest.raises(InputError, match="no frames"):
        sample_frames(tmp_path)
    with pytest.raises(InputError, match="source.npy not found"):
        require(tmp_path / "landmarks" / "source.npy", tmp_path)
    assert require(tmp_path / "source.png", tmp_path) == tmp_path / "source.png"


def test_fps_from_meta_json_else_default(tmp_path):
    assert sample_fps(tmp_path) == DEFAULT_FPS
    (tmp_path / "meta.json").write_text(json.dumps({"fps": 12.5}))
    assert sample_fps(tmp_path) == 12.5
    (tmp_path / "meta.json").write_text("{broken")
    assert sample_fps(tmp_path) == DEFAULT_FPS


@pytest.mark.parametrize(("count", "train"), [(48, 40), (24, 20), (8, 4), (60, 52)])
def test_held_out_is_the_last_sixth_in_groups_of_four(count, train):
    assert training_count(count) == train


def test_too_short_a_clip_for_a_held_out_part():
    with pytest.raises(InputError, match="has 7 frames; a demo needs at least 8"):
        training_count(7)


def test_held_out_frames_are_the_clips_last(tmp_path):
    image = np.zeros((4, 4, 3), np.uint8)
    write_image(tmp_path / "source.png", image)
    for i in range(12):
        write_image(tmp_path / "driving" / f"{i:05d}.png", image)
    assert [f.image.stem for f in held_out_frames(tmp_path)] == ["00008", "00009", "00010", "00011"]
