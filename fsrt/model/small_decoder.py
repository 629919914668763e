"""The `small_decoder: True` variant (unused by the released checkpoints)."""

from __future__ import annotations

from fsrt.model.decoder import ImprovedFSRTDecoder


class SmallImprovedFSRTDecoder(ImprovedFSRTDecoder):
    """Same keys as `ImprovedFSRTDecoder`; 6 attention heads, MLP width 768, render MLP 480 -> 1536 -> 768 -> 3."""

    heads = 6
    mlp_dim = 768
    render_widths = (1536, 768)
