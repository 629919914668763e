"""Our animation reproduces the original demo's, stored in data/original_animation.npz.

How the file was recorded: andrerochow/fsrt at b89538368f9d86a09c2f968c9bf299e953df6917, run on
CPU (torch 2.13.0+cpu, scikit-image 0.24.0, NumPy 1.26.4) from a scratch copy outside this
repository. Its demo.py was patched only by deleting every `.cuda()` and by stubbing the unused
`ffmpeg` import; `make_animation` itself ran unchanged. The recording script repeated the demo's
`__main__` steps with 128 instead of 256 as the frame size (the smallest the keypoint detector's
hourglass takes): `resize(img, (128, 128))[..., :3]` of every uint8 input, then the `--best_frame`
branch with `relative=True, adapt_movement_scale=True, best_frame=1`, max_num_pixels 65536 (its
default: one chunk per frame) and two sources, i.e.
`make_animation` once forward over frames [1, 2] and once backward over [1, 0], joined as
`backward[::-1] + forward[1:]`. Both runs measure the motion from frame 1 and scale it by the
keypoint hulls of the first source and frame 1.

Weights: `seeded_models` below (the `fsrt_testlib.seeded_state` recipe per part, the small
`SMALL_MODEL` architecture, the last render layer's bias set to 0.5 so that most predictions lie
inside the [0, 1] clamp), loaded with strict=True into the original's KPDetector,
ExpressionEncoder(expression_size=8, in_channels=35) and FSRT (small decoder) built from
SMALL_MODEL as its config. Inputs (stored, uint8): source 0 is skimage's astronaut resized to
128x128 with anti-aliasing, source 1 its crop [40:472, 60:492] resized likewise, and the three
driving frames are affine warps of source 0 (scale 0.95/0.75/1.08, rotation -0.05/0.05/0.08 rad,
translation (-3, 2)/(10, 8)/(5, -4) px, skimage `warp` with mode="edge"), rounded to uint8.

Stored outputs: `predictions` [3, 64, 64, 3], the right (prediction) half of each frame the
original returns ([H, 2W, 3]; its left half was checked to equal the prepared driving frame),
i.e. `clamp(out, 0, 1)` as [H, W, 3], at every second row and column (to keep the file small);
ours is `animate.animate(...)` [T, 3, H, W] permuted to [T, H, W, 3] and subsampled the same way.
`kp_norm` [3, 10, 2]: what the original's `normalize_kp` returned for each frame (recorded by
wrapping it), which is our `animate.transfer_motion` output.

Our decoder's fused attention and other chunk shapes round differently from the original's
written-out attention over one 65536-pixel chunk (see test_fsrt_parity.py). Measured max |diff| /
max |expected|: predictions 1.3e-6 (full frames 1.6e-6; 2.7e-6 with ATEN_CPU_CAPABILITY=default
and one thread), keypoints 1.1e-6, all within `numerics.FORWARD` (5e-5). Scaling the detector's
first convolution by 1.01 moves the predictions 1.5e-3, 30 times the tolerance. The inputs make
the motion settings visible: the anchor frame is shrunk, so adapt_scale's factor is 0.87;
measuring from frame 0 instead of the anchor would be off by 4.7e-2, no adapt_scale by 1.7e-2,
the area ratio without its square root by 1.5e-2.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from fsrt_testlib import DATA, SMALL_MODEL, seeded_state
from numerics import FORWARD, assert_close, mismatch

from common.checkpoint import save_checkpoint
from common.image import write_image
from fsrt import animate, demo
from fsrt.checkpoint import save_fsrt
from fsrt.model import FSRT, KPDetector

SIZE = 128
ANCHOR = 1
SEEDS = dict(kp_detector=1, encoder=2, expression_encoder=4, decoder=5)
RECORDED = DATA / "original_animation.npz"


def seeded_models(perturb: float = 1.0) -> tuple[KPDetector, FSRT]:
    """The recorded weights; `perturb` scales the keypoint detector's first convolution."""
    detector = KPDetector()
    model = FSRT(**SMALL_MODEL)
    parts = {"kp_detector": detector, **{name: getattr(model, name) for name in SEEDS if name != "kp_detector"}}
    for name, module in parts.items():
        state = seeded_state(module.state_dict(), SEEDS[name])
        if name == "decoder":
            state["render_mlp.4.bias"].fill_(0.5)
        module.load_state_dict(state)
    with torch.no_grad():
        next(m for m in detector.modules() if isinstance(m, torch.nn.Conv2d)).weight.mul_(perturb)
    return detector.eval(), model.eval()


def prepared(frames: np.ndarray) -> torch.Tensor:
    """uint8 frames -> [N, 3, SIZE, SIZE], prepared as the demo (and the original) prepares them."""
    return animate.to_tensor(animate.prepare(frame, SIZE) for frame in frames)


def as_recorded(predictions: torch.Tensor) -> torch.Tensor:
    """[T, 3, H, W] -> the stored layout [T, H/2, W/2, 3]."""
    return predictions.permute(0, 2, 3, 1)[:, ::2, ::2]


def animation(perturb: float = 1.0, first: int = 0) -> torch.Tensor:
    """Our fast path on the recorded inputs from driving frame `first` (at most ANCHOR), in
    several decoder batches and ragged pixel chunks."""
    recorded = np.load(RECORDED)
    detector, model = seeded_models(perturb)
    sources, driving = prepared(recorded["sources"]), prepared(recorded["driving"][first:])
    return animate.animate(
        model,
        detector,
        sources,
        driving,
        relative=True,
        adapt_scale=True,
        anchor=ANCHOR - first,
        batch_size=2,
        max_num_pixels=3000,
    )


@pytest.fixture(scope="module")
def expected():
    recorded = np.load(RECORDED)
    assert 0.05 < recorded["predictions"].std() and recorded["predictions"].max() > 0.5  # a real image
    return recorded


def test_animate_matches_the_original(expected):
    assert_close(as_recorded(animation()), expected["predictions"], FORWARD, "predictions")


def test_transferred_keypoints_match_the_original(expected):
    detector, model = seeded_models()
    _, kp_source = animate.encode_sources(model, detector, prepared(expected["sources"]))
    kp, _ = animate.drive_codes(model, detector, prepared(expected["driving"]))
    kp = animate.transfer_motion(kp, kp_source[0], kp[ANCHOR], relative=True, adapt_scale=True)
    assert_close(kp, expected["kp_norm"], FORWARD, "kp_norm")


def test_demo_matches_the_original(expected, tmp_path, monkeypatch):
    """`python -m fsrt.demo --relative --adapt_scale --best_frame 1` with two source images: the
    frames it renders (captured before they are rounded to uint8) are the original's."""
    detector, model = seeded_models()
    (tmp_path / "small.yaml").write_text(yaml.safe_dump({"model": SMALL_MODEL}))
    save_fsrt(tmp_path / "small.pt", model, it=0)
    save_checkpoint(detector.state_dict(), tmp_path / "kp.pt")
    sources = [tmp_path / f"source_{i}.png" for i in range(len(expected["sources"]))]
    for path, image in zip(sources, expected["sources"]):
        write_image(path, image)
    for i, frame in enumerate(expected["driving"]):
        write_image(tmp_path / "driving" / f"{i:05d}.png", frame)

    rendered = []
    render = animate.render

    def recording_render(*args, **kwargs):
        rendered.append(render(*args, **kwargs))
        return rendered[-1]

    monkeypatch.setattr(animate, "SIZE", SIZE)
    monkeypatch.setattr(animate, "render", recording_render)
    demo.main(
        [
            f"--config={tmp_path / 'small.yaml'}",
            f"--checkpoint={tmp_path / 'small.pt'}",
            f"--kp_checkpoint={tmp_path / 'kp.pt'}",
            "--source_image",
            *map(str, sources),
            f"--driving_video={tmp_path / 'driving'}",
            f"--result_video={tmp_path / 'result.mp4'}",
            "--relative",
            "--adapt_scale",
            f"--best_frame={ANCHOR}",
            "--batch_size=2",
            "--max_num_pixels=3000",
            "--cpu",
        ]
    )
    assert_close(as_recorded(torch.cat(rendered)), expected["predictions"], FORWARD, "demo predictions")


def test_a_perturbed_weight_fails(expected):
    """The tolerance is no blanket: the keypoint detector's first convolution scaled by 1.01 puts
    the animation out of it (frames from the anchor on only, to save time)."""
    perturbed = as_recorded(animation(perturb=1.01, first=ANCHOR))
    assert mismatch(perturbed, expected["predictions"][ANCHOR:], FORWARD) is not None
