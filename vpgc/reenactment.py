"""VPGC reenactment as a library: landmark maps in, the subject's frames out.

Frames are rendered in groups of 4 consecutive ones (the transformer attends across the 4 frames
jointly). Each frame's encoder input is the 7 maps of frames t-3..t+3. For every complete group
this is exactly the original's computation, windows clamped at the last multiple of 4 as its
loader does; the original drops the trailing N % 4 frames, here they form a last group padded by
repeating the final frame (windows clamped at N), and the padding is trimmed from the output.

`Reenactor` runs in eval mode by default. The original's demo never calls `.eval()`, so its
transformer dropout (p=0.1) is active and its output is stochastic: `dropout_at_inference=True`
reproduces that. Frames are saved as the original saves them: uint8 truncation of
clip((x + 1) / 2 * 255, 0, 255). `precision` "bf16" (or "fp16" on a GPU) runs the networks under
autocast (`common.precision`); the frames are cast back to float32 before they are clamped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from common.errors import InputError
from common.image import write_image
from common.precision import autocast, check_precision
from common.progress import progress
from common.video import VideoWriter
from vpgc import data
from vpgc.checkpoint import load_stage1, load_stage2
from vpgc.config import load_config
from vpgc.model import PriorTrans, VQGridModel, landmark_encoder

OFFICIAL_LANDMARK_CH, OFFICIAL_LANDMARK_CH_MULT = 64, (1, 1, 2, 2, 4, 4)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] in [-1, 1] -> [B, H, W, 3] uint8: truncation of clip((x + 1) / 2 * 255), in float32."""
    scaled = ((images.detach().float() + 1) / 2 * 255).clamp(0, 255).to(torch.uint8)
    return np.ascontiguousarray(scaled.permute(0, 2, 3, 1).cpu().numpy())


def group_windows(n: int, size: int = data.GROUP) -> list[tuple[int, int, list[list[int]]]]:
    """(start, count, per-frame 7-map windows of the padded group) for every group of n frames.

    Windows of complete groups clamp at the last multiple of `size` (the original's loader); those
    of the trailing partial group clamp at n."""
    complete = n - n % size
    plan = []
    for start, count in data.groups(n, size):
        edge = complete if start + count <= complete else n
        frames = data.group_frames(start, count, size)
        plan.append((start, count, [data.window(t, edge) for t in frames]))
    return plan


def driving_landmarks(driver: np.ndarray, subject: np.ndarray | None = None) -> np.ndarray:
    """Landmarks [N, 68, 2] that drive the subject: the driver's own, or with `subject` (the
    subject's landmark sequence [M, 68, 2]) the driver's expressions and head motion retargeted onto
    the subject's face (`vpgc.retarget`), each side's neutral frame found by `neutral_frame`."""
    from vpgc.retarget import neutral_frame, retarget

    driver = np.asarray(driver, dtype=np.float64)
    if subject is None:
        return driver
    subject = np.asarray(subject, dtype=np.float64)
    return retarget(driver, driver[neutral_frame(driver)], subject[neutral_frame(subject)])


def draw_maps(landmarks: np.ndarray, size: int, style: str = "vpgc68") -> np.ndarray:
    """uint8 [N, size, size] landmark maps of [N, P, 2] landmarks in the original's drawing."""
    return np.stack([data.landmark_map(points, size, style) for points in landmarks])


class Reenactor:
    """The stage-1 model (VQGridModel), the landmark encoder and PriorTrans, with the codebook prior."""

    def __init__(
        self,
        vq: VQGridModel,
        encoder: torch.nn.Module,
        imp: PriorTrans,
        resolution: int = 512,
        dropout_at_inference: bool = False,
        device: torch.device | str | None = None,
        precision: str = "fp32",
    ):
        self.resolution = resolution  # the map and frame side the networks work at
        self.device = torch.device(device) if device is not None else next(vq.parameters()).device
        check_precision(precision, self.device)
        self.precision = precision
        self.vq = vq.to(self.device).eval()
        self.encoder, self.imp = encoder.to(self.device), imp.to(self.device)
        self.set_dropout(dropout_at_inference)
        self.prior = self.vq.quantize.prior(data.GROUP)

    @classmethod
    def from_checkpoints(
        cls,
        load_path,
        encoder_path,
        implicit_path,
        config="obama_sliding_4",
        dropout_at_inference: bool = False,
        device: torch.device | str | None = None,
        landmark_ch: int = OFFICIAL_LANDMARK_CH,
        landmark_ch_mult: Sequence[int] = OFFICIAL_LANDMARK_CH_MULT,
        precision: str = "fp32",
    ) -> Reenactor:
        """Load the stage-1 checkpoint (`load_path`, config `config`) and the two stage-2 files strictly.
        The landmark encoder works at the stage-1 resolution; `landmark_ch`/`landmark_ch_mult` must
        match the checkpoint (the official ones by default)."""
        check_precision(precision, device if device is not None else "cpu")  # before any file is read
        cfg = load_config(config)
        vq = VQGridModel.from_config(cfg, with_loss=False)
        resolution = cfg["model"]["params"]["ddconfig"]["resolution"]
        encoder = landmark_encoder(resolution, landmark_ch, tuple(landmark_ch_mult))
        imp = PriorTrans()
        load_stage2(encoder_path, implicit_path, encoder, imp)
        load_stage1(load_path, vq)
        return cls(vq, encoder, imp, resolution, dropout_at_inference, device, precision)

    def set_dropout(self, active: bool) -> None:
        """Transformer dropout on (the original's demo) or off (eval, the default)."""
        self.dropout_at_inference = active
        self.encoder.train(active)
        self.imp.train(active)

    def _check_maps(self, maps: np.ndarray) -> np.ndarray:
        maps = np.asarray(maps)
        if maps.ndim != 3 or maps.dtype != np.uint8:
            raise InputError(f"landmark maps must be uint8 [N, H, W], got {maps.dtype} {list(maps.shape)}")
        if maps.shape[1:] != (self.resolution, self.resolution):
            raise InputError(
                f"landmark maps are {maps.shape[2]}x{maps.shape[1]} but the model works at "
                f"{self.resolution}x{self.resolution}"
            )
        if len(maps) == 0:
            raise InputError("no landmark maps to render")
        return maps

    @torch.inference_mode()
    def render_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """Encoder inputs uint8 or float [4, 7, H, W] (uint8 is divided by 255) -> float32 frames [4, 3, H, W]
        in [-1, 1]."""
        windows = windows.to(self.device)
        if windows.dtype == torch.uint8:
            windows = windows.float() / 255
        # as vq.decode_code(code, soft=True), with the soft lookup in float32 at any precision: it
        # writes into float32 buffers, and its softmax over 4096 unscaled dot products of 4-vectors
        # gains nothing from bfloat16 but rounding
        with autocast(self.precision, self.device):
            latent = self.vq.quant_conv(self.imp(self.encoder(windows), self.prior[: len(windows)]))
        quantised = self.vq.quantize.soft(latent.float())
        with autocast(self.precision, self.device):
            return self.vq.decode(quantised).float()

    def iter_frames(self, maps: np.ndarray) -> Iterator[np.ndarray]:
        """Rendered frames HxWx3 uint8, one per landmark map of `maps` (uint8 [N, H, W]), in order."""
        maps = self._check_maps(maps)
        source = torch.from_numpy(maps)
        for _, count, windows in group_windows(len(maps)):
            frames = to_uint8(self.render_windows(source[torch.tensor(windows)]))
            yield from frames[:count]

    def frames(self, maps: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] frames for uint8 [N, H, W] landmark maps."""
        return np.stack(list(self.iter_frames(maps)))


def write_results(
    folder: str | os.PathLike, name: str, frames: Iterable[np.ndarray], ext: str = "png", fps: float = 60.0, total=None
) -> int:
    """Frames as `folder/images/%04d.<ext>` and the H.264 video `folder/<name>.mp4` (the original's
    layout and 60 fps); returns the frame count. Everything is built in a hidden folder beside
    `folder` and moved into place only when complete, replacing an earlier `images/` and video."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        count = 0
        with VideoWriter(work / f"{name}.mp4", fps=fps) as video:
            for index, frame in enumerate(progress(frames, desc="rendering", total=total)):
                write_image(work / "images" / f"{index:04d}.{ext}", frame)
                video.write(frame)
                count += 1
        if count == 0:
            raise InputError(f"{folder}: no frames to write")
        folder.mkdir(exist_ok=True)
        if (folder / "images").exists():
            os.replace(folder / "images", work / "replaced_images")
        os.replace(work / "images", folder / "images")
        os.replace(work / f"{name}.mp4", folder / f"{name}.mp4")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return count
