"""The two Caffe VGG networks: layer tables, input conventions, where to get them (pure Python).

Caffe conv weights are (out, in, kh, kw), InnerProduct weights (out, in); fc6 reads pool5
flattened as C,H,W. Inputs follow Caffe: BGR, 0-255, per-channel mean subtracted, no std.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import InputError


@dataclass(frozen=True)
class VGGArch:
    name: str
    blocks: tuple[int, ...]  # convolutions per block
    num_classes: int
    mean_bgr: tuple[float, float, float]
    source: str  # the caffemodel file and where to download it, for error messages
    widths: tuple[int, ...] = (64, 128, 256, 512, 512)  # output channels per block
    fc_width: int = 4096

    @property
    def conv_names(self) -> list[str]:
        return [f"conv{b + 1}_{i + 1}" for b, n in enumerate(self.blocks) for i in range(n)]

    @property
    def conv_indices(self) -> dict[str, int]:
        """Caffe conv name -> index in a Sequential of (conv, ReLU)* + max pool per block.

        This is torchvision's `features` numbering and FSTH's `conv_layers` numbering alike.
        """
        index, out = 0, {}
        for b, n in enumerate(self.blocks):
            for i in range(n):
                out[f"conv{b + 1}_{i + 1}"] = index
                index += 2
            index += 1  # max pooling
        return out

    @property
    def channels(self) -> list[int]:
        """Output channels of every convolution, in order."""
        return [self.widths[b] for b, n in enumerate(self.blocks) for _ in range(n)]

    @property
    def fc_shapes(self) -> dict[str, tuple[int, int]]:
        """fc6-fc8 weight shapes (out, in); fc6 reads the 7x7 pool5 map of a 224x224 input."""
        fc = self.fc_width
        return {"fc6": (fc, self.widths[-1] * 7 * 7), "fc7": (fc, fc), "fc8": (self.num_classes, fc)}


VGG19 = VGGArch(
    "vgg19",
    (2, 2, 4, 4, 4),
    1000,
    (103.939, 116.779, 123.68),
    "VGG_ILSVRC_19_layers.caffemodel "
    "(http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/VGG_ILSVRC_19_layers.caffemodel)",
)
VGGFACE = VGGArch(
    "vggface",
    (2, 2, 3, 3, 3),
    2622,
    (93.5940, 104.7624, 129.1863),
    "VGG_FACE.caffemodel (in https://www.robots.ox.ac.uk/~vgg/software/vgg_face/src/vgg_face_caffe.tar.gz)",
)
ARCHS = {a.name: a for a in (VGG19, VGGFACE)}


def get_arch(name: str) -> VGGArch:
    if name not in ARCHS:
        raise InputError(f"unknown VGG architecture '{name}'; choose from {', '.join(ARCHS)}")
    return ARCHS[name]
