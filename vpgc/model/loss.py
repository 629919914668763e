"""Stage 1's training loss, `VQLPIPSWithSeqDiscriminator` as the official config runs it.

Generator step (optimizer_idx 0): L1 + perceptual_weight * LPIPS (per pixel, then averaged) as the
NLL, a GAN term weighted adaptively on the decoder's last layer and switched on at `disc_start`, and
the codebook loss. Discriminator step (optimizer_idx 1): hinge (or vanilla) loss on both scales.
Despite the class name, `D_type` "multiscale" (the only one supported) never stacks frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from common.errors import InputError
from vpgc.model.discriminator import MultiscaleDiscriminator, init_weights
from vpgc.model.lpips import LPIPS


def adopt_weight(weight: float, global_step: int, threshold: int = 0, value: float = 0.0) -> float:
    """`value` before `threshold` steps, `weight` from then on."""
    return value if global_step < threshold else weight


def _gan_term(logits: torch.Tensor, mode: str, real: bool, for_discriminator: bool) -> torch.Tensor:
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 1.0 if real else 0.0))
    if not for_discriminator:
        return -torch.mean(logits)
    margin = logits - 1 if real else -logits - 1
    return -torch.mean(torch.clamp(margin, max=0.0))


def gan_loss(logits: list[torch.Tensor], mode: str, real: bool, for_discriminator: bool = True) -> torch.Tensor:
    """Mean over the discriminator's scales of the per-scale GAN loss (hinge: mean(relu(1 -/+ D)) for
    D, -mean(D) for the generator; vanilla: BCE with logits)."""
    total = _gan_term(logits[0], mode, real, for_discriminator)
    for scale in logits[1:]:
        total = total + _gan_term(scale, mode, real, for_discriminator)
    return total / len(logits)


class VQLPIPSWithSeqDiscriminator(nn.Module):
    """`perceptual_loss` (frozen LPIPS) and `discriminator` (two-scale PatchGAN, original init).

    `pixelloss_weight` is accepted for the original's signature; the original never uses it either.
    """

    def __init__(
        self,
        disc_start: int,
        codebook_weight: float = 1.0,
        pixelloss_weight: float = 1.0,
        disc_num_layers: int = 3,
        disc_in_channels: int = 3,
        disc_factor: float = 1.0,
        disc_weight: float = 1.0,
        perceptual_weight: float = 1.0,
        use_actnorm: bool = False,
        disc_conditional: bool = False,
        disc_ndf: int = 64,
        disc_loss: str = "hinge",
        D_type: str = "multiscale",
    ):
        super().__init__()
        if disc_loss not in ("hinge", "vanilla"):
            raise InputError(f"disc_loss '{disc_loss}': expected 'hinge' or 'vanilla'")
        if D_type != "multiscale" or use_actnorm or disc_conditional:
            raise InputError(
                "only the official discriminator is supported: D_type 'multiscale', use_actnorm False, "
                f"disc_conditional False (got {D_type!r}, {use_actnorm}, {disc_conditional})"
            )
        self.codebook_weight = codebook_weight
        self.perceptual_loss = LPIPS().eval()
        self.perceptual_weight = perceptual_weight
        self.disc_mode = disc_loss
        self.discriminator = MultiscaleDiscriminator(
            input_nc=disc_in_channels, n_layers_D=disc_num_layers, ndf=disc_ndf
        )
        self.discriminator.apply(init_weights)
        self.discriminator_iter_start = disc_start
        self.disc_factor = disc_factor
        self.discriminator_weight = disc_weight

    def calculate_adaptive_weight(
        self, nll_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor | None
    ) -> torch.Tensor:
        """disc_weight * clamp(|grad nll| / (|grad g| + 1e-4), 0, 1e4) w.r.t. `last_layer`; 0 outside
        training when no gradient can be taken (evaluation under no_grad)."""
        try:
            if last_layer is None:
                raise RuntimeError("no last layer to weigh the GAN loss on")
            nll_grads = torch.autograd.grad(nll_loss, last_layer, retain_graph=True)[0]
            g_grads = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
        except RuntimeError:
            if self.training:
                raise
            return torch.tensor(0.0)
        weight = torch.norm(nll_grads) / (torch.norm(g_grads) + 1e-4)
        return torch.clamp(weight, 0.0, 1e4).detach() * self.discriminator_weight

    def forward(
        self,
        codebook_loss: torch.Tensor,
        inputs: torch.Tensor,
        reconstructions: torch.Tensor,
        optimizer_idx: int,
        global_step: int,
        last_layer: torch.Tensor | None = None,
        split: str = "train",
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(loss, logged scalars named '<split>/<name>') for the generator (0) or discriminator (1) step."""
        inputs, reconstructions = inputs.contiguous(), reconstructions.contiguous()
        disc_factor = adopt_weight(self.disc_factor, global_step, threshold=self.discriminator_iter_start)
        if optimizer_idx == 1:
            if self.perceptual_weight > 0 and self.perceptual_loss.training:
                with torch.no_grad():  # unused, but the original evaluates it: its dropout draws advance the RNG
                    self.perceptual_loss(inputs, reconstructions)
            return self._discriminator_step(inputs, reconstructions, disc_factor, split)

        rec_loss = torch.abs(inputs - reconstructions)
        if self.perceptual_weight > 0:
            p_loss = self.perceptual_loss(inputs, reconstructions)
            rec_loss = rec_loss + self.perceptual_weight * p_loss
        else:
            p_loss = torch.tensor([0.0])
        nll_loss = torch.mean(rec_loss)
        g_loss = gan_loss(self.discriminator(reconstructions), self.disc_mode, real=True, for_discriminator=False)
        d_weight = self.calculate_adaptive_weight(nll_loss, g_loss, last_layer)
        loss = nll_loss + d_weight * disc_factor * g_loss + self.codebook_weight * codebook_loss.mean()
        log = {
            "total_loss": loss.clone().detach().mean(),
            "quant_loss": codebook_loss.detach().mean(),
            "nll_loss": nll_loss.detach().mean(),
            "rec_loss": rec_loss.detach().mean(),
            "p_loss": p_loss.detach().mean(),
            "d_weight": d_weight.detach(),
            "disc_factor": torch.tensor(disc_factor),
            "g_loss": g_loss.detach().mean(),
        }
        return loss, {f"{split}/{name}": value for name, value in log.items()}

    def _discriminator_step(self, inputs, reconstructions, disc_factor, split):
        logits_real = self.discriminator(inputs.detach())
        logits_fake = self.discriminator(reconstructions.detach())
        d_loss_fake = gan_loss(logits_fake, self.disc_mode, real=False)
        d_loss_real = gan_loss(logits_real, self.disc_mode, real=True)
        d_loss = disc_factor * (d_loss_real + d_loss_fake) * 0.5
        log = {
            "disc_loss": d_loss.clone().detach().mean(),
            "d_loss_real": d_loss_real.detach().mean(),
            "d_loss_fake": d_loss_fake.detach().mean(),
        }
        return d_loss, {f"{split}/{name}": value for name, value in log.items()}
