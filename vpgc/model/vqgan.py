"""Stage 1: the VQGAN-style autoencoder with the grid codebook (`VQGridModel`).

Registration order = the official Lightning state dict: encoder, decoder, loss (when built),
quantize, quant_conv, post_quant_conv (456 entries with the loss, 391 without).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from vpgc.model.autoencoder import Decoder, Encoder
from vpgc.model.grid import GridQuantizer
from vpgc.model.loss import VQLPIPSWithSeqDiscriminator


def _loss_params(lossconfig: Mapping[str, Any]) -> dict:
    """The constructor arguments from a config's `lossconfig` ({"target", "params"}) or a bare params dict."""
    if "params" in lossconfig or "target" in lossconfig:
        return dict(lossconfig.get("params") or {})
    return dict(lossconfig)


class VQGridModel(nn.Module):
    """encoder -> quant_conv -> grid quantiser -> post_quant_conv -> decoder, plus the training loss."""

    def __init__(
        self,
        ddconfig: Mapping[str, Any],
        lossconfig: Mapping[str, Any] | None = None,
        n_embed: int = 256,
        embed_dim: int = 4,
        learn_codebook: bool = False,
    ):
        super().__init__()
        self.encoder = Encoder(**ddconfig)
        self.decoder = Decoder(**ddconfig)
        if lossconfig is not None:
            self.loss = VQLPIPSWithSeqDiscriminator(**_loss_params(lossconfig))
        self.quantize = GridQuantizer(n_embed, embed_dim, beta=0.25, learn_codebook=learn_codebook)
        z_channels = ddconfig["z_channels"]
        self.quant_conv = nn.Conv2d(z_channels, z_channels, 1)
        self.post_quant_conv = nn.Conv2d(z_channels, z_channels, 1)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], with_loss: bool = True, learn_codebook: bool = False):
        """Build from a loaded config (`vpgc.config.load_config`) or its `model` section."""
        params = (config["model"] if "model" in config else config)["params"]
        return cls(
            params["ddconfig"],
            params["lossconfig"] if with_loss else None,
            n_embed=params["n_embed"],
            embed_dim=params["embed_dim"],
            learn_codebook=learn_codebook,
        )

    def generator_parameters(self) -> list[nn.Parameter]:
        """What the original's autoencoder optimiser steps (the codebook included, though it gets no gradient
        unless learn_codebook)."""
        parts = (self.encoder, self.decoder, self.quantize, self.quant_conv, self.post_quant_conv)
        return [p for part in parts for p in part.parameters()]

    def encode(self, x: torch.Tensor):
        """Images [B, 3, H, W] -> (quantised latent, codebook loss, (None, None, indices))."""
        return self.quantize(self.quant_conv(self.encoder(x)))

    def decode(self, quant: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(quant))

    def forward(self, x: torch.Tensor):
        """-> (reconstruction, codebook loss, (None, None, indices))."""
        quant, emb_loss, info = self.encode(x)
        return self.decode(quant), emb_loss, info

    def decode_code(self, code: torch.Tensor, soft: bool = True) -> torch.Tensor:
        """Image from a predicted encoder output (before quant_conv), as the original's `infer_ldmk`:
        quant_conv -> soft (default) or hard grid lookup -> post_quant_conv -> decoder."""
        h = self.quant_conv(code)
        quant = self.quantize.soft(h) if soft else self.quantize(h)[0]
        return self.decode(quant)

    def last_layer(self) -> torch.Tensor:
        """The weight the adaptive GAN weight is computed on."""
        return self.decoder.conv_out.weight
