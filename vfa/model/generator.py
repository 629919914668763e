"""VFA's generator: the shared encoder `enc`, the RGBD generator `dec` and, for distillation and
inference, the flow generator `student_dec`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vfa.model.encoder import Encoder
from vfa.model.ops import BLUR_KERNEL
from vfa.model.student import StudentSynthesis
from vfa.model.synthesis import Direction, Synthesis


def relative_latent(
    direction: Direction,
    wa: torch.Tensor,
    alpha_driving: torch.Tensor,
    alpha_source: torch.Tensor,
    alpha_start: torch.Tensor,
) -> torch.Tensor:
    """Inference's style vector wa + (D(alpha_driving) - D(alpha_start)) + D(alpha_source): the
    driving motion taken relative to the start frame and applied to the source's own motion."""
    basis = direction(None)
    return wa + (alpha_driving @ basis.T - alpha_start @ basis.T) + alpha_source @ basis.T


class Generator(nn.Module):
    """`Generator(size, style_dim, motion_dim, channel_multiplier, in_channels, depth_motion_dim,
    blur_kernel, distilling)` with the original's argument order. `in_channels` defaults to 4 (RGBD),
    what VFA's scripts pass (the original's default, 3, is LIA's RGB layout). With `distilling`
    the encoder and the RGBD generator are frozen and `student_dec` is added (VFA.pt's layout).
    `channel_divisor` (ours; 1 is the original) narrows every convolution by that factor, for models
    small enough to commit (the demo model).
    """

    def __init__(
        self,
        size: int = 256,
        style_dim: int = 512,
        motion_dim: int = 20,
        channel_multiplier: int = 1,
        in_channels: int = 4,
        depth_motion_dim: int = 5,
        blur_kernel: Sequence[float] = BLUR_KERNEL,
        distilling: bool = False,
        channel_divisor: int = 1,
    ):
        super().__init__()
        self.enc = Encoder(size, style_dim, motion_dim, in_channels, channel_divisor)
        self.dec = Synthesis(
            size, style_dim, motion_dim, blur_kernel, channel_multiplier, in_channels, depth_motion_dim, channel_divisor
        )
        self.distilling = distilling
        if distilling:
            self.enc.requires_grad_(False)
            self.dec.requires_grad_(False)
            self.student_dec = StudentSynthesis(style_dim, channel_divisor)

    def get_direction(self) -> torch.Tensor:
        """The orthonormal motion directions Q [style_dim, motion_dim]."""
        return self.dec.direction(None)

    def latent(self, wa: torch.Tensor, alphas: Sequence[torch.Tensor] | None) -> torch.Tensor:
        """The style vector: wa (no alphas), wa + D(alpha_driving) (one, training) or the relative
        latent (three: driving, source, start; inference)."""
        if alphas is None:
            return wa
        if len(alphas) == 1:
            return wa + self.dec.direction(alphas[0])
        return relative_latent(self.dec.direction, wa, *alphas)

    def forward(
        self,
        img_source: torch.Tensor,
        img_drive: torch.Tensor | None,
        h_start: torch.Tensor | None = None,
        testing: bool = False,
    ):
        """The original's three modes (images [B, in_channels, size, size] in [-1, 1]):

        * stage 1 (not distilling): the teacher RGBD image [B, 4, H, W];
        * distilling: (teacher, {out_warp, mask, out_inpaint}) from the student;
        * `testing` (inference; `h_start` = `enc.enc_motion(start frame)` for the relative latent):
          (teacher, {depth_motion_flow, out_warp, mask, rgb_motion_flow, out_inpaint}); without a
          student only depth_motion_flow (the original fails there).

        `img_drive` None reconstructs the source with latent wa.
        """
        wa, alphas, feats = self.enc(img_source, img_drive, h_start)
        latent = self.latent(wa, alphas)
        teacher = self.dec(latent, feats)
        if testing:
            result = {"depth_motion_flow": teacher.depth}
            if self.distilling:
                result.update(self.student_dec(img_source, teacher.flow_logits, latent, testing=True))
            return teacher.image, result
        if self.distilling:
            return teacher.image, self.student_dec(img_source, teacher.flow_logits, latent)
        return teacher.image
