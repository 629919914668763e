"""Stage 2: the landmark encoder and the Prior-Guided Driving Module (`PriorTrans`, the official `Imp`).

Key names follow the official `Imp_*.ckpt`: `mlp_hair.{0,2,4}`, `mlp_head.{0,2,4}`,
`transformer.layers.<i>.0.{norm,fn.to_qkv,fn.to_out.0}`, `transformer.layers.<i>.1.{norm,fn.net.0,fn.net.3}`.
"""

from __future__ import annotations

import torch
from torch import nn

from vpgc.model.autoencoder import Encoder

LANDMARK_FRAMES = 7  # landmark maps of frames t-3 .. t+3 stacked on channels


def landmark_encoder(resolution: int = 512, ch: int = 64, ch_mult=(1, 1, 2, 2, 4, 4)) -> Encoder:
    """The landmark encoder E: 7 landmark maps [B, 7, R, R] -> [B, 256, R/2^(L-1), ...]."""
    return Encoder(
        ch=ch,
        out_ch=256,
        ch_mult=ch_mult,
        num_res_blocks=2,
        attn_resolutions=[16],
        in_channels=LANDMARK_FRAMES,
        resolution=resolution,
        z_channels=256,
        double_z=False,
    )


def init_normal(module: nn.Module, std: float = 0.02) -> nn.Module:
    """The original's `init_net` for stage 2: Conv*/Linear weights N(0, std) and biases 0, BatchNorm2d
    weights N(1, std) and biases 0, other norms untouched; children before parents (`Module.apply`)."""

    def init(m: nn.Module) -> None:
        name = type(m).__name__
        if hasattr(m, "weight") and ("Conv" in name or "Linear" in name):
            nn.init.normal_(m.weight.data, 0.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.constant_(m.bias.data, 0.0)
        elif "BatchNorm2d" in name:
            nn.init.normal_(m.weight.data, 1.0, std)
            nn.init.constant_(m.bias.data, 0.0)

    return module.apply(init)


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden_dim, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Attention(nn.Module):
    """Multi-head self-attention: bias-free qkv projection, softmax(q k^T * dim_head^-0.5), dropout on
    the weights, output projection (skipped only for one head as wide as the model)."""

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, dropout: float = 0.0):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head**-0.5
        self.dropout = nn.Dropout(dropout)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        project = not (heads == 1 and dim_head == dim)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout)) if project else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2) for t in self.to_qkv(x).chunk(3, dim=-1))
        weights = self.dropout(torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * self.scale, dim=-1))
        out = torch.matmul(weights, v).transpose(1, 2).reshape(b, n, -1)
        return self.to_out(out)


class Transformer(nn.Module):
    """Pre-norm layers (attention, then feed-forward, each with a residual); no final norm."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PreNorm(dim, Attention(dim, heads=heads, dim_head=dim_head, dropout=dropout)),
                    PreNorm(dim, FeedForward(dim, mlp_dim, dropout=dropout)),
                ]
            )
            for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attention, feed_forward in self.layers:
            x = attention(x) + x
            x = feed_forward(x) + x
        return x


def _mlp(in_dim: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))


class PriorTrans(nn.Module):
    """Features [B, dim, 16, 16] + codebook prior [B, 256, 4] -> predicted stage-1 encoder output [B, dim, 16, 16].

    Per token (cell h*16 + w): `mlp_head`(feature, prior) + `mlp_hair`(max- or mean-pooled feature over all
    tokens of the frame, prior); then ONE transformer sequence of the B frames' tokens, frame-major, so
    the frames attend to each other. `batch_size` is the original's argument: the batch now comes from
    the input (the original required exactly `batch_size` frames).
    """

    def __init__(
        self,
        batch_size: int = 4,
        dim: int = 256,
        depth: int = 4,
        heads: int = 4,
        mlp_dim: int = 256,
        dropout: float = 0.1,
        dim_head: int = 64,
        pooling: str = "max",
        prior_dim: int = 4,
    ):
        super().__init__()
        if pooling not in ("max", "mean"):
            raise ValueError(f"pooling must be 'max' or 'mean', not {pooling!r}")
        self.mlp_hair = _mlp(dim + prior_dim, dim)
        self.mlp_head = _mlp(dim + prior_dim, dim)
        self.transformer = Transformer(
            dim, depth=depth, heads=heads, dim_head=dim_head, mlp_dim=mlp_dim, dropout=dropout
        )
        self.batch_size = batch_size
        self.pooling = pooling

    def forward(self, features: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        b, c, h, w = features.shape
        tokens = features.flatten(2).transpose(1, 2)  # [B, h*w, C]
        head = self.mlp_head(torch.cat([tokens, prior], dim=-1))
        if self.pooling == "max":
            pooled = torch.max(tokens, dim=1, keepdim=True)[0]
        else:
            pooled = torch.mean(tokens, dim=1, keepdim=True)
        hair = self.mlp_hair(torch.cat([pooled.repeat(1, h * w, 1), prior], dim=-1))
        joint = self.transformer((head + hair).reshape(1, b * h * w, c))
        return joint.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
