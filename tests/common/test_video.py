"""common.video: real codecs, exact where lossless, one-line errors on bad input."""
import imageio
import numpy as np
import pytest

from common import video
from common.errors import InputError
from common.image import write_image


@pytest.fixture(scope="module")
def clip(astronaut):
    """24 real 256x256 frames: a crop window sliding over the astronaut photo."""
    return np.stack([astronaut[120 + 3 * i: 376 + 3 * i, 110 + 2 * i: 366 + 2 * i] for i in range(24)])


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return 10 * np.log10(255**2 / mse)


def test_h264_roundtrip(tmp_path, clip):
    path = video.write_video(tmp_path / "c.mp4", iter(clip), fps=30)
    info = video.video_info(path)
    assert (info.fps, info.frames, info.width, info.height, info.codec) == (30.0, 24, 256, 256, "h264")
    back = video.read_video(path)
    assert back.shape == clip.shape and back.dtype == np.uint8
    assert psnr(back, clip) > 35


def test_streaming_with_every_k_and_max_frames(tmp_path, clip):
    video.write_frames(tmp_path / "frames", clip)
    picked = list(video.iter_frames(tmp_path / "frames", every_k=5, max_frames=3))
    assert len(picked) == 3
    for got, index in zip(picked, (0, 5, 10)):
        assert np.array_equal(got, clip[index])
    mp4 = video.write_video(tmp_path / "c.mp4", clip)
    decoded = list(video.iter_frames(mp4, every_k=4))
    assert len(decoded) == 6 and psnr(decoded[2], clip[8]) > 35


def test_png_sequence_is_exact(tmp_path, clip):
    paths = video.write_frames(tmp_path / "seq", clip[:5], start=7)
    assert [p.name for p in paths] == [f"{i:05d}.png" for i in range(7, 12)]
    assert np.array_equal(video.read_video(tmp_path / "seq"), clip[:5])
    assert video.video_info(tmp_path / "seq").frames == 5


@pytest.mark.parametrize("suffix", [".nut", ".mkv"])
def test_depth_ffv1_is_bit_exact(tmp_path, suffix):
    depth = np.random.default_rng(0).integers(0, 65536, (4, 40, 30), dtype=np.uint16)
    video.write_depth_video(tmp_path / f"d{suffix}", depth)
    assert np.array_equal(video.read_depth_video(tmp_path / f"d{suffix}"), depth)
    with pytest.raises(InputError, match="needs a .nut or .mkv"):
        video.write_depth_video(tmp_path / "d.mp4", depth)
    with pytest.raises(InputError, match="HxW uint16"):
        video.write_depth_video(tmp_path / f"e{suffix}", depth.astype(np.float32))


def test_exr_is_exact(tmp_path):
    depth = np.random.default_rng(1).uniform(0.1, 80.0, (33, 21)).astype(np.float32)
    assert np.array_equal(video.read_exr(video.write_exr(tmp_path / "d.exr", depth)), depth)


def test_side_by_side_layout(clip):
    depth = np.linspace(1.0, 3.0, 256 * 256).reshape(256, 256)
    frame = video.side_by_side(depth, clip[0])
    assert frame.shape == (256, 512, 3)
    grey, colour = video.split_side_by_side(frame)
    assert np.array_equal(colour, clip[0])
    assert grey[0, 0] == 0 and grey[-1, -1] == 255
    assert np.array_equal(grey, video.depth_to_gray8(depth)[..., 0])


def test_gif_and_odd_sizes(tmp_path, clip):
    imageio.mimsave(tmp_path / "a.gif", list(clip[:4]), duration=40, loop=0)
    frames = video.read_video(tmp_path / "a.gif")
    assert frames.shape[0] == 4 and frames.shape[1:3] == (256, 256)
    with video.VideoWriter(tmp_path / "odd.mp4") as writer:
        for frame in clip[:3, :101, :77]:
            writer.write(frame)
    assert writer.padded
    info = video.video_info(tmp_path / "odd.mp4")
    assert (info.width, info.height) == (78, 102)


def test_interrupted_writer_leaves_no_file(tmp_path, clip):
    with pytest.raises(RuntimeError):
        with video.VideoWriter(tmp_path / "x.mp4") as writer:
            writer.write(clip[0])
            raise RuntimeError("crash while writing")
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_name_the_file(tmp_path, clip):
    with pytest.raises(InputError, match="missing.mp4: video file not found"):
        video.read_video(tmp_path / "missing.mp4")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(InputError, match="corrupt.mp4: not a readable video"):
        video.read_video(corrupt)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: folder holds no images"):
        video.read_video(tmp_path / "empty")
    with pytest.raises(InputError, match="no frames to write"):
        video.write_video(tmp_path / "none.mp4", [])
    with pytest.raises(InputError, match="frame size"):
        with video.VideoWriter(tmp_path / "mixed.mp4") as writer:
            writer.write(clip[0])
            writer.write(clip[0, :128])
    text = tmp_path / "notes.avi"
    text.write_text("not a video\n")
    with pytest.raises(InputError, match="notes.avi: not a readable video"):
        video.video_info(text)
