"""VPGC networks; module and attribute names follow the official state-dict keys."""

from vpgc.model.autoencoder import AttnBlock, Decoder, Encoder, ResnetBlock, swish
from vpgc.model.discriminator import MultiscaleDiscriminator, NLayerDiscriminator2, init_weights
from vpgc.model.grid import GRID_WINDOW, GridQuantizer
from vpgc.model.loss import VQLPIPSWithSeqDiscriminator, adopt_weight, gan_loss
from vpgc.model.lpips import LPIPS
from vpgc.model.prior import PriorTrans, init_normal, landmark_encoder
from vpgc.model.vqgan import VQGridModel

__all__ = [
    "GRID_WINDOW",
    "LPIPS",
    "AttnBlock",
    "Decoder",
    "Encoder",
    "GridQuantizer",
    "MultiscaleDiscriminator",
    "NLayerDiscriminator2",
    "PriorTrans",
    "ResnetBlock",
    "VQGridModel",
    "VQLPIPSWithSeqDiscriminator",
    "adopt_weight",
    "gan_loss",
    "init_normal",
    "init_weights",
    "landmark_encoder",
    "swish",
]
