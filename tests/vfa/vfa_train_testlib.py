"""Helpers of the VFA training tests: tiny MMFace4D layouts and random VGG19 weights in
torchvision's file layout.

A plain module (see vfa_testlib.py for why not a conftest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from common.image import write_image
from common.video import write_depth_video, write_video

# torchvision's vgg19 `features` indices of the 16 convolutions (ReLU after each, pools between blocks).
VGG19_CONVS = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
VGG19_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512)


def write_random_vgg19(path: Path, seed: int = 0) -> Path:
    """A `vgg19-dcbb9e9d.pth`-shaped file: `features.N.weight/bias` with He-scaled random values and
    one classifier entry (which the loader must ignore)."""
    generator = torch.Generator().manual_seed(seed)
    state, channels = {}, 3
    for index, width in zip(VGG19_CONVS, VGG19_WIDTHS):
        std = (2.0 / (channels * 9)) ** 0.5
        state[f"features.{index}.weight"] = torch.randn(width, channels, 3, 3, generator=generator) * std
        state[f"features.{index}.bias"] = torch.randn(width, generator=generator) * 0.01
        channels = width
    state["classifier.6.bias"] = torch.zeros(1000)
    torch.save(state, path)
    return path


def numpy_vgg19_state(seed: int) -> dict[str, torch.Tensor]:
    """Random VGG19 `features.N` weights (He-scaled) and biases (N(0, 0.01²)) in float64, drawn with
    NumPy: the same bits on every CPU (torch.randn's float32 draws depend on the kernel path)."""
    rng = np.random.default_rng(seed)
    state, channels = {}, 3
    for index, width in zip(VGG19_CONVS, VGG19_WIDTHS):
        std = (2.0 / (channels * 9)) ** 0.5
        state[f"features.{index}.weight"] = torch.from_numpy(rng.standard_normal((width, channels, 3, 3)) * std)
        state[f"features.{index}.bias"] = torch.from_numpy(rng.standard_normal(width) * 0.01)
        channels = width
    return state


def rgbd_frames(count: int, size: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`count` colour frames (HxWx3 uint8, smooth) and 16-bit depth frames whose foreground (> 0)
    is a block of (k + 1)·size/16 columns in frame k: the driving frame can be told by its width."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size] / size
    colors, depths = [], []
    for k in range(count):
        phase = rng.random(3) * 6
        color = np.stack([np.sin(6 * xs + p) * np.cos(4 * ys + p) for p in phase], -1)
        colors.append(((color + 1) * 127.5).clip(0, 255).astype(np.uint8))
        depth = np.zeros((size, size), np.uint16)
        width = (k + 1) * size // 16
        depth[size // 8 : -size // 8, 4 : 4 + width] = 1 + 60000 * (xs + ys)[size // 8 : -size // 8, 4 : 4 + width]
        depths.append(depth)
    return colors, depths


def write_rgbd_video(person: Path, name: str, count: int, size: int, seed: int = 0) -> None:
    """`person/color/<name>.mp4` and `person/depth/<name>.nut`."""
    colors, depths = rgbd_frames(count, size, seed)
    write_video(person / "color" / f"{name}.mp4", colors, fps=30, crf=1)
    write_depth_video(person / "depth" / f"{name}.nut", depths, fps=30)


def driving_frame_number(sample: torch.Tensor, size: int) -> int:
    """Which `rgbd_frames` frame an item's tensor [4, H, W] came from (foreground width)."""
    columns = (sample[3] > -1).any(0).sum().item()
    return columns * 16 // size - 1


def write_kinect(folder: Path, count: int, size: int) -> None:
    """`kinect_data`: `static.png` and `0.png` … `<count-1>.png` colour (8-bit) and depth (16-bit)."""
    import cv2

    colors, depths = rgbd_frames(count + 1, size, seed=7)
    names = ["static"] + [str(i) for i in range(count)]
    for name, color, depth in zip(names, colors, depths):
        write_image(folder / "color" / f"{name}.png", color)
        (folder / "depth").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / "depth" / f"{name}.png"), depth)


def write_mmface4d(root: Path, size: int = 256, videos: tuple[int, ...] = (5, 1), frames: int = 3) -> Path:
    """`root/MMFace4D/person<i>/` with `videos[i]` videos of `frames` frames each; returns root."""
    for person, count in enumerate(videos):
        for video in range(count):
            write_rgbd_video(root / "MMFace4D" / f"person{person}", f"v{video}", frames, size, seed=10 * person + video)
    return root
