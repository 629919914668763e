"""FSRT networks: shapes at small resolution, chunking, the decoder's details, expression pooling."""

from __future__ import annotations

import math

import pytest
import torch
from numerics import FORWARD, ROUNDING, assert_close

from fsrt.config import load_config
from fsrt.model import (
    FSRT,
    ExpressionEncoder,
    ImprovedFSRTDecoder,
    ImprovedFSRTEncoder,
    KPDetector,
    MultiScaleDiscriminator,
    kp2gaussian,
    pixel_grid,
)


@pytest.fixture(scope="module")
def model() -> FSRT:
    """The released architecture with random weights; tests only read it."""
    torch.manual_seed(0)
    return FSRT(**load_config("vox256")["model"]).eval()


@pytest.fixture(scope="module")
def scene(model):
    """Two batch items with two 16x24 sources each, and driving keypoints/expressions."""
    generator = torch.Generator().manual_seed(1)
    sources = torch.rand(2, 2, 3, 16, 24, generator=generator)
    source_kp = torch.rand(2, 2, 10, 2, generator=generator) * 2 - 1
    source_exp = torch.randn(2, 2, 256, generator=generator)
    with torch.no_grad():
        z = model.encode(sources, source_kp, source_exp)
    return z, torch.rand(2, 10, 2, generator=generator) * 2 - 1, torch.randn(2, 256, generator=generator)


def test_full_model_shapes_at_small_resolution(model, scene):
    z, kp, expression = scene
    assert z.shape == (2, 2 * 2 * 3, 768)  # two sources of 16x24 -> 2x3 tokens each
    with torch.no_grad():
        frames = model.render(z, kp, expression, 16, 24)
    assert frames.shape == (2, 3, 16, 24)
    assert frames.std() > 0


def test_pipeline_from_frames(model):
    detector = KPDetector().eval()
    frames = torch.rand(3, 3, 128, 128)
    with torch.no_grad():
        kp, expression = model.keypoints_and_expression(detector, frames)
        z = model.encode(frames[None, :2, :, :16, :16], kp[None, :2], expression[None, :2])
        out = model.render(z, kp[2:], expression[2:], 16, 16)
    assert kp.shape == (3, 10, 2) and expression.shape == (3, 256)
    assert z.shape == (1, 8, 768) and out.shape == (1, 3, 16, 16)


def test_render_does_not_depend_on_chunking_or_keypoint_layout(model, scene):
    z, kp, expression = scene
    decoder = model.decoder
    pixels = pixel_grid(8, 12).flatten(0, 1)  # any query set: the frame size need not be the sources'
    with torch.no_grad():
        whole = decoder(z, pixels.expand(2, -1, -1), kp, expression)
        chunked = decoder.render(z, decoder.encode_pixels(pixels), kp, expression, chunk_size=40)
        per_pixel = decoder(z, pixels.expand(2, -1, -1), kp[:, None].expand(-1, 96, -1, -1), expression, chunk_size=64)
        frames = model.render(z, kp, expression, 8, 12, chunk_size=7)
    assert whole.shape == (2, 96, 3)
    # the whole decoder in other chunk and batch shapes (other matrix-product blockings): FORWARD,
    # measured up to 1.9e-6; a misplaced chunk or keypoint would be off by the output's magnitude
    assert_close(chunked, whole, FORWARD, "chunked")
    assert_close(per_pixel, whole, FORWARD, "per-pixel keypoints")
    assert_close(frames, whole.view(2, 8, 12, 3).permute(0, 3, 1, 2), FORWARD, "frames")


def test_decoder_layer_norm_sees_queries_only(model, scene):
    # LayerNorm(3 z) == LayerNorm(z): were z normalised, scaling it would not change the output.
    z, kp, expression = scene
    pixels = pixel_grid(4, 4).flatten(0, 1).expand(2, -1, -1)
    with torch.no_grad():
        base = model.decoder(z, pixels, kp, expression)
        scaled = model.decoder(3 * z, pixels, kp, expression)
    # relative to the output's magnitude (~0.01 with random weights): measured 1.5 times it; with
    # z normalised only LayerNorm's eps and rounding would differ, ~1e-5 of it
    assert (scaled - base).abs().max() > 0.1 * base.abs().max()
    assert model.decoder.allocation_transformer.transformer.layers[0][0].norm.normalized_shape == (480,)


def test_render_output_is_not_squashed():
    decoder = ImprovedFSRTDecoder().eval()
    z = torch.randn(1, 8, 768)
    pixels = pixel_grid(4, 4).flatten(0, 1)[None]
    with torch.no_grad():
        decoder.render_mlp[8].bias.fill_(5.0)
        high = decoder(z, pixels, torch.zeros(1, 10, 2), torch.zeros(1, 256))
        decoder.render_mlp[8].bias.fill_(-5.0)
        low = decoder(z, pixels, torch.zeros(1, 10, 2), torch.zeros(1, 256))
    assert high.min() > 1 and low.max() < 0


def test_expression_encoder_pools_features_under_each_heatmap():
    torch.manual_seed(0)
    encoder = ExpressionEncoder().eval()
    feature_map = torch.randn(1, 35, 64, 64)
    heatmap = torch.zeros(1, 10, 58, 58)
    positions = [(k * 5, 57 - k * 3) for k in range(10)]
    for k, (row, col) in enumerate(positions):
        heatmap[0, k, row, col] = 1.0
    with torch.no_grad():
        features = encoder.expression(feature_map).view(1, 10, 32, 58, 58)
        picked = torch.stack([features[0, k, :, row, col] for k, (row, col) in enumerate(positions)])
        expected = encoder.expression_mlp(picked.flatten()[None])
        ours = encoder(feature_map, heatmap)
        from_detector_layout = encoder(feature_map, heatmap[:, :, None])  # [B, K, 1, h, w]
    assert ours.shape == (1, 256)
    assert_close(ours, expected, ROUNDING)  # pooling under a one-hot heatmap picks exactly, then one MLP
    assert torch.equal(ours, from_detector_layout)  # the same computation on a reshaped view


def test_encoder_without_expression_has_227_input_channels():
    encoder = ImprovedFSRTEncoder(num_att_blocks=1, encode_with_expression=False)
    assert encoder.conv_blocks[0].layers[0].in_channels == 3 + 64 + 160
    with torch.no_grad():
        z = encoder(torch.rand(1, 1, 3, 8, 8), torch.zeros(1, 1, 10, 2), pixel_grid(8, 8))
    assert z.shape == (1, 1, 768)
    with pytest.raises(ValueError, match="pass expression_vector"):
        ImprovedFSRTEncoder(num_att_blocks=1)(torch.rand(1, 1, 3, 8, 8), torch.zeros(1, 1, 10, 2), pixel_grid(8, 8))


def test_discriminator_heatmaps_and_shapes():
    kp = torch.tensor([[[-1.0, 1.0], [0.0, 0.0]]])
    bumps = kp2gaussian(kp, (5, 5), 0.01)
    assert bumps.shape == (1, 2, 5, 5)
    # exact: exp(0) at a keypoint on a grid point (the endpoints and the centre are exact)
    assert bumps[0, 0, 4, 0] == 1.0 and bumps[0, 1, 2, 2] == 1.0  # (x, y) = (-1, 1): last row, first column
    # exp(-12.5): an ulp of the float32 exponent moves the value by ~1e-6 of itself, so ROUNDING
    # of the value itself; the std in place of the variance would give 0.29
    assert_close(bumps[0, 1, 2, 3], math.exp(-0.5 * 0.25 / 0.01), ROUNDING)

    torch.manual_seed(0)
    disc = MultiScaleDiscriminator([1], block_expansion=4, max_features=8, num_kp=2)
    out = disc({"prediction_1": torch.rand(1, 3, 64, 64)}, kp=kp)  # resized to 256 inside
    assert [tuple(f.shape) for f in out["feature_maps_1"]] == [
        (1, 8, 126, 126),
        (1, 8, 61, 61),
        (1, 8, 29, 29),
        (1, 8, 26, 26),
    ]
    assert out["prediction_map_1"].shape == (1, 1, 26, 26)
    detached = disc({"prediction_1": torch.rand(1, 3, 64, 64, requires_grad=True)}, kp=kp, detach=True)
    detached["prediction_map_1"].sum().backward()  # reaches the discriminator, not the image
    assert disc.discs["1"].conv.weight.grad is not None


def test_attention_is_softmax_of_scaled_dot_products():
    """The fused kernel against the formula written out: softmax(q k^T / sqrt(d)) v per head."""
    from fsrt.model.transformer import Attention

    torch.manual_seed(0)
    attention = Attention(dim=6, heads=2, dim_head=4, kv_dim=5).eval()
    x, z = torch.randn(1, 3, 6), torch.randn(1, 7, 5)
    q = attention.to_q(x).view(1, 3, 2, 4).transpose(1, 2)
    k, v = (t.view(1, 7, 2, 4).transpose(1, 2) for t in attention.to_kv(z).chunk(2, dim=-1))
    weights = torch.exp(q @ k.transpose(-1, -2) / 2)  # sqrt(dim_head) = 2
    heads = (weights / weights.sum(-1, keepdim=True)) @ v
    expected = attention.to_out(heads.transpose(1, 2).reshape(1, 3, 8))
    with torch.no_grad():
        assert_close(attention(x, kv=attention.project_kv(z)), expected, ROUNDING)
