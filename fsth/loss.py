"""The original's losses (`model/loss.py`): D hinge, and the E/G loss of meta-training and fine-tuning.

L_EG = vgg19_loss_weight * sum_l L1(VGG19_l) + vggface_loss_weight * sum_l L1(VGGFace_l)
       [+ l1_loss_weight * L1(x_hat, x)   (not in the original; weight 0 by default)]
       - mean(D score of the fake) + fm_loss_weight * sum_blocks L1(D features)
       [+ mch_loss_weight * L1(W_i, e_hat per frame)   (meta-training only)]
Every L1 is a mean over all elements (F.l1_loss).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from common.errors import InputError
from common.vgg.layouts import VGGArch, get_arch
from common.vgg.torch_vgg import PerceptualLoss


def Loss_DSC(D_score_hat: torch.Tensor, D_score: torch.Tensor) -> torch.Tensor:
    """Hinge loss of D: mean(relu(1 - real score) + relu(1 + fake score))."""
    return torch.mean(F.relu(1.0 - D_score) + F.relu(1.0 + D_score_hat))


def vgg_feature_names(arch: VGGArch, indices: Sequence[int]) -> list[str]:
    """The original's `conv_layers` indices -> the feature names it effectively reads.

    It records conv outputs that the following in-place ReLU then overwrites, so every layer
    but the deepest is seen after its ReLU.
    """
    by_index = {i: name for name, i in arch.conv_indices.items()}
    unknown = [i for i in indices if i not in by_index]
    if unknown:
        raise InputError(f"{arch.name} layers {unknown} are not convolutions; valid: {sorted(by_index)}")
    deepest = max(indices)
    return [by_index[i] if i == deepest else by_index[i].replace("conv", "relu") for i in indices]


def _perceptual(
    weight_file: str | os.PathLike | None,
    key: str,
    arch: str | VGGArch,
    indices: Sequence[int],
    normalize: bool,
    loss_weight: float,
) -> PerceptualLoss | None:
    """The frozen VGG term, or None when its loss weight is 0 (no file is read then)."""
    if loss_weight == 0:
        return None
    arch = get_arch(arch) if isinstance(arch, str) else arch
    if weight_file is None or not os.path.isfile(weight_file):
        where = "is not set" if weight_file is None else f"{weight_file} not found"
        raise InputError(
            f"{key} {where}: convert {arch.source.split(' ')[0]} with `python -m tools.convert_vgg "
            f"--caffemodel FILE --arch {arch.name} --format fsth --out FILE` and set {key}"
        )
    return PerceptualLoss(
        weight_file, arch, vgg_feature_names(arch, indices), input_range=(0.0, 1.0) if normalize else (0.0, 255.0)
    )


class EGLosses(NamedTuple):
    """The terms the original returns, in its order (mch only in meta-training)."""

    total: torch.Tensor
    vgg19: torch.Tensor
    vggface: torch.Tensor
    content: torch.Tensor
    adv: torch.Tensor
    fm: torch.Tensor
    mch: torch.Tensor | None = None


class Loss_EG_finetune(nn.Module):
    """Content + adversarial + feature-matching loss of E and G (fine-tuning: no matching term).

    The VGG networks are frozen; `vgg19_arch`/`vggface_arch` exist so tests can use small ones.
    A VGG term whose loss weight is 0 is neither loaded nor computed (logged as 0); the original
    loads and evaluates it all the same, only to multiply it by 0.
    """

    def __init__(
        self,
        vgg19_layers,
        vggface_layers,
        vgg19_weight_file,
        vggface_weight_file,
        vgg19_loss_weight,
        vggface_loss_weight,
        fm_loss_weight,
        normalize=True,
        vgg19_arch: str | VGGArch = "vgg19",
        vggface_arch: str | VGGArch = "vggface",
        l1_loss_weight: float = 0.0,
    ):
        super().__init__()
        self.vgg19 = _perceptual(
            vgg19_weight_file, "vgg19_weight_file", vgg19_arch, vgg19_layers, normalize, vgg19_loss_weight
        )
        self.vggface = _perceptual(
            vggface_weight_file, "vggface_weight_file", vggface_arch, vggface_layers, normalize, vggface_loss_weight
        )
        self.vgg19_loss_weight, self.vggface_loss_weight = vgg19_loss_weight, vggface_loss_weight
        self.fm_loss_weight, self.l1_loss_weight = fm_loss_weight, l1_loss_weight

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], **kwargs):
        """Built from the settings of `fsth.config` (its keys have the constructor's names)."""
        keys = [
            "vgg19_layers",
            "vggface_layers",
            "vgg19_weight_file",
            "vggface_weight_file",
            "vgg19_loss_weight",
            "vggface_loss_weight",
            "fm_loss_weight",
        ]
        if cls is Loss_EG_meta:
            keys.append("mch_loss_weight")
        return cls(
            *(cfg[k] for k in keys), normalize=cfg["input_normalize"], l1_loss_weight=cfg["l1_loss_weight"], **kwargs
        )

    def adversarial_terms(self, x, x_hat, D_features, D_features_hat, D_score_hat) -> EGLosses:
        vgg19_loss, vggface_loss = (
            x_hat.new_zeros(()) if term is None else term(x_hat, x)  # no gradient to x
            for term in (self.vgg19, self.vggface)
        )
        content = self.vgg19_loss_weight * vgg19_loss + self.vggface_loss_weight * vggface_loss
        if self.l1_loss_weight:  # absent from the original: its sums stay bit-identical at weight 0
            content = content + self.l1_loss_weight * F.l1_loss(x_hat, x)
        adv = -torch.mean(D_score_hat)
        fm = sum(F.l1_loss(real, fake) for real, fake in zip(D_features, D_features_hat))
        total = content + adv + self.fm_loss_weight * fm
        return EGLosses(total, vgg19_loss, vggface_loss, content, adv, fm)

    def forward(self, x, x_hat, D_features, D_features_hat, D_score_hat) -> EGLosses:
        return self.adversarial_terms(x, x_hat, D_features, D_features_hat, D_score_hat)


class Loss_EG_meta(Loss_EG_finetune):
    """Fine-tuning loss plus the embedding matching term: W_i (b, dim), without w0, against
    each of the T per-frame embeddings e_hat (b, T, dim), not their mean."""

    def __init__(
        self,
        vgg19_layers,
        vggface_layers,
        vgg19_weight_file,
        vggface_weight_file,
        vgg19_loss_weight,
        vggface_loss_weight,
        fm_loss_weight,
        mch_loss_weight,
        normalize=True,
        **kwargs,
    ):
        super().__init__(
            vgg19_layers,
            vggface_layers,
            vgg19_weight_file,
            vggface_weight_file,
            vgg19_loss_weight,
            vggface_loss_weight,
            fm_loss_weight,
            normalize,
            **kwargs,
        )
        self.mch_loss_weight = mch_loss_weight

    def forward(self, x, x_hat, D_features, D_features_hat, D_score_hat, e_hat, w) -> EGLosses:
        terms = self.adversarial_terms(x, x_hat, D_features, D_features_hat, D_score_hat)
        mch = F.l1_loss(w.unsqueeze(1).expand_as(e_hat), e_hat)
        return terms._replace(total=terms.total + self.mch_loss_weight * mch, mch=mch)
