"""The two LSR model types, selected by --model_type."""

from __future__ import annotations

from lsr.models.layout_pretraining_model import LayoutPretrainingModel
from lsr.models.two_step_synthesis_model import TwoStepSynthesisModel

MODEL_TYPES = {"two_step_syn": TwoStepSynthesisModel, "pretrain_layout": LayoutPretrainingModel}


def create_model(config):
    """The model --model_type names, with its networks (not yet built)."""
    return MODEL_TYPES[config.model_type](config)
