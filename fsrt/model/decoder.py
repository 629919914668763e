"""FSRT decoder: each query pixel attends to the set-latent z and gets its own RGB.

There is no attention between query pixels, so any subset of pixels can be decoded in one pass:
`render` splits them into chunks of bounded size (the output does not depend on the chunk size)
and takes a precomputed pixel code, which is constant for a fixed resolution.
"""

from __future__ import annotations

import torch
from torch import nn

from fsrt.model.mlp import mlp, scaled
from fsrt.model.positional_encoding import FSRTPosEncoder
from fsrt.model.transformer import KeyValues, Transformer


class FSRTPixelPredictor(nn.Module):
    """Query features [kp code | pixel code | expression] -> input MLP -> cross-attention blocks.

    The query stream is LayerNorm'ed inside each block; z is used as is.
    """

    def __init__(
        self,
        num_att_blocks: int = 2,
        pix_octaves: int = 16,
        pix_start_octave: int = -1,
        z_dim: int = 768,
        num_kp: int = 10,
        expression_size: int = 256,
        kp_octaves: int = 4,
        kp_start_octave: int = -1,
        heads: int = 12,
        mlp_dim: int = 1536,
        input_hidden: int = 720,
    ):
        super().__init__()
        self.positional_encoder = FSRTPosEncoder(
            kp_octaves=kp_octaves,
            kp_start_octave=kp_start_octave,
            pix_start_octave=pix_start_octave,
            pix_octaves=pix_octaves,
        )
        self.feat_dim = 4 * pix_octaves + 4 * num_kp * kp_octaves + expression_size
        self.input_mlp = mlp(self.feat_dim, input_hidden, self.feat_dim)
        # Head width is z_dim // 12 in both decoder sizes (the small one just has fewer heads).
        self.transformer = Transformer(
            self.feat_dim, depth=num_att_blocks, heads=heads, dim_head=z_dim // 12, mlp_dim=mlp_dim, kv_dim=z_dim
        )

    def forward(
        self, pixel_code: torch.Tensor, kp_code: torch.Tensor, expression_vector: torch.Tensor | None, kv: KeyValues
    ) -> torch.Tensor:
        """pixel_code [B, n, C_pix], kp_code [B, n or 1, C_kp], expression_vector [B, E] -> [B, n, feat_dim]."""
        batch, count = pixel_code.shape[:2]
        parts = [kp_code.expand(batch, count, -1), pixel_code]
        if expression_vector is not None:
            parts.append(expression_vector[:, None].expand(-1, count, -1))
        return self.transformer(self.input_mlp(torch.cat(parts, dim=-1)), kv)


class ImprovedFSRTDecoder(nn.Module):
    """Pixel predictor followed by the render MLP (480 -> 4x1536 -> 3).

    The output is linear RGB with no squashing; only the demo clamps it to [0, 1]. `width_scale`
    multiplies every hidden width and the latent width z_dim it reads (the encoder's, same scale).
    """

    heads = 12
    mlp_dim = 1536
    render_widths: tuple[int, ...] = (1536, 1536, 1536, 1536)

    def __init__(
        self,
        num_att_blocks: int = 2,
        pix_octaves: int = 16,
        pix_start_octave: int = -1,
        num_kp: int = 10,
        kp_octaves: int = 4,
        kp_start_octave: int = -1,
        expression_size: int = 256,
        width_scale: float = 1.0,
    ):
        super().__init__()
        self.allocation_transformer = FSRTPixelPredictor(
            num_att_blocks=num_att_blocks,
            pix_octaves=pix_octaves,
            pix_start_octave=pix_start_octave,
            num_kp=num_kp,
            expression_size=expression_size,
            kp_octaves=kp_octaves,
            kp_start_octave=kp_start_octave,
            heads=self.heads,
            mlp_dim=scaled(self.mlp_dim, width_scale),
            z_dim=scaled(768, width_scale),
            input_hidden=scaled(720, width_scale),
        )
        widths = (scaled(w, width_scale) for w in self.render_widths)
        self.render_mlp = mlp(self.allocation_transformer.feat_dim, *widths, 3)

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixel code [..., C_pix] of query coordinates [..., 2]; compute it once for a fixed grid."""
        return self.allocation_transformer.positional_encoder.pix_encoding(pixels)

    def render(
        self,
        z: torch.Tensor,
        pixel_code: torch.Tensor,
        keypoints: torch.Tensor,
        expression_vector: torch.Tensor | None = None,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        """RGB of every query pixel, [B, N, 3].

        z [B, T, 768]; pixel_code [B, N, C_pix] or [N, C_pix] shared by the batch
        (`encode_pixels`); keypoints [B, K, 2] for the whole frame or [B, N, K, 2] per query;
        expression_vector [B, E]; chunk_size bounds the queries decoded at once (None: all).
        """
        predictor = self.allocation_transformer
        batch = z.shape[0]
        pixel_code = pixel_code.expand(batch, *pixel_code.shape[-2:])
        kp_code = predictor.positional_encoder.kp_encoding(keypoints.flatten(-2))
        if keypoints.dim() == 3:
            kp_code = kp_code[:, None]
        kv = predictor.transformer.project_kv(z)
        count = pixel_code.shape[1]
        step = chunk_size or count
        chunks = []
        for start in range(0, count, step):
            part = slice(start, start + step)
            chunk_kp = kp_code if kp_code.shape[1] == 1 else kp_code[:, part]
            features = predictor(pixel_code[:, part], chunk_kp, expression_vector, kv)
            chunks.append(self.render_mlp(features))
        return torch.cat(chunks, dim=1)

    def forward(
        self,
        z: torch.Tensor,
        pixels: torch.Tensor,
        keypoints: torch.Tensor,
        expression_vector: torch.Tensor | None = None,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        """The original call: query coordinates pixels [B, N, 2] -> RGB [B, N, 3] (see `render`)."""
        return self.render(z, self.encode_pixels(pixels), keypoints, expression_vector, chunk_size)
