"""Load a face-parsing network from a local checkpoint and turn RGB images into label maps.

Each network keeps its original preprocessing (CelebAMask-HQ U-Net: PIL NEAREST resize to
imsize, [-1,1]; BiSeNet: PIL BILINEAR resize, ImageNet normalisation), and both return maps
in the CelebAMask-HQ label order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from common.errors import InputError
from common.parsing.labels import BISENET_TO_CELEBAMASK, resize_labels

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    build: Callable  # () -> torch.nn.Module
    resample: str  # PIL filter the original resized its input with
    value_range: tuple[float, float]  # the [0,1] tensor is mapped to this range first
    mean: tuple[float, ...] | None  # then normalised with mean/std (BiSeNet only)
    imsize_multiple: int  # the U-Net's four 2x poolings need sides divisible by 16
    source: str  # where the official checkpoint comes from


def _build_unet():
    from common.parsing.unet import CelebAMaskUNet

    return CelebAMaskUNet()


def _build_bisenet():
    from common.parsing.bisenet import BiSeNet

    return BiSeNet(n_classes=19)


MODELS = {
    "celebamask_unet": ModelSpec(
        _build_unet,
        "NEAREST",
        (-1.0, 1.0),
        None,
        16,
        "models/parsenet/model.pth of CelebAMask-HQ face_parsing (Google Drive link in "
        "github.com/switchablenorms/CelebAMask-HQ face_parsing/README.md)",
    ),
    "bisenet": ModelSpec(
        _build_bisenet,
        "BILINEAR",
        (0.0, 1.0),
        IMAGENET_MEAN,
        1,
        "res/cp/79999_iter.pth of zllrunning/face-parsing.PyTorch (Google Drive id 154JgKpzCPW82qINcVieuPH3fZ2e0P812)",
    ),
}
DEFAULT_IMSIZE = 512  # both original test scripts ran at 512


class FaceParser:
    """A loaded network in eval mode; `parse` maps HxWx3 uint8 RGB to HxW uint8 labels."""

    def __init__(self, model: str, network, imsize: int | None = None, device: str = "cpu"):
        self.model = model
        self.spec = MODELS[model]
        self.network = network.eval()
        self.device = device
        self.imsize = self._check_imsize(imsize or DEFAULT_IMSIZE)

    def _check_imsize(self, imsize: int) -> int:
        step = self.spec.imsize_multiple
        if imsize < 32 or imsize % step:
            raise InputError(
                f"imsize {imsize} is not valid for {self.model}: it must be at least 32 and a multiple of {step}"
            )
        return imsize

    def _to_tensor(self, image: np.ndarray, imsize: int):
        from PIL import Image

        from common.image import image_to_tensor

        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"expected an HxWx3 uint8 RGB image, got shape {image.shape} and dtype {image.dtype}")
        resized = np.asarray(Image.fromarray(image).resize((imsize, imsize), getattr(Image, self.spec.resample)))
        tensor = image_to_tensor(resized, self.spec.value_range)
        if self.spec.mean is None:
            return tensor
        import torch

        mean = torch.tensor(self.spec.mean).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        return (tensor - mean) / std

    def logits(self, images: Sequence[np.ndarray], imsize: int | None = None):
        """Nx19xSxS float32 logits (S = imsize) in the network's own class order."""
        import torch

        imsize = self._check_imsize(imsize or self.imsize)
        batch = torch.stack([self._to_tensor(image, imsize) for image in images]).to(self.device)
        with torch.inference_mode():
            out = self.network(batch)
        return out[0] if self.model == "bisenet" else out  # BiSeNet's other two are aux heads

    def parse_batch(
        self, images: Sequence[np.ndarray], imsize: int | None = None, at_input_size: bool = True
    ) -> list[np.ndarray]:
        """Label maps in CelebAMask-HQ order, one per image.

        At each input's size (nearest-neighbour) by default; `at_input_size=False` keeps the
        network's SxS map, which is what the original scripts saved.
        """
        import torch

        if len(images) == 0:
            raise InputError("parse_batch needs at least one image")
        labels = self.logits(images, imsize).argmax(1).to(torch.uint8).cpu().numpy()
        if self.model == "bisenet":
            labels = BISENET_TO_CELEBAMASK[labels]
        if not at_input_size:
            return list(labels)
        return [resize_labels(lab, np.asarray(img).shape[:2]) for lab, img in zip(labels, images)]

    def parse(self, image: np.ndarray, imsize: int | None = None, at_input_size: bool = True) -> np.ndarray:
        """HxW uint8 label map of one HxWx3 uint8 RGB image (see `parse_batch`)."""
        return self.parse_batch([image], imsize, at_input_size)[0]


def load_parser(
    model: str = "celebamask_unet",
    checkpoint: str | os.PathLike | None = None,
    device: str = "cpu",
    imsize: int | None = None,
) -> FaceParser:
    """Build `model` ('celebamask_unet' or 'bisenet') and load a local checkpoint strictly.

    A DataParallel `module.` prefix is accepted; anything else that does not match the
    official layout is a one-line `CheckpointMismatchError`. `imsize` defaults to 512.
    """
    if model not in MODELS:
        raise InputError(f"unknown face-parsing model '{model}'; choose one of {', '.join(MODELS)}")
    spec = MODELS[model]
    from common.checkpoint import load_state_dict_file, load_strict, require_file

    require_file(checkpoint, "checkpoint", f"the official {model} weights are {spec.source}")
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device '{device}' requested but CUDA is not available")
    network = spec.build()
    load_strict(network, load_state_dict_file(checkpoint, map_location="cpu"), source=checkpoint)
    return FaceParser(model, network.to(device), imsize, device)
