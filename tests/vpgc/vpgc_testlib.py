"""Helpers of the VPGC tests: the official state-dict manifest and seeded weights.

A plain module rather than a conftest.py: test folders here have no __init__.py, so every
conftest is imported under the one name `conftest` and a second one would shadow the root's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch

DATA = Path(__file__).parent / "data"


def load_manifest() -> dict:
    """Names and shapes of every official checkpoint entry, listed by instantiating the original
    classes (copy of shared/reference/vpgc_state_dict.json)."""
    return json.loads((DATA / "vpgc_state_dict.json").read_text())


def seeded_state(reference: Mapping[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Well-scaled random weights for a state dict, a pure function of its key order and shapes.

    Matrices get N(0, 1/fan_in), vectors N(0, 0.05²), norm scales 1 + N(0, 0.1²), BatchNorm
    running variances U(0.5, 1.5), integer buffers are kept, and the grid codebook
    (`embedding`, a 3-d parameter) is N(0, 1) as the original initialises it. The same recipe
    filled the original's modules for data/original_outputs.npz.
    """
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in reference.items():
        if not value.dtype.is_floating_point:
            state[key] = value.clone()
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=generator) + 0.5
        elif key.endswith("embedding"):
            state[key] = torch.randn(value.shape, generator=generator)
        elif "norm" in key.rsplit(".", 2)[-2] and key.endswith("weight") and value.dim() == 1:
            state[key] = 1 + 0.1 * torch.randn(value.shape, generator=generator)
        elif value.dim() > 1:
            state[key] = torch.randn(value.shape, generator=generator) / value[0].numel() ** 0.5
        else:
            state[key] = 0.05 * torch.randn(value.shape, generator=generator)
    return state


# --- small configurations and inputs of the parity recordings (tests/vpgc/test_vpgc_*parity.py) -----------------

# Stage-1 autoencoder at 64x64: the latent is still 16x16x256, the size the grid quantiser requires.
SMALL_DDCONFIG = dict(
    double_z=False,
    z_channels=256,
    resolution=64,
    in_channels=3,
    out_ch=3,
    ch=32,
    ch_mult=[1, 2, 2],
    num_res_blocks=1,
    attn_resolutions=[16],
    dropout=0.0,
)
# obama_sliding_4's loss parameters; the training-step recording sets disc_start 0 (GAN on at step 0).
LOSS_PARAMS = dict(disc_conditional=False, disc_in_channels=3, disc_start=10000, disc_weight=0.8, codebook_weight=1.0)
# Stage-2 landmark encoder at the same small size (7 landmark maps in, 16x16x256 out).
SMALL_LANDMARK_ENCODER = dict(
    ch=32,
    out_ch=256,
    ch_mult=(1, 2, 2),
    num_res_blocks=1,
    attn_resolutions=[16],
    in_channels=7,
    resolution=64,
    z_channels=256,
    double_z=False,
)
PARITY_SEEDS = dict(vq=11, landmark_encoder=12, prior=13, frames=21, landmarks=22)
LPIPS_CONSTANTS = ("loss.perceptual_loss.scaling_layer.shift", "loss.perceptual_loss.scaling_layer.scale")


def seeded_vq_state(reference: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`seeded_state` for a whole stage-1 model, keeping LPIPS's input scaling constants as they are."""
    state = seeded_state(reference, PARITY_SEEDS["vq"])
    for key in LPIPS_CONSTANTS:
        if key in reference:
            state[key] = reference[key].clone()
    return state


def make_frames(count: int = 4, size: int = 64) -> torch.Tensor:
    """[count, 3, size, size] smooth random images in [-1, 1] with a little fine texture."""
    generator = torch.Generator().manual_seed(PARITY_SEEDS["frames"])
    coarse = torch.rand(count, 3, 8, 8, generator=generator) * 2 - 1
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (smooth + 0.1 * torch.randn(count, 3, size, size, generator=generator)).clamp(-1, 1)


# Polylines of the 68-point layout as VPGC draws them: (first, last, closed).
_CHAINS_68 = ((48, 59, True), (60, 67, True), (36, 41, True), (42, 47, True), (17, 21, False), (22, 26, False))
_CHAINS_68 += ((27, 30, False), (31, 35, False), (0, 16, False))


def _face_points(generator: torch.Generator) -> torch.Tensor:
    """A rough 68-point face (jaw, brows, nose, eyes, mouth) in the unit square, jittered."""
    import math

    def arc(n, cx, cy, rx, ry, start, stop):
        return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in torch.linspace(start, stop, n).tolist()]

    points = arc(17, 0.5, 0.45, 0.38, 0.42, math.pi, 0)  # jaw, left to right along the chin
    points += arc(5, 0.33, 0.33, 0.1, 0.04, math.pi, 2 * math.pi) + arc(5, 0.67, 0.33, 0.1, 0.04, math.pi, 2 * math.pi)
    points += [(0.5, 0.38 + 0.05 * i) for i in range(4)] + [(0.42 + 0.04 * i, 0.6) for i in range(5)]
    for cx in (0.35, 0.65):
        points += arc(6, cx, 0.42, 0.06, 0.025, math.pi, 3 * math.pi - math.pi / 3)
    points += arc(12, 0.5, 0.72, 0.14, 0.06, math.pi, 3 * math.pi - math.pi / 6)
    points += arc(8, 0.5, 0.72, 0.08, 0.025, math.pi, 3 * math.pi - math.pi / 4)
    return torch.tensor(points) + 0.01 * torch.randn(68, 2, generator=generator)


def make_landmark_maps(count: int = 4, size: int = 64) -> torch.Tensor:
    """[count, 7, size, size] float maps in [0, 1]: sparse landmark drawings (cv2 lines, thickness 1) of a
    moving random face, for frames t-3..t+3 of `count` consecutive frames (the stage-2 encoder input)."""
    import cv2
    import numpy as np

    generator = torch.Generator().manual_seed(PARITY_SEEDS["landmarks"])
    base = _face_points(generator)
    maps = []
    for _ in range(count + 6):
        points = (base + 0.015 * torch.randn(68, 2, generator=generator)) * size
        canvas = np.zeros((size, size), np.uint8)
        for first, last, closed in _CHAINS_68:
            chain = points[first : last + 1].tolist()
            pairs = list(zip(chain[:-1], chain[1:])) + ([(chain[-1], chain[0])] if closed else [])
            for (x0, y0), (x1, y1) in pairs:
                cv2.line(canvas, (int(x0), int(y0)), (int(x1), int(y1)), color=255, thickness=1)
        maps.append(torch.from_numpy(canvas).float() / 255)
    return torch.stack([torch.stack(maps[t : t + 7]) for t in range(count)])


def make_subject(folder: Path, size: int = 64, train_frames: int = 12, test_frames: int = 6) -> Path:
    """A tiny subject in the VPGC layout, `folder/subject/{images,ldmks}/{train,test}/%05d.{jpg,txt}`,
    from the repository sample (`tools.make_sample_data`: a real face photo warped through a known
    landmark motion, so every frame's 68 landmarks are exact)."""
    import numpy as np

    from common.image import read_image, write_image
    from tools.make_sample_data import Motion, make_sample

    sample = folder / "sample"
    make_sample(sample, size=size, motion=Motion(frames=train_frames + test_frames))
    frames = sorted((sample / "driving").glob("*.png"))
    subject = folder / "subject"
    for split, chosen in (("train", frames[:train_frames]), ("test", frames[train_frames:])):
        (subject / "ldmks" / split).mkdir(parents=True, exist_ok=True)
        for index, frame in enumerate(chosen):
            write_image(subject / "images" / split / f"{index:05d}.jpg", read_image(frame))
            points = np.load(sample / "landmarks" / "driving" / f"{frame.stem}.npy")
            np.savetxt(subject / "ldmks" / split / f"{index:05d}.txt", points)
    return subject


def own_cell_nearest(self, vectors: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """A test-speed stand-in for `GridQuantizer.nearest`: the nearest of each cell's OWN codewords only
    (the first `depth` of its 16 * depth candidates), by matrix products. For tests of the training
    machinery, where the exact 4096-candidate search only costs time."""
    with torch.no_grad():
        own = bank[:, : self.depth]  # [cells, depth, e_dim]
        scores = (own**2).sum(-1)[None, :, None, :] - 2 * torch.matmul(vectors, own[None].transpose(-1, -2))
        return scores.argmin(-1)


def own_cell_soft(self, z: torch.Tensor) -> torch.Tensor:
    """A test-speed stand-in for `GridQuantizer.soft` (16x fewer candidates): the softmax lookup over each cell's
    OWN codewords only. For tests of the inference and training machinery, not of the lookup."""
    channels_last, vectors = self._rows(z)
    own = self.candidates()[:, : self.depth]  # [cells, depth, e_dim]
    weights = torch.softmax(torch.matmul(vectors, own.transpose(-1, -2)), dim=-1)
    out = torch.matmul(weights, own).view(channels_last.shape)
    return (channels_last + (out - channels_last).detach()).permute(0, 3, 1, 2).contiguous()
