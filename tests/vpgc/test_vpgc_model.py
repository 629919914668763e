"""vpgc.model: official state-dict layouts, the grid quantiser against float64 brute force, PriorTrans, loss."""

from __future__ import annotations

import pytest
import torch
from numerics import ROUNDING, assert_close
from vpgc_testlib import load_manifest, seeded_state

from common.checkpoint import load_strict
from vpgc.model import (
    GRID_WINDOW,
    LPIPS,
    GridQuantizer,
    PriorTrans,
    VQGridModel,
    VQLPIPSWithSeqDiscriminator,
    init_normal,
    landmark_encoder,
)

# A small stage-1 model whose latent is still the 16x16x256 grid the quantiser needs.
SMALL_DD = {
    "double_z": False,
    "z_channels": 256,
    "resolution": 32,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,
    "ch_mult": [1, 2],
    "num_res_blocks": 1,
    "attn_resolutions": [16],
    "dropout": 0.0,
    "soft_quant": False,
}
LOSS = {"target": "VQLPIPSWithSeqDiscriminator", "params": {"disc_start": 10, "disc_weight": 0.8}}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return load_manifest()


def manifest_state(entries: list[dict], seed: int) -> dict[str, torch.Tensor]:
    """Random tensors with the manifest's names, order, shapes and dtypes."""
    zeros = {e["name"]: torch.zeros(e["shape"], dtype=getattr(torch, e["dtype"])) for e in entries}
    return seeded_state(zeros, seed)


def check_layout(module: torch.nn.Module, entries: list[dict], seed: int) -> None:
    state = module.state_dict()
    assert [(k, list(v.shape)) for k, v in state.items()] == [(e["name"], e["shape"]) for e in entries]
    official = manifest_state(entries, seed)
    load_strict(module, official)
    for key in (entries[0]["name"], entries[-1]["name"]):
        assert torch.equal(module.state_dict()[key], official[key])


def test_stage1_layout_loads_official_state_strictly(manifest):
    params = manifest["config_obama_sliding_4"]["model"]["params"]
    model = VQGridModel(params["ddconfig"], params["lossconfig"], params["n_embed"], params["embed_dim"])
    check_layout(model, manifest["networks"]["stage1_VQGridModel"]["entries"], seed=1)
    official = manifest_state(manifest["networks"]["stage1_VQGridModel"]["entries"], seed=1)
    bank = model.quantize.candidates()  # derived from the loaded codebook, never stale
    assert torch.equal(bank[5, 3 * 256 + 7], official["quantize.embedding"][GRID_WINDOW[5][3], 7])
    assert not any(p.requires_grad for p in model.loss.perceptual_loss.parameters())
    generator = VQGridModel(params["ddconfig"], None, params["n_embed"], params["embed_dim"])
    counts = manifest["networks"]["stage1_generator_only_counts"]
    assert len(generator.state_dict()) == int(counts["state_dict_entries"])


def test_stage2_layouts_load_official_states_strictly(manifest):
    check_layout(landmark_encoder(), manifest["networks"]["stage2_Encoder"]["entries"], seed=2)
    check_layout(PriorTrans(), manifest["networks"]["stage2_Imp"]["entries"], seed=3)


def test_grid_window_is_the_shipped_kd_tree_table(manifest):
    assert [list(row) for row in GRID_WINDOW] == manifest["grid_window"]["knn_idx"]
    centre = 7 * 16 + 7
    offsets = [(0, 0), (0, -1), (0, 1), (1, 0), (-1, 0), (-1, 1), (1, -1), (-1, -1), (1, 1), (0, 2), (2, 0)]
    assert list(GRID_WINDOW[centre][: len(offsets)]) == [centre + 16 * dr + dc for dr, dc in offsets]


# --- grid quantiser ---------------------------------------------------------------------------


def quantiser(seed: int = 0, **kwargs) -> GridQuantizer:
    torch.manual_seed(seed)
    return GridQuantizer(**kwargs)


def latent(batch: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, 256, 16, 16, generator=torch.Generator().manual_seed(seed))


def brute_force(q: GridQuantizer, z: torch.Tensor, frame: int, cell: int):
    """float64 candidates of one cell, its query vectors and their [group, 16*depth] squared distances."""
    bank = q.embedding.detach().double()[list(GRID_WINDOW[cell])].reshape(-1, q.e_dim)
    vectors = z[frame, :, cell // 16, cell % 16].double().reshape(q.group, q.e_dim)
    return bank, vectors, ((vectors[:, None, :] - bank[None]) ** 2).sum(-1)


def test_hard_indices_match_float64_brute_force():
    q, z = quantiser(), latent(1, seed=1)
    z_q, loss, (_, _, indices) = q(z)
    assert indices.shape == (1, 256, 64) and indices.dtype == torch.int64
    for frame, cell in [(0, 0), (0, 119), (0, 255), (0, 37), (0, 200)]:
        bank, vectors, dist = brute_force(q, z, frame, cell)
        ours = indices[frame, cell]
        best = dist.min(1).values
        # equal to the float64 argmin, except where two candidates are closer than float32 rounding
        assert torch.all(dist.gather(1, ours[:, None])[:, 0] - best <= 1e-5 * best.clamp(min=1)), (frame, cell)
        assert (ours == dist.argmin(1)).float().mean() > 0.95
        chosen = bank[ours].reshape(256).float()
        assert_close(z_q[frame, :, cell // 16, cell % 16], chosen, ROUNDING, f"z_q cell {cell}")
    direct = ((z_q.detach() - z) ** 2).mean()
    assert_close(loss, 1.25 * direct, ROUNDING, "codebook loss = (1 + beta) * mse")


def test_first_index_wins_an_exact_tie():
    q, z = quantiser(), latent(1, seed=2)
    cell, group = 40, 5
    with torch.no_grad():
        duplicate = q.embedding[cell, 9].clone()
        q.embedding[GRID_WINDOW[cell][3], 2] = duplicate  # candidate 3*256 + 2, later than candidate 9
        z[0, group * 4 : group * 4 + 4, cell // 16, cell % 16] = duplicate + 0.01  # equal, nonzero distances
    _, _, (_, _, indices) = q(z)
    assert int(indices[0, cell, group]) == 9


def test_chunking_and_batch_size_do_not_change_indices():
    """Chunks of 1, 5 (not a divisor of 256 cells) and 48 (all 3 frames x 16 cells) rows; e_dim 16 keeps
    it fast (the index logic does not depend on e_dim)."""
    z = latent(3, seed=3)
    reference = quantiser(e_dim=16, chunk_rows=4)(z)
    for rows in (1, 5, 48):
        z_q, loss, (_, _, indices) = quantiser(e_dim=16, chunk_rows=rows)(z)
        assert torch.equal(indices, reference[2][2]), rows
        assert torch.equal(z_q, reference[0]), rows
    single = quantiser(e_dim=16)(z[1:2])
    assert torch.equal(single[2][2][0], reference[2][2][1])
    assert torch.equal(single[0][0], reference[0][1])


def test_no_gradient_reaches_the_codebook_by_default():
    q, z = quantiser(e_dim=64), latent(1, seed=4).requires_grad_()
    z_q, loss, _ = q(z)
    (z_q.sum() + loss).backward()
    assert q.embedding.grad is None
    assert z.grad is not None and z.grad.abs().sum() > 0

    learning = quantiser(e_dim=64, learn_codebook=True)
    z_q, loss, _ = learning(latent(1, seed=4))
    (z_q.sum() + loss).backward()
    assert learning.embedding.grad is not None and learning.embedding.grad.abs().sum() > 0


def test_straight_through_value_is_literal():
    q, z = quantiser(e_dim=16), latent(1, seed=5)
    z_q, _, (_, _, indices) = q(z)
    channels_last = z.permute(0, 2, 3, 1)
    code = q.candidates()[torch.arange(256)[None, :, None], indices].reshape(channels_last.shape)
    assert torch.equal(z_q, (channels_last + (code - channels_last)).permute(0, 3, 1, 2))


def test_soft_lookup_matches_float64_brute_force():
    q, z = quantiser(), latent(2, seed=6) * 0.3
    soft = q.soft(z)
    for frame, cell in [(0, 3), (1, 128), (1, 250)]:
        bank, vectors, _ = brute_force(q, z, frame, cell)
        weights = torch.softmax(vectors @ bank.T, dim=-1)
        expected = (weights @ bank).reshape(256)
        assert_close(soft[frame, :, cell // 16, cell % 16], expected, ROUNDING, f"soft cell {cell}")
    q.chunk_rows = 1
    assert_close(q.soft(z), soft, ROUNDING, "soft lookup, other chunking")


def test_prior_is_the_mean_codeword_per_cell():
    q = quantiser()
    prior = q.prior(3)
    assert prior.shape == (3, 256, 4) and not prior.requires_grad
    assert_close(prior[2], q.embedding.detach().double().mean(1), ROUNDING, "prior")


# --- stage 2 ----------------------------------------------------------------------------------


def test_prior_trans_shape_and_frames_attend_jointly():
    torch.manual_seed(0)
    imp = PriorTrans(dim=32, depth=1, heads=2, dim_head=8, mlp_dim=32).eval()
    features = torch.randn(3, 32, 16, 16)
    prior = torch.randn(3, 256, 4)
    out = imp(features, prior)
    assert out.shape == (3, 32, 16, 16)
    changed = features.clone()
    changed[2] += 1.0
    moved = imp(changed, prior)
    assert not torch.allclose(moved[0], out[0])  # frame 0 sees frame 2 through the joint sequence
    assert isinstance(imp.transformer.layers[0][1].fn.net[1], torch.nn.GELU)
    assert imp.transformer.layers[0][1].fn.net[1].approximate == "none"


def test_init_normal_sets_linear_and_conv_weights():
    torch.manual_seed(0)
    imp = init_normal(PriorTrans(dim=32, depth=1, heads=2, dim_head=8, mlp_dim=32))
    assert abs(float(imp.mlp_head[0].weight.detach().std()) - 0.02) < 0.004
    assert float(imp.mlp_head[0].bias.detach().abs().max()) == 0.0
    assert torch.equal(imp.transformer.layers[0][0].norm.weight, torch.ones(32))


# --- stage 1 model and loss on a small configuration --------------------------------------------


@pytest.fixture(scope="module")
def small_model() -> VQGridModel:
    torch.manual_seed(0)
    return VQGridModel(SMALL_DD, LOSS, embed_dim=64)  # 4 codewords of 64 per cell: a cheap quantiser


def test_small_model_forward_and_decode_code(small_model):
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    rec, emb_loss, (_, _, indices) = small_model(x)
    assert rec.shape == x.shape and emb_loss.dim() == 0 and indices.shape == (2, 256, 4)
    code = small_model.encoder(x)
    assert small_model.decode_code(code).shape == x.shape
    assert torch.equal(small_model.decode_code(code, soft=False), small_model.decode(small_model.encode(x)[0]))
    assert small_model.last_layer() is small_model.decoder.conv_out.weight


def test_generator_and_discriminator_losses(small_model):
    torch.manual_seed(1)
    loss_module: VQLPIPSWithSeqDiscriminator = small_model.loss.eval()  # LPIPS dropout off: deterministic
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    rec, emb_loss, _ = small_model(x)
    before, log = loss_module(emb_loss, x, rec, 0, 9, last_layer=small_model.last_layer())
    after, log_after = loss_module(emb_loss, x, rec, 0, 10, last_layer=small_model.last_layer())
    assert float(log["train/disc_factor"]) == 0.0 and float(log_after["train/disc_factor"]) == 1.0
    nll = (torch.abs(x - rec) + loss_module.perceptual_loss(x, rec)).mean()
    g = -sum(logits.mean() for logits in loss_module.discriminator(rec)) / 2
    layer = small_model.last_layer()
    ratio = torch.autograd.grad(nll, layer, retain_graph=True)[0].norm() / (
        torch.autograd.grad(g, layer, retain_graph=True)[0].norm() + 1e-4
    )
    d_weight = ratio.clamp(0, 1e4) * 0.8
    assert_close(log_after["train/d_weight"], d_weight, ROUNDING, "d_weight")
    assert_close(before, nll + emb_loss, ROUNDING, "loss before disc_start")
    assert_close(after, nll + d_weight * g + emb_loss, ROUNDING, "loss after disc_start")
    assert set(log_after) == {
        f"train/{n}"
        for n in ("total_loss", "quant_loss", "nll_loss", "rec_loss", "p_loss", "d_weight", "disc_factor", "g_loss")
    }

    d_loss, d_log = loss_module(emb_loss, x, rec, 1, 10, split="val")
    real, fake = loss_module.discriminator(x), loss_module.discriminator(rec.detach())
    hinge_real = sum(torch.relu(1 - r).mean() for r in real) / 2
    hinge_fake = sum(torch.relu(1 + f).mean() for f in fake) / 2
    assert_close(d_loss, 0.5 * (hinge_real + hinge_fake), ROUNDING, "hinge D loss")
    assert set(d_log) == {"val/disc_loss", "val/d_loss_real", "val/d_loss_fake"}
    assert float(loss_module(emb_loss, x, rec, 1, 9)[0].detach()) == 0.0  # disc_factor 0 before disc_start
    with torch.no_grad():
        _, log_eval = loss_module(emb_loss, x, small_model(x)[0], 0, 10, last_layer=small_model.last_layer())
    assert float(log_eval["train/d_weight"]) == 0.0  # no gradient in evaluation: weight 0, as the original

    loss_module.train()  # the D step evaluates LPIPS as the original does: same dropout draws, same RNG after
    torch.manual_seed(3)
    loss_module(emb_loss, x, rec, 1, 10)
    after_d_step = torch.rand(4)
    torch.manual_seed(3)
    loss_module.perceptual_loss(x, rec)
    assert torch.equal(torch.rand(4), after_d_step)
    loss_module.eval()


def test_lpips_is_zero_for_identical_images_and_loads_lin_weights(tmp_path):
    torch.manual_seed(0)
    lpips = LPIPS().eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert lpips(x, x).shape == (2, 1, 1, 1) and float(lpips(x, x).abs().max()) == 0.0
    lins = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 128, 256, 512, 512))}
    torch.save(lins, tmp_path / "vgg.pth")
    lpips.load_lin_weights(tmp_path / "vgg.pth")
    assert torch.equal(lpips.lin3.model[1].weight, lins["lin3.model.1.weight"])
    assert float(lpips(x, -x).min()) > 0  # positive lin weights: a positive distance
    assert isinstance(lpips.lin0.model[0], torch.nn.Dropout)
    torch.save({"lin0.model.1.weight": torch.rand(1, 64, 1, 1)}, tmp_path / "partial.pth")
    with pytest.raises(Exception, match="partial.pth: not LPIPS lin weights: 4 missing: lin1.model.1.weight"):
        lpips.load_lin_weights(tmp_path / "partial.pth")
