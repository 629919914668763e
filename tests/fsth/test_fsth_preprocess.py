"""The VoxCeleb preprocessing CLIs on small real inputs made from the sample data."""

import pickle
import shutil

import numpy as np
import pytest

from common.image import read_image, write_image
from common.video import write_video
from fsth.dataset import VoxCeleb
from fsth.dataset.voxceleb1 import extract_landmark, sample_frame
from fsth.dataset.voxceleb2 import clean_data, extract_frames


@pytest.fixture(scope="module")
def frames(sample_data):
    return [read_image(p) for p in sorted((sample_data / "driving").glob("*.png"))]


@pytest.fixture
def vox2(frames, tmp_path):
    """person/video with a 25-frame clip, a 6-frame clip, a < 1024-byte junk clip and a corrupt one."""
    video = tmp_path / "mp4" / "id001" / "vid_a"
    video.mkdir(parents=True)
    write_video(video / "00001.mp4", [frames[i % 6] for i in range(25)])
    write_video(video / "00002.mp4", frames)
    (video / "00003.mp4").write_bytes(b"\0" * 100)
    data = (video / "00001.mp4").read_bytes()
    (video / "00004.mp4").write_bytes(data[: len(data) // 3] + b"\xff" * 2000)
    lonely = tmp_path / "mp4" / "id002" / "vid_b"
    lonely.mkdir(parents=True)
    (lonely / "00001.mp4").write_bytes(b"junk")
    return tmp_path / "mp4"


def test_clean_data_moves_tiny_clips_and_empty_folders(vox2, tmp_path):
    clean_data.main([str(vox2), "--recycle_dir", str(tmp_path / "recycle"), "--workers", "2"])
    assert sorted(p.name for p in (tmp_path / "recycle").iterdir()) == [
        "id001_vid_a_00003.mp4",
        "id002_vid_b",
        "id002_vid_b_00001.mp4",
    ]
    assert sorted(p.name for p in (vox2 / "id001" / "vid_a").iterdir()) == ["00001.mp4", "00002.mp4", "00004.mp4"]
    assert clean_data.clean_data(vox2, tmp_path / "recycle") == []  # nothing more to move


def test_extract_frames_samples_twenty_and_resumes(vox2, tmp_path, caplog):
    shutil.rmtree(vox2 / "id002")
    (vox2 / "id001" / "vid_a" / "00003.mp4").unlink()
    out = tmp_path / "frames"
    # the original's bug: a finished clip made it skip the rest of the video; here 00002 is still done
    (out / "id001" / "vid_a" / "00001").mkdir(parents=True)
    written, failures = extract_frames.extract_frames(vox2, out, workers=1)
    assert written == 1 and len(failures) == 1 and "00004.mp4" in failures[0]
    assert sorted(int(p.stem) for p in (out / "id001" / "vid_a" / "00002").iterdir()) == list(range(6))
    assert "skipped" in caplog.text and "00004.mp4" in caplog.text

    shutil.rmtree(out / "id001" / "vid_a" / "00001")
    extract_frames.main([str(vox2), str(out), "--workers", "2"])
    names = sorted(int(p.stem) for p in (out / "id001" / "vid_a" / "00001").iterdir())
    assert names == [round(i * 24 / 19) for i in range(20)] and len(names) == 20
    frame = read_image(out / "id001" / "vid_a" / "00001" / "13.jpg")
    assert np.abs(frame.astype(int) - extract_frames_reference(vox2, 13)).mean() < 6
    assert extract_frames.extract_frames(vox2, out)[0] == 0  # everything done: nothing rewritten
    assert not list(out.rglob(".*.tmp"))


def extract_frames_reference(vox2, index):
    from common.video import iter_frames

    return list(iter_frames(vox2 / "id001" / "vid_a" / "00001.mp4"))[index].astype(int)


def test_sample_frame_picks_fifty_in_numeric_order(tmp_path):
    source = tmp_path / "src" / "id1" / "v1"
    for clip, count in ((2, 40), (10, 30)):  # numeric order: clip 2 before clip 10
        for f in range(count):
            write_image(source / str(clip) / f"{f + 1}.jpg", np.full((4, 4, 3), f, np.uint8))
    bad = tmp_path / "src" / "id1" / "v2" / "clip_x"
    write_image(bad / "1.jpg", np.zeros((4, 4, 3), np.uint8))
    dest = tmp_path / "dest"
    copied, failures = sample_frame.sample_frame(tmp_path / "src", dest, workers=2)
    order = [("2", f"{f + 1}.jpg") for f in range(40)] + [("10", f"{f + 1}.jpg") for f in range(30)]
    expected = {f"{c}_{f}" for c, f in (order[round(i * 69 / 49)] for i in range(50))}
    assert copied == 50 and {p.name for p in (dest / "id1" / "v1").iterdir()} == expected
    assert len(failures) == 1 and "clip_x" in failures[0]
    assert sample_frame.sample_frame(tmp_path / "src", dest)[0] == 0  # resumable


def test_extract_landmark_writes_the_original_metadata(sample_data, tmp_path):
    video = tmp_path / "root" / "p" / "v"
    video.mkdir(parents=True)
    for frame in sorted((sample_data / "driving").glob("*.png"))[:2]:
        shutil.copy(frame, video / frame.name)
    write_image(video / "blank.png", np.full((64, 64, 3), 128, np.uint8))  # no face: left out
    (video / "broken.jpg").write_bytes(b"not an image")
    extract_landmark.main([str(tmp_path / "root"), "--workers", "1"])
    entries = pickle.loads((video / "metadata.pkl").read_bytes())
    assert [name for name, _ in entries] == ["00000.png", "00001.png"]
    for name, lm in entries:
        assert lm.shape == (68, 2) and lm.dtype == np.float32
        truth = np.load(sample_data / "landmarks" / "driving" / name.replace(".png", ".npy"))
        assert np.abs(lm - truth * 256 / 128).mean() < 6  # 256-px coordinates
    assert VoxCeleb(tmp_path / "root", 32, 2)[0][1].shape == (1, 3, 32, 32)
    mtime = (video / "metadata.pkl").stat().st_mtime_ns
    assert extract_landmark.extract_landmark(tmp_path / "root") == (0, [])
    assert (video / "metadata.pkl").stat().st_mtime_ns == mtime


@pytest.mark.parametrize(
    "module, args, message",
    [
        (clean_data, ["{tmp}/none", "--recycle_dir", "{tmp}/r"], "folder not found"),
        (clean_data, ["{tmp}", "--recycle_dir", "{tmp}/r"], "outside"),
        (extract_frames, ["{tmp}", "{tmp}/out"], "no <person>/<video> folders"),
        (extract_frames, ["{tmp}", "{tmp}/out", "--sample_count", "1"], "sample_count must be >= 2"),
        (sample_frame, ["{tmp}/none", "{tmp}/out"], "folder not found"),
        (extract_landmark, ["{tmp}", "--backend", "face_alignment", "--weights_dir", "{tmp}"], "tmp"),
    ],
)
def test_bad_inputs_are_one_line_errors(module, args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        module.main([a.format(tmp=tmp_path) for a in args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
