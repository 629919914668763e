"""Feed-forward reenactment with a meta-trained checkpoint (no fine-tuning).

    python -m fsth.infer --checkpoint save_N.pkl --source_images a.png [b.png ...] \
        --driving DIR_OR_VIDEO --output OUT [--device cpu] [--precision fp32|bf16|fp16]

E embeds the K source frames (image + landmark image), their mean e drives G's AdaIN, and G
renders every driving frame's landmark image. Landmarks come from `<stem>.npy` files found
beside each image (see `fsth.dataset.find_landmarks`), else from the dlib detector. Writes
OUT/frames/00000.png ... and OUT/result.mp4. `--precision bf16` (or fp16 on a GPU) runs E and G
under autocast (`common.precision`); their outputs are cast back to float32 before use.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from common.distributed import add_device_argument, resolve_device
from common.errors import InputError, cli_main
from common.image import image_to_tensor, list_images, read_image, tensor_to_image
from common.landmarks import LandmarkDetector, load_landmarks
from common.precision import add_precision_argument, autocast, check_precision
from common.progress import get_logger, progress
from common.video import DEFAULT_FPS, iter_frames, video_info, write_frames, write_video
from fsth.checkpoint import build_meta_networks, read_meta_checkpoint
from fsth.dataset import find_landmarks, landmark_image

log = get_logger("fsth.infer")


class Reenactor:
    """G and E of a checkpoint in eval mode, at the checkpoint's input_size, on `device`
    (cpu, cuda, cuda:N or a torch.device), running at `precision` (see `common.precision`)."""

    def __init__(
        self,
        checkpoint: str | Path,
        trust_pickle: bool = False,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
    ):
        check_precision(precision, device)  # before the checkpoint is read
        ckpt = read_meta_checkpoint(checkpoint, trust_pickle)
        cfg = ckpt.config or {}
        self.G, self.E, _ = build_meta_networks(ckpt)
        self.G.to(device).eval()
        self.E.to(device).eval()
        self.size = cfg.get("input_size", 256)
        self.normalize = cfg.get("input_normalize", True)
        self.device = device
        self.precision = precision
        self._detector = None

    def _landmarks(self, image: np.ndarray, path: Path | None, label: str) -> np.ndarray:
        """Landmarks of `image` scaled to input_size: from a .npy beside `path`, else detected."""
        npy = find_landmarks(path) if path is not None else None
        if npy is not None:
            landmarks = load_landmarks(npy)
        else:
            self._detector = self._detector or LandmarkDetector("dlib")
            landmarks = self._detector.detect(image, name=label)
        height, width = image.shape[:2]
        return landmarks * np.array([self.size / width, self.size / height], dtype=np.float32)

    def _pair(self, image: np.ndarray, path: Path | None, label: str) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        landmarks = self._landmarks(image, path, label)
        resized = np.asarray(Image.fromarray(image).resize((self.size, self.size), Image.LANCZOS))
        value_range = (0.0, 1.0) if self.normalize else (0.0, 255.0)
        return image_to_tensor(resized, value_range), landmark_image(landmarks, self.size, self.normalize)

    @torch.no_grad()
    def embed(self, sources: Iterable[Path]) -> torch.Tensor:
        """Mean embedding e (1, dim) of the source images."""
        x, y = zip(*(self._pair(read_image(p), p, str(p)) for p in sources))
        with autocast(self.precision, self.device):
            e = self.E(torch.stack(x).to(self.device), torch.stack(y).to(self.device))
        return e.float().mean(dim=0, keepdim=True)

    def _generate(self, landmark_images: list[torch.Tensor], e: torch.Tensor) -> torch.Tensor:
        """G's float32 output for a list of landmark images, all in the identity `e`."""
        with autocast(self.precision, self.device):
            out = self.G(torch.stack(landmark_images).to(self.device), e.expand(len(landmark_images), -1))
        return out.float()

    @torch.no_grad()
    def render(
        self, e: torch.Tensor, frames: Iterable[tuple[np.ndarray, Path | None, str]], batch: int = 8
    ) -> Iterator[np.ndarray]:
        """G's output, uint8 HxWx3, for every (frame, its path or None, label)."""
        value_range = (0.0, 1.0) if self.normalize else (0.0, 255.0)
        chunk = []
        for image, path, label in frames:
            chunk.append(self._pair(image, path, label)[1])
            if len(chunk) == batch:
                yield from tensor_to_image(self._generate(chunk, e), value_range)
                chunk = []
        if chunk:
            yield from tensor_to_image(self._generate(chunk, e), value_range)


def driving_frames(driving: Path) -> tuple[Iterator[tuple[np.ndarray, Path | None, str]], int, float]:
    """(frame, path for a .npy lookup or None, label) of a frame folder or a video, the count, fps."""
    if driving.is_dir():
        paths = list_images(driving)
        if not paths:
            raise InputError(f"{driving}: no images in this folder")
        return ((read_image(p), p, str(p)) for p in paths), len(paths), DEFAULT_FPS
    info = video_info(driving)
    frames = ((f, None, f"{driving} [frame {i}]") for i, f in enumerate(iter_frames(driving)))
    return frames, info.frames, info.fps or DEFAULT_FPS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fsth.infer", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, type=Path, help="save_<step>.pkl of meta-training")
    parser.add_argument("--source_images", required=True, nargs="+", type=Path, help="K frames of the person")
    parser.add_argument("--driving", required=True, type=Path, help="a folder of frames or a video")
    parser.add_argument("--output", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--batch_size",
        type=int,
        help="driving frames per G call (default: 1 on a CPU, where a 256-px frame is fastest alone; 8 on a GPU)",
    )
    parser.add_argument("--trust_pickle", action="store_true", help="allow pickled objects in the checkpoint")
    add_device_argument(parser)
    add_precision_argument(parser)
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error("--batch_size must be positive")
    return args


@cli_main
def main(argv=None) -> None:
    args = parse_args(argv)
    device = resolve_device(args.device)
    batch_size = args.batch_size or (1 if device.type == "cpu" else 8)
    model = Reenactor(args.checkpoint, args.trust_pickle, device, args.precision)
    e = model.embed(args.source_images)
    frames, count, fps = driving_frames(args.driving)
    start = time.perf_counter()
    written = write_frames(
        args.output / "frames", progress(model.render(e, frames, batch_size), desc="frames", total=count)
    )
    elapsed = time.perf_counter() - start
    video = write_video(args.output / "result.mp4", (read_image(p) for p in written), fps=fps)
    log.info(
        "%d frames (%.1f ms per frame) -> %s, %s",
        len(written),
        1000 * elapsed / len(written),
        args.output / "frames",
        video,
    )


if __name__ == "__main__":
    main()
