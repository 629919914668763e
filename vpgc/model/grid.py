"""The grid-based codebook ("sliding grid"): every latent cell owns a bank of codewords and quantises
against the banks of its 16 nearest cells.

`GridQuantizer.embedding` [256 cells, depth 256, 4] is the official `quantize.embedding`. The candidate
bank of cell n is `embedding[GRID_WINDOW[n]]` flattened knn-rank major, depth minor: candidate
k*depth + d is `embedding[GRID_WINDOW[n][k], d]`. The bank is derived from `embedding` at every call,
so loading a state dict can never leave a stale bank (the original built it once, at construction).

Faithful default: the bank is detached, so `embedding` never receives a gradient (the official
codebook stays at its random initialisation). `learn_codebook=True` lets it learn (a deviation).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

GRID_SIZE = 16  # the latent is GRID_SIZE x GRID_SIZE cells
WINDOW_SIZE = 16  # cells whose banks each cell may use


def _read_window() -> tuple[tuple[int, ...], ...]:
    rows = json.loads(Path(__file__).with_name("grid_window.json").read_text())["knn_idx"]
    return tuple(tuple(int(i) for i in row) for row in rows)


# The 16 nearest cells of every cell (row*16 + col), nearest first, with scikit-learn's KD-tree tie order.
GRID_WINDOW = _read_window()


class GridQuantizer(nn.Module):
    """Hard (stage 1) and soft (stage 2 inference) lookup in the grid codebook.

    A latent z [B, 256, 16, 16] is read per cell n = h*16 + w as 64 consecutive 4-vectors
    (channel = g*4 + j); each is replaced by a candidate of its cell's 4096-entry bank.
    `chunk_rows` bounds memory: distances (and soft weights) are computed for that many (frame, cell)
    rows at a time in two reused buffers of 1 MB per row at e_dim 4, which gives the same indices as
    one big evaluation; fewer, larger chunks cost less thread synchronisation.
    """

    def __init__(
        self, n_e: int = 256, e_dim: int = 4, beta: float = 0.25, learn_codebook: bool = False, chunk_rows: int = 16
    ):
        super().__init__()
        if n_e != GRID_SIZE * GRID_SIZE:
            raise ValueError(f"the grid window table covers {GRID_SIZE * GRID_SIZE} cells, not n_e={n_e}")
        self.n_e, self.e_dim, self.beta = n_e, e_dim, beta
        self.group = 256 // e_dim  # 4-vectors per cell (the latent has 256 channels)
        self.depth = 1024 // e_dim  # codewords per cell
        self.learn_codebook = learn_codebook
        self.chunk_rows = chunk_rows
        self.embedding = nn.Parameter(torch.randn(n_e, self.depth, e_dim))
        self.register_buffer("window", torch.tensor(GRID_WINDOW, dtype=torch.long), persistent=False)

    def candidates(self) -> torch.Tensor:
        """[n_e, 16*depth, e_dim] banks, knn-rank major and depth minor; detached unless learn_codebook."""
        codebook = self.embedding if self.learn_codebook else self.embedding.detach()
        return codebook[self.window].reshape(self.n_e, WINDOW_SIZE * self.depth, self.e_dim)

    def prior(self, batch: int) -> torch.Tensor:
        """Stage 2's codebook prior P: each cell's mean codeword, [batch, n_e, e_dim] (no gradient)."""
        return self.embedding.detach().mean(1).unsqueeze(0).repeat(batch, 1, 1)

    def _rows(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [B, C, H, W] -> (channels-last z [B, H, W, C], its 4-vectors [B, H*W, group, e_dim])."""
        b, c, h, w = z.shape
        if h * w != self.n_e or c != self.group * self.e_dim:
            raise ValueError(f"expected a latent [B, {self.group * self.e_dim}, 16, 16], got {list(z.shape)}")
        channels_last = z.permute(0, 2, 3, 1).contiguous()
        return channels_last, channels_last.view(b, self.n_e, self.group, self.e_dim)

    def _cells_per_chunk(self, batch: int) -> int:
        return max(1, self.chunk_rows // batch)

    def _cell_chunks(self, batch: int):
        step = self._cells_per_chunk(batch)
        for start in range(0, self.n_e, step):
            yield slice(start, min(start + step, self.n_e))

    @staticmethod
    def _per_cell(vectors: torch.Tensor) -> torch.Tensor:
        """[B, n_e, group, e_dim] -> [n_e, B*group, e_dim]: each cell's 4-vectors of all frames as rows."""
        b, n, g, e = vectors.shape
        return vectors.permute(1, 0, 2, 3).reshape(n, b * g, e)

    @torch.no_grad()
    def nearest(self, vectors: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        """First-index argmin of the squared L2 distance of vectors [B, n_e, group, e_dim] to their cell's
        candidates -> int64 [B, n_e, group].

        At the official e_dim 4 the distance is the original's `sum((z - c)**2, -1)` bit for bit: torch sums
        four contiguous numbers in sequence, ((d0 + d1) + d2) + d3, as this loop over the components does, each
        operation running over whole candidate rows in buffers reused across chunks (the literal broadcast has
        an inner loop of 4 elements, and fresh tensors per chunk cost page faults: both several times slower).
        """
        b, n, g, e = vectors.shape
        rows = self._per_cell(vectors)  # [n, B*g, e]
        planes = bank.transpose(1, 2).contiguous()  # [n, e, K]: component j of every candidate, contiguous
        indices = torch.empty(n, b * g, dtype=torch.long, device=vectors.device)
        total, diff = (rows.new_empty(self._cells_per_chunk(b), b * g, bank.shape[1]) for _ in range(2))
        for cells in self._cell_chunks(b):
            count = cells.stop - cells.start
            for j in range(e):
                target = total[:count] if j == 0 else diff[:count]
                torch.sub(rows[cells, :, j, None], planes[cells, None, j], out=target)
                target.mul_(target)
                if j > 0:
                    total[:count].add_(target)
            torch.argmin(total[:count], -1, out=indices[cells])
        return indices.view(n, b, g).permute(1, 0, 2).contiguous()

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[None, None, torch.Tensor]]:
        """Hard lookup -> (z + (z_q - z).detach(), codebook loss, (None, None, indices [B, n_e, group]))."""
        channels_last, vectors = self._rows(z)
        bank = self.candidates()
        indices = self.nearest(vectors, bank)
        cells = torch.arange(self.n_e, device=z.device)[None, :, None]
        z_q = bank[cells, indices].view(channels_last.shape)
        loss = torch.mean((z_q.detach() - channels_last) ** 2) + self.beta * torch.mean(
            (z_q - channels_last.detach()) ** 2
        )
        z_q = channels_last + (z_q - channels_last).detach()
        return z_q.permute(0, 3, 1, 2).contiguous(), loss, (None, None, indices)

    def soft(self, z: torch.Tensor) -> torch.Tensor:
        """Soft lookup: per 4-vector q, softmax over its cell's candidates C of the plain dot products
        C q (no scale, no temperature), weights @ C; returned as z + (out - z).detach()."""
        channels_last, vectors = self._rows(z)
        b, n, g, e = vectors.shape
        rows = self._per_cell(vectors)  # [n, B*g, e]
        bank = self.candidates()
        with torch.no_grad():  # `out` only enters detached; one pair of buffers serves every chunk
            out = torch.empty_like(rows)
            logits, weights = (rows.new_empty(self._cells_per_chunk(b), b * g, bank.shape[1]) for _ in range(2))
            for cells in self._cell_chunks(b):
                count = cells.stop - cells.start
                torch.bmm(rows[cells], bank[cells].transpose(1, 2), out=logits[:count])
                torch.softmax(logits[:count], dim=-1, out=weights[:count])
                torch.bmm(weights[:count], bank[cells], out=out[cells])
        out = out.view(n, b, g, e).permute(1, 0, 2, 3).reshape(channels_last.shape)
        z_q = channels_last + (out - channels_last).detach()
        return z_q.permute(0, 3, 1, 2).contiguous()
