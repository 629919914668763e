"""`python -m fsrt.demo` end to end on the sample data with a small random FSRT, its fast path
against a plain per-frame path, and its one-line errors.

The demo runs at `fsrt.animate.SIZE`; the tests lower it to 128 (the smallest size the keypoint
detector's hourglass takes) because the decoder's fixed widths make a 256x256 frame cost
seconds on a CPU. Nothing in the demo depends on the size otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fsrt_testlib import small_checkpoints
from numerics import FORWARD, ROUNDING, assert_close

from common.errors import InputError
from common.image import read_image
from common.precision import frame_agreement
from common.video import read_video, video_info, write_video
from fsrt import animate, demo
from fsrt.checkpoint import load_pretrained
from fsrt.model import pixel_grid

SIZE = 128
FRAMES = 2


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from tools.make_sample_data import main as make_sample

    folder = tmp_path_factory.mktemp("fsrt_sample")
    make_sample(["--out", str(folder), "--frames", str(FRAMES)])
    return folder


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return small_checkpoints(tmp_path_factory.mktemp("fsrt_small"))


@pytest.fixture(autouse=True)
def small_frames(monkeypatch):
    monkeypatch.setattr(animate, "SIZE", SIZE)


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio in dB of two [0, 255] images."""
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


def run_demo(ckpt, sample, out, *extra):
    args = [f"--{flag}={path}" for flag, path in ckpt.items()]
    args += ["--driving_video", str(sample / "driving.mp4"), "--result_video", str(out), "--cpu", *extra]
    if "--source_image" not in extra:
        args += ["--source_image", str(sample / "source.png")]
    return demo.main(args)


def run_with_frames(ckpt, sample, out, *extra):
    """The demo driving source_2.png, writing out/result.mp4 and out/frames/."""
    source = ("--source_image", str(sample / "source_2.png"))
    run_demo(ckpt, sample, out / "result.mp4", "--result_frames", str(out / "frames"), *source, *extra)


@pytest.fixture(scope="module")
def absolute(ckpt, sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("absolute")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(animate, "SIZE", SIZE)
        run_with_frames(ckpt, sample, out)
    return out


def test_video_has_driving_fps_count_and_side_by_side_size(absolute, sample):
    info = video_info(absolute / "result.mp4")
    assert (info.frames, info.width, info.height) == (FRAMES, 2 * SIZE, SIZE)
    assert info.fps == pytest.approx(video_info(sample / "driving.mp4").fps)


def test_result_frames_are_the_right_half_of_the_video(absolute, sample):
    # H.264 is lossy and its encodes differ between FFmpeg builds and CPUs: PSNR thresholds, ~5 dB
    # under the measured 41 dB (result, crf 15) and 35 dB (driving, coded twice); swapped halves
    # measure 8 dB.
    video = read_video(absolute / "result.mp4")
    pngs = sorted((absolute / "frames").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:05d}.png" for i in range(FRAMES)]
    for i, png in enumerate(pngs):
        result = read_image(png)
        assert result.shape == (SIZE, SIZE, 3)
        driving = animate.prepare(read_image(sample / "driving" / f"{i:05d}.png")) * 255
        assert psnr(video[i, :, SIZE:], result) > 35
        assert psnr(video[i, :, :SIZE], driving) > 30


def test_relative_motion_changes_the_output(absolute, ckpt, sample, tmp_path):
    run_demo(
        ckpt,
        sample,
        tmp_path / "rel.mp4",
        "--relative",
        "--result_frames",
        str(tmp_path / "frames"),
        "--source_image",
        str(sample / "source_2.png"),
    )
    relative = read_image(tmp_path / "frames" / "00001.png").astype(int)
    assert np.abs(relative - read_image(absolute / "frames" / "00001.png")).max() > 10  # measured 115


def test_two_sources_relative_from_best_frame(ckpt, sample, tmp_path):
    run_demo(
        ckpt,
        sample,
        tmp_path / "two.mp4",
        "--source_image",
        str(sample / "source.png"),
        str(sample / "source_2.png"),
        "--relative",
        "--adapt_scale",
        "--find_best_frame",
    )
    assert video_info(tmp_path / "two.mp4").frames == FRAMES


@pytest.fixture(scope="module")
def loaded(ckpt):
    return load_pretrained(ckpt["config"], ckpt["checkpoint"], ckpt["kp_checkpoint"])


def test_fast_path_equals_plain_per_frame_path(loaded):
    """Encoder once, cached pixel codes, batched and chunked decoding == re-encoding the sources
    and decoding every frame whole with per-pixel keypoints, as the original loop does."""
    detector, model = loaded
    generator = torch.Generator().manual_seed(0)
    sources = torch.rand(2, 3, SIZE, SIZE, generator=generator)
    driving = torch.rand(2, 3, SIZE, SIZE, generator=generator)
    fast = animate.animate(
        model, detector, sources, driving, relative=True, adapt_scale=True, anchor=1, batch_size=2, max_num_pixels=3000
    )  # ragged chunks

    with torch.no_grad():
        kp_src, exp_src = model.keypoints_and_expression(detector, sources)
        kp_anchor, _ = model.keypoints_and_expression(detector, driving[1:2])
        grid = pixel_grid(SIZE, SIZE).flatten(0, 1)[None]
        plain = []
        for frame in driving:
            z = model.encoder(sources[None], kp_src[None], pixel_grid(SIZE, SIZE), exp_src[None])
            kp, expression = model.keypoints_and_expression(detector, frame[None])
            kp = animate.transfer_motion(kp, kp_src[0], kp_anchor[0], relative=True, adapt_scale=True)
            rgb = model.decoder(z, grid, kp[:, None].expand(-1, grid.shape[1], -1, -1), expression)
            plain.append(rgb.view(SIZE, SIZE, 3).permute(2, 0, 1).clamp(0, 1))
    # the whole decoder in other batch and chunk shapes (other matrix-product blockings): FORWARD,
    # measured 1.5e-6; a keypoint or chunk mix-up would be off by the images' own magnitude
    assert_close(fast, torch.stack(plain), FORWARD, "fast path")
    assert fast.std() > 0.05


def test_transfer_motion_modes():
    driving = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [[0.1, 0.1], [1.1, 0.1], [0.1, 1.1]]])
    source = driving[0] * 2  # four times the hull area of the anchor
    assert animate.transfer_motion(driving, source, driving[0]) is driving
    # hand values: a float32 add or two, so ROUNDING of the coordinates' magnitude (2.2)
    assert_close(animate.transfer_motion(driving, source, driving[0], relative=True)[1], source + 0.1, ROUNDING)
    scaled = animate.transfer_motion(driving, source, driving[0], relative=True, adapt_scale=True)
    assert_close(scaled[1], source + 0.2, ROUNDING)


def test_coincident_or_collinear_points_span_no_area():
    """Detectors may return coincident points (dlib's are whole pixels) or, degenerate, all on one
    line: the hull area is 0 then, not a Qhull error, and what needs an area says so in one line."""
    triangle = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [1.0, 0.0]])  # with repeats
    assert animate.hull_area(triangle) == 0.5
    same = np.full((10, 2), 0.25)
    line = np.stack([np.linspace(-1, 1, 10), np.linspace(-0.5, 0.5, 10)], axis=1)
    assert animate.hull_area(same) == animate.hull_area(line) == 0.0

    kp = torch.from_numpy(np.stack([triangle, triangle + 0.1])).float()
    flat = torch.from_numpy(same).float()[:5]
    assert_close(animate.transfer_motion(kp, flat, kp[0], relative=True), flat + kp - kp[0], ROUNDING)
    for source, anchor, which in ((flat, kp[0], "source image"), (kp[0], flat, "anchor driving frame")):
        with pytest.raises(InputError, match=f"--adapt_scale: the keypoints of the {which} span no area"):
            animate.transfer_motion(kp, source, anchor, relative=True, adapt_scale=True)


class _Landmarks:
    """Stands in for common.landmarks.LandmarkDetector: given landmarks per call, in order."""

    def __init__(self, *landmarks):
        self.landmarks = list(landmarks)

    def detect(self, image, name=None):
        return self.landmarks.pop(0)


def test_best_frame_skips_landmarks_that_span_no_area():
    face = np.random.default_rng(0).uniform(50, 200, (68, 2))
    frame = np.zeros((8, 8, 3), np.float32)
    coincident, collinear = np.full((68, 2), 120.0), np.stack([np.arange(68.0)] * 2, axis=1)
    moved = face * 0.5 + 30  # the source's face, smaller and shifted: distance 0
    other = face[::-1].copy()
    assert animate.best_frame(frame, [frame] * 4, _Landmarks(face, other, coincident, moved, collinear)) == 2
    with pytest.raises(InputError, match="source image: the detected landmarks span no area"):
        animate.best_frame(frame, [frame], _Landmarks(coincident, face))
    with pytest.raises(InputError, match="driving video: no frame has landmarks that span an area"):
        animate.best_frame(frame, [frame] * 2, _Landmarks(face, coincident, collinear))


# ------------------------------------------------------------------------------------ errors
def error_of(capsys, ckpt, sample, out, *extra):
    with pytest.raises(SystemExit) as exit_info:
        run_demo(ckpt, sample, out, *extra)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_unreadable_video_keeps_the_old_result(capsys, ckpt, sample, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    out = tmp_path / "result.mp4"
    out.write_bytes(b"previous result")
    message = error_of(capsys, ckpt, sample, out, "--driving_video", str(bad))
    assert "bad.mp4" in message
    assert out.read_bytes() == b"previous result"


def test_missing_source(capsys, ckpt, sample, tmp_path):
    assert "nope.png" in error_of(
        capsys, ckpt, sample, tmp_path / "r.mp4", "--source_image", str(tmp_path / "nope.png")
    )


def test_source_index_out_of_range(capsys, ckpt, sample, tmp_path):
    assert "--source_idx 5" in error_of(capsys, ckpt, sample, tmp_path / "r.mp4", "--source_idx", "5")


def test_mismatched_checkpoint(capsys, ckpt, sample, tmp_path):
    message = error_of(capsys, ckpt, sample, tmp_path / "r.mp4", "--config", "vox256")
    assert "small.pt" in message


def test_no_face_with_find_best_frame(capsys, ckpt, sample, tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    write_video(tmp_path / "noise.mp4", noise)
    message = error_of(
        capsys,
        ckpt,
        sample,
        tmp_path / "r.mp4",
        "--driving_video",
        str(tmp_path / "noise.mp4"),
        "--relative",
        "--find_best_frame",
    )
    assert "no face" in message and f"{tmp_path / 'noise.mp4'}, driving frame 0" in message
    assert not (tmp_path / "r.mp4").exists()


def test_fp16_on_the_cpu_is_a_one_line_error(capsys, ckpt, sample, tmp_path):
    assert "bf16" in error_of(capsys, ckpt, sample, tmp_path / "r.mp4", "--precision", "fp16")
    assert not (tmp_path / "r.mp4").exists()


def test_bf16_frames_stay_close_to_the_float32_ones(absolute, ckpt, sample, tmp_path):
    out = tmp_path / "bf16"
    run_with_frames(ckpt, sample, out, "--precision", "bf16")
    names = sorted(p.name for p in (absolute / "frames").glob("*.png"))
    assert names == sorted(p.name for p in (out / "frames").glob("*.png"))
    fp32 = np.stack([read_image(absolute / "frames" / name) for name in names]) / 255
    bf16 = np.stack([read_image(out / "frames" / name) for name in names]) / 255
    agreement = frame_agreement(fp32, bf16)
    # bfloat16 keeps 8 mantissa bits (2-3 significant digits) through every matrix product, so the
    # frames move by a few 8-bit levels. Measured: 48 dB, at most 4 levels (also with
    # ATEN_CPU_CAPABILITY=default); 30 dB leaves room for other CPUs' bfloat16 kernels.
    assert 30 < agreement["psnr_db"] < np.inf
