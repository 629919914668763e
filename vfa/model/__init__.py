"""VFA networks; module and attribute names follow the official state-dict keys of `VFA.pt`."""

from vfa.model.encoder import CHANNELS, Encoder, EncoderApp
from vfa.model.generator import Generator, relative_latent
from vfa.model.student import InpaintResBlock, StudentSynthesis
from vfa.model.synthesis import (
    Direction,
    MotionInDepth,
    Synthesis,
    SynthesisOutput,
    ToDepth,
    ToFlow,
    ToRGB,
    base_grid,
    flow_and_mask,
    orthonormal_basis,
)

__all__ = [
    "CHANNELS",
    "Direction",
    "Encoder",
    "EncoderApp",
    "Generator",
    "InpaintResBlock",
    "MotionInDepth",
    "StudentSynthesis",
    "Synthesis",
    "SynthesisOutput",
    "ToDepth",
    "ToFlow",
    "ToRGB",
    "base_grid",
    "flow_and_mask",
    "orthonormal_basis",
    "relative_latent",
]
