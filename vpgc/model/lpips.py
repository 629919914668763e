"""LPIPS (VGG16 variant) as taming-transformers' stage-1 loss uses it: the network of
`common.metrics.lpips` (same module and state-dict names: `scaling_layer`, `net.slice1..5` with
torchvision's layer indices, `lin0..4.model.1`), with taming's file named in its missing-file error.

No weights are downloaded: the backbone comes from a checkpoint (the official stage-1 checkpoint carries it
as `loss.perceptual_loss.net.*`) or from torchvision's VGG16 file (`vgg16_state`), and the lin layers from
taming's `vgg.pth` (`load_lin_weights`) or the same checkpoint. Every parameter is frozen; the lin layers'
dropout is active in train mode, as in taming.
"""

from __future__ import annotations

from common.metrics.lpips import LPIPSNetwork


class LPIPS(LPIPSNetwork):
    """Learned perceptual distance of two [-1, 1] image batches -> [B, 1, 1, 1]."""

    lin_where = (
        "taming-transformers' LPIPS weights (vgg.pth; the VPGC repo ships "
        "Reenactment/taming/modules/autoencoder/lpips/vgg.pth)"
    )
