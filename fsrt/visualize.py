"""Training visualisations, `renders-train.png` and `renders-val.png` in the run directory.

As in the original, a fixed set of up to 12 samples per split is rendered every
`visualize_every` steps: one row per sample with the source image(s), the full driving frame
rendered from them, and the driving frame itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from common.image import to_uint8, write_image

NUM_VISUALIZED = 12
HEADER = 18  # pixels of the column-title strip


def fixed_batch(dataset, count: int = NUM_VISUALIZED) -> dict:
    """The first `count` samples (each a pure function of the dataset seed and its index)."""
    return torch.utils.data.default_collate([dataset[i] for i in range(min(count, len(dataset)))])


@torch.no_grad()
def render_columns(model, detector, batch: dict, device, chunk_size: int) -> list[tuple[str, np.ndarray]]:
    """(title, images [N, H, W, 3] in [0, 1]) per grid column for a `fixed_batch`."""
    was_training = model.training
    model.eval()
    sources = batch["input_images_augm"].to(device)
    target = batch["target_image_augm"].to(device)
    count, num_src, _, height, width = sources.shape
    kp_src, e_src = model.keypoints_and_expression(detector, sources.flatten(0, 1))
    kp_drv, e_drv = model.keypoints_and_expression(detector, target)
    z = model.encode(sources, kp_src.view(count, num_src, *kp_src.shape[1:]), e_src.view(count, num_src, -1))
    rendered = model.render(z, kp_drv, e_drv, height, width, chunk_size).clamp(0, 1)
    model.train(was_training)

    def hwc(images: torch.Tensor) -> np.ndarray:
        return images.permute(0, 2, 3, 1).float().cpu().numpy()

    columns = [("input" if num_src == 1 else f"input {i + 1}", hwc(sources[:, i])) for i in range(num_src)]
    return columns + [("render driving", hwc(rendered)), ("GT driving", hwc(target))]


def save_grid(columns: list[tuple[str, np.ndarray]], path: str | Path) -> Path:
    """One row per sample, one titled column per entry of `columns`."""
    rows = np.concatenate([np.concatenate(list(images), axis=0) for _, images in columns], axis=1)
    width = columns[0][1].shape[2]
    header = Image.new("RGB", (rows.shape[1], HEADER), "white")
    draw = ImageDraw.Draw(header)
    for i, (title, _) in enumerate(columns):
        draw.text((i * width + 4, 3), title, fill="black")
    return write_image(path, np.concatenate([np.asarray(header), to_uint8(rows)], axis=0))
