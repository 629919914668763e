"""common.video: real codecs, exact where lossless, one-line errors on bad input."""

import os
import subprocess
import sys
from pathlib import Path

import imageio
import imageio_ffmpeg
import numpy as np
import pytest

from common import video
from common.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clip(astronaut):
    """24 real 256x256 frames: a window sliding over the astronaut's face.

    A face, as this repository encodes. (Below it, the flag patches' fine colour detail caps
    yuv420p at 36 dB even with lossless crf 0.)
    """
    return np.stack([astronaut[10 + 3 * i : 266 + 3 * i, 120 + 2 * i : 376 + 2 * i] for i in range(24)])


def psnr(a, b):
    """dB; lossy encodes are compared with it, never bit for bit: x264's output depends on its
    thread count (1-16 threads moved this clip's PSNR by up to 0.17 dB) and FFmpeg builds convert
    YUV to RGB with their own rounding. A swapped channel or a wrong frame scores below 20 dB."""
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return 10 * np.log10(255**2 / mse) if mse else np.inf


def test_h264_roundtrip(tmp_path, clip):
    path = video.write_video(tmp_path / "c.mp4", iter(clip), fps=30)
    assert path == tmp_path / "c.mp4"
    info = video.video_info(path)
    assert info == video.VideoInfo(
        fps=30.0, frames=24, width=256, height=256, codec="h264", pix_fmt="yuv420p", rotation=0
    )
    back = video.read_video(path)
    assert back.shape == clip.shape and back.dtype == np.uint8
    assert psnr(back, clip) > 35  # 37.8-38.0 dB with 1-16 threads
    # Each decoded frame is its own source frame, not a neighbour: the order is kept.
    assert all(psnr(back[i], clip[i]) > psnr(back[i], clip[i + 1]) + 5 for i in range(23))


def test_streaming_with_every_k_and_max_frames(tmp_path, clip):
    video.write_frames(tmp_path / "frames", clip)
    picked = list(video.iter_frames(tmp_path / "frames", every_k=5, max_frames=3))
    assert len(picked) == 3
    for got, index in zip(picked, (0, 5, 10)):
        assert np.array_equal(got, clip[index])
    mp4 = video.write_video(tmp_path / "c.mp4", clip)
    every_4th = np.stack(list(video.iter_frames(mp4, every_k=4)))
    assert np.array_equal(every_4th, video.read_video(mp4)[::4])  # frames 0, 4, ..., 20
    assert len(list(video.iter_frames(mp4, every_k=7, max_frames=2))) == 2
    assert video.read_video(mp4, every_k=10).shape == (3, 256, 256, 3)  # frames 0, 10, 20
    with pytest.raises(InputError, match="every_k >= 1"):
        video.iter_frames(mp4, every_k=0)


@pytest.mark.parametrize(
    "suffix,codec", [(".mkv", "libx264"), (".mov", "libx264"), (".avi", "mpeg4"), (".webm", "libvpx-vp9")]
)
def test_other_containers(tmp_path, clip, suffix, codec):
    small = clip[:6, ::4, ::4]
    path = video.write_video(tmp_path / f"c{suffix}", small, fps=24, codec=codec, options={"b": "2M"})
    info = video.video_info(path)
    assert (info.fps, info.width, info.height) == (24.0, 64, 64) and info.frames in (6, None)
    back = video.read_video(path)
    # 32.7-33.3 dB whatever the codec and thread count: 64 px frames are capped by yuv420p's halved colour
    assert back.shape == small.shape and psnr(back, small) > 32


def test_png_sequence_is_exact(tmp_path, clip):
    paths = video.write_frames(tmp_path / "seq", clip[:5], start=7)
    assert [p.name for p in paths] == [f"{i:05d}.png" for i in range(7, 12)]
    assert np.array_equal(video.read_video(tmp_path / "seq"), clip[:5])
    info = video.video_info(tmp_path / "seq", default_fps=30)
    assert (info.frames, info.fps, info.width, info.height) == (5, 30, 256, 256)


@pytest.mark.parametrize("suffix", [".nut", ".mkv"])
def test_depth_ffv1_is_bit_exact(tmp_path, suffix):
    depth = np.random.default_rng(0).integers(0, 65536, (4, 40, 30), dtype=np.uint16)
    path = video.write_depth_video(tmp_path / f"d{suffix}", depth)
    assert video.video_info(path).pix_fmt == "gray16le"
    assert np.array_equal(video.read_depth_video(path), depth)
    with pytest.raises(InputError, match="needs a .nut or .mkv"):
        video.write_depth_video(tmp_path / "d.mp4", depth)
    with pytest.raises(InputError, match="HxW uint16"):
        video.write_depth_video(tmp_path / f"e{suffix}", depth.astype(np.float32))
    assert not (tmp_path / f"e{suffix}").exists()


def test_depth_reader_refuses_8bit_video(tmp_path, clip):
    path = video.write_video(tmp_path / "c.mp4", clip[:2])
    with pytest.raises(InputError, match="c.mp4: not a 16-bit depth video .pixel format yuv420p"):
        video.read_depth_video(path)


def test_exr_is_exact(tmp_path):
    depth = np.random.default_rng(1).uniform(0.1, 80.0, (33, 21)).astype(np.float32)
    depth[0, 0] = np.nan  # VFA's background marker survives too
    back = video.read_exr(video.write_exr(tmp_path / "d.exr", depth))
    assert back.dtype == np.float32 and np.array_equal(back, depth, equal_nan=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.exr"]
    with pytest.raises(InputError, match="nope.exr: EXR file not found"):
        video.read_exr(tmp_path / "nope.exr")


def test_exr_disabled_codec_says_what_to_do(tmp_path):
    # OpenCV latches the switch at its first EXR call, so this needs a fresh process.
    script = (
        "import cv2, numpy as np\n"
        "try:\n    cv2.imwrite('x.exr', np.zeros((2, 2), np.float32))\nexcept cv2.error:\n    pass\n"
        "from common import video\n"
        "try:\n    video.write_exr('y.exr', np.zeros((2, 2), np.float32))\n"
        "except RuntimeError as exc:\n    print(exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_ENABLE_OPENEXR"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    ).stdout
    assert "Start Python with OPENCV_IO_ENABLE_OPENEXR=1" in out
    assert not (tmp_path / "y.exr").exists()


def test_side_by_side_layout(clip):
    depth = np.linspace(1.0, 3.0, 256 * 256).reshape(256, 256)
    frame = video.side_by_side(depth, clip[0])
    assert frame.shape == (256, 512, 3)
    assert np.array_equal(frame[:, 256:], clip[0])
    assert np.array_equal(frame[..., 0][:, :256], frame[..., 2][:, :256])  # grey: R = G = B
    grey, colour = video.split_side_by_side(frame)
    assert np.array_equal(colour, clip[0])
    assert grey[0, 0] == 0 and grey[-1, -1] == 255 and np.all(np.diff(grey.ravel().astype(int)) >= 0)
    assert np.array_equal(video.side_by_side(grey, colour), frame)  # split then compose is exact
    depth16 = np.random.default_rng(2).integers(0, 65536, (256, 256), dtype=np.uint16)
    grey16, _ = video.split_side_by_side(video.side_by_side(depth16, clip[0], lo=0, hi=65536))
    assert np.array_equal(grey16, depth16 // 256)  # VFA's depth preview convention
    with_hole = depth.copy()
    with_hole[5, 5] = np.nan
    assert video.depth_to_gray8(with_hole)[5, 5, 0] == 0


def test_gif_and_odd_sizes(tmp_path, clip):
    imageio.mimsave(tmp_path / "a.gif", list(clip[:4]), duration=40, loop=0)
    frames = video.read_video(tmp_path / "a.gif")
    assert frames.shape == (4, 256, 256, 3)
    assert all(psnr(frames[i], clip[i]) > 25 for i in range(4))  # 256-colour palette
    odd = clip[:3, :101, :77]
    with video.VideoWriter(tmp_path / "odd.mp4", fps=30000 / 1001) as writer:
        for frame in odd:
            writer.write(frame)
    assert writer.padded and writer.frames_written == 3
    info = video.video_info(tmp_path / "odd.mp4")
    assert (info.width, info.height) == (78, 102) and info.fps == pytest.approx(30000 / 1001, abs=1e-9)
    back = video.read_video(tmp_path / "odd.mp4")
    assert psnr(back[:, :101, :77], odd) > 35  # 37.5 dB


def test_rotated_phone_video_is_turned_upright(tmp_path, clip):
    # ffmpeg stores a display rotation; the reference is ffmpeg's own autorotated decode. It is
    # another FFmpeg build than PyAV's, whose YUV to RGB rounding may differ: the frames match it
    # to within that (identical here, 41 dB from the source) while a wrong turn or flip is 12 dB.
    video.write_video(tmp_path / "flat.mp4", clip[:2, :64, :96], crf=0)
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run(
        [
            ffmpeg,
            "-loglevel",
            "error",
            "-display_rotation",
            "90",
            "-i",
            tmp_path / "flat.mp4",
            "-c",
            "copy",
            tmp_path / "rot.mp4",
        ],
        check=True,
    )
    raw = subprocess.run(
        [ffmpeg, "-loglevel", "error", "-i", tmp_path / "rot.mp4", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True,
        capture_output=True,
    ).stdout
    info = video.video_info(tmp_path / "rot.mp4")
    assert (info.width, info.height, info.rotation) == (64, 96, 90)
    frames = video.read_video(tmp_path / "rot.mp4")
    assert frames.shape == (2, 96, 64, 3) and frames.flags["C_CONTIGUOUS"]
    assert psnr(frames, np.frombuffer(raw, np.uint8).reshape(2, 96, 64, 3)) > 35


def test_interrupted_writer_leaves_no_file_and_keeps_the_old_one(tmp_path, clip):
    with pytest.raises(RuntimeError, match="crash"):
        with video.VideoWriter(tmp_path / "new.mp4") as writer:
            writer.write(clip[0])
            raise RuntimeError("crash while writing")
    assert list(tmp_path.iterdir()) == []
    small = clip[:, ::4, ::4]
    old = video.write_video(tmp_path / "x.mp4", small[:2])
    before = old.read_bytes()
    with pytest.raises(RuntimeError, match="crash"):
        with video.VideoWriter(old) as writer:
            for frame in np.concatenate([small] * 4):  # past x264's lookahead: packets are muxed
                writer.write(frame)
            assert (tmp_path / ".x.partial.mp4").is_file() and old.read_bytes() == before
            raise RuntimeError("crash while writing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.mp4"] and old.read_bytes() == before


def test_bad_inputs_name_the_file(tmp_path, clip):
    with pytest.raises(InputError, match="missing.mp4: video file not found"):
        video.iter_frames(tmp_path / "missing.mp4")  # reported on the call, not at the first frame
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(InputError, match="corrupt.mp4: not a readable video"):
        video.read_video(corrupt)
    truncated = tmp_path / "truncated.mp4"
    whole = video.write_video(tmp_path / "whole.mp4", clip[:4]).read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match="truncated.mp4: not a readable video"):
        video.video_info(truncated)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: folder holds no images"):
        video.read_video(tmp_path / "empty")
    text = tmp_path / "notes.avi"
    text.write_text("not a video\n")
    with pytest.raises(InputError, match="notes.avi: not a readable video"):
        video.video_info(text)


def test_bad_frames_name_the_file(tmp_path, clip):
    with pytest.raises(InputError, match="none.mp4: no frames to write"):
        video.write_video(tmp_path / "none.mp4", [])
    with pytest.raises(InputError, match="mixed.mp4: frame size 256x128 differs"):
        with video.VideoWriter(tmp_path / "mixed.mp4") as writer:
            writer.write(clip[0])
            writer.write(clip[0, :128])
    with pytest.raises(InputError, match="float.mp4: frames must be .* got float32"):
        video.write_video(tmp_path / "float.mp4", clip[:2].astype(np.float32))
    with pytest.raises(InputError, match="a.xyz: no video format is known for suffix '.xyz'"):
        video.write_video(tmp_path / "a.xyz", clip[:1])
    assert list(tmp_path.iterdir()) == []


def test_mux_audio_copies_the_sound_and_keeps_the_pictures(tmp_path):
    import av

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    talking = tmp_path / "talking.mp4"
    subprocess.run(
        [
            ffmpeg,
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x64:rate=10",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440",
            "-t",
            "1",
            "-shortest",
            "-pix_fmt",
            "yuv420p",
            str(talking),
        ],
        check=True,
    )
    frames = [np.full((64, 64, 3), 20 * i, np.uint8) for i in range(10)]
    result = video.write_video(tmp_path / "result.mp4", frames, fps=10)
    before = video.read_video(result)
    video.mux_audio(result, talking)
    with av.open(str(result)) as container:
        assert len(container.streams.audio) == 1 and container.streams.audio[0].codec_context.sample_rate == 44100
    # the video packets are copied, not re-encoded: the same decoder gives the same pixels
    np.testing.assert_array_equal(video.read_video(result), before)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    silent = video.write_video(tmp_path / "silent.mp4", frames, fps=10)
    with pytest.raises(InputError, match="silent.mp4: no audio stream to copy"):
        video.mux_audio(result, silent)
