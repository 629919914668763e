"""FSRT networks; module and attribute names follow the official state-dict keys."""

from fsrt.model.decoder import FSRTPixelPredictor, ImprovedFSRTDecoder
from fsrt.model.discriminator import Discriminator, MultiScaleDiscriminator, kp2gaussian
from fsrt.model.encoder import ImprovedFSRTEncoder
from fsrt.model.expression_encoder import ExpressionEncoder
from fsrt.model.fsrt import FSRT
from fsrt.model.keypoint_detector import KPDetector, make_coordinate_grid, soft_argmax
from fsrt.model.positional_encoding import FSRTPosEncoder, PositionalEncoding, pixel_grid
from fsrt.model.small_decoder import SmallImprovedFSRTDecoder
from fsrt.model.transformer import Transformer

__all__ = [
    "FSRT",
    "KPDetector",
    "ExpressionEncoder",
    "ImprovedFSRTEncoder",
    "ImprovedFSRTDecoder",
    "SmallImprovedFSRTDecoder",
    "FSRTPixelPredictor",
    "Transformer",
    "FSRTPosEncoder",
    "PositionalEncoding",
    "Discriminator",
    "MultiScaleDiscriminator",
    "kp2gaussian",
    "make_coordinate_grid",
    "soft_argmax",
    "pixel_grid",
]
