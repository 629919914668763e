"""fsth.components against hand-computed values: AdaIN, spectral norm, self-attention."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numerics import ROUNDING, assert_close

from fsth.components import SelfAttention, adain, sn_conv


def test_adain_uses_the_unbiased_std_plus_eps():
    # channel 2 spreads by 1e-5 only, so that eps matters: added to the std it is half of the
    # divisor, added to the variance (sqrt(var + eps)) it would be 100 times the std
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [2.0, 6.0]], [[0.0, 0.0], [0.0, 4e-5]]]])  # (1, 3, 2, 2)
    sigma, mu = torch.tensor([[2.0, -1.0, 1.0]]), torch.tensor([[0.5, 3.0, 0.0]])
    # channel 0: mean 2.5, unbiased var (2.25 + 0.25 + 0.25 + 2.25) / 3; channel 1: mean 2, var (4+4+0+16)/3;
    # channel 2: mean 1e-5, var (3 * 1e-10 + 9e-10) / 3, std 2e-5
    std0, std1, std2 = math.sqrt(5 / 3) + 1e-5, math.sqrt(8) + 1e-5, 2e-5 + 1e-5
    expected = [
        [[2 * (v - 2.5) / std0 + 0.5 for v in row] for row in ((1, 2), (3, 4))],
        [[-(v - 2.0) / std1 + 3.0 for v in row] for row in ((0, 0), (2, 6))],
        [[(v - 1e-5) / std2 for v in row] for row in ((0, 0), (0, 4e-5))],
    ]
    out = adain(x, sigma, mu)
    # a few float32 operations per value: ROUNDING of the largest (3.7); the biased estimator
    # moves channel 2 by 10%, eps under the square root by 99%
    assert_close(out[0], expected, ROUNDING)
    # the biased estimator (what InstanceNorm uses) would give clearly different values
    biased = F.instance_norm(x) * sigma[..., None, None] + mu[..., None, None]
    assert (out - biased).abs().max() > 0.2


def test_adain_parameters_broadcast_over_the_batch():
    x = torch.randn(3, 4, 5, 5)
    sigma, mu = torch.randn(1, 4), torch.randn(1, 4)
    assert torch.equal(adain(x, sigma, mu), adain(x, sigma.expand(3, 4), mu.expand(3, 4)))


def _sn_conv_with(weight, u, v):
    conv = sn_conv(2, 3, 1)
    with torch.no_grad():
        conv.weight_orig.copy_(torch.tensor(weight).reshape(3, 2, 1, 1))
        conv.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        conv.weight_u.copy_(torch.tensor(u))
        conv.weight_v.copy_(torch.tensor(v))
    return conv


W = [[1.0, 2.0], [0.0, 1.0], [2.0, 0.0]]


def test_spectral_norm_keeps_the_original_names():
    conv = sn_conv(2, 3, 1)
    assert list(conv.state_dict()) == ["bias", "weight_orig", "weight_u", "weight_v"]
    assert [n for n, _ in conv.named_parameters()] == ["bias", "weight_orig"]
    assert conv.weight_u.shape == (3,) and conv.weight_v.shape == (2,)


def test_spectral_norm_runs_one_power_iteration_in_train_mode():
    conv = _sn_conv_with(W, [1.0, 0.0, 0.0], [0.6, 0.8]).train()
    x = torch.tensor([1.0, -1.0]).reshape(1, 2, 1, 1)
    out = conv(x).flatten()
    # by hand: v = W^T u / |.| = (1, 2)/sqrt5; u = W v / |.| = (5, 2, 2)/sqrt33; sigma = u.W v = sqrt(33/5)
    v = np.array([1, 2]) / math.sqrt(5)
    u = np.array([5, 2, 2]) / math.sqrt(33)
    sigma = math.sqrt(33 / 5)
    # hand values of a few float32 operations: ROUNDING of each vector's magnitude; without the
    # power iteration sigma would be 2.2 instead of 2.57
    assert_close(conv.weight_v, v, ROUNDING, "v")
    assert_close(conv.weight_u, u, ROUNDING, "u")
    assert_close(out, np.array(W) @ [1, -1] / sigma + [0.1, -0.2, 0.3], ROUNDING, "output")


def test_spectral_norm_in_eval_mode_uses_the_stored_vectors():
    conv = _sn_conv_with(W, [1.0, 0.0, 0.0], [0.6, 0.8]).eval()
    out = conv(torch.tensor([1.0, -1.0]).reshape(1, 2, 1, 1)).flatten()
    sigma = 1.0 * 0.6 + 2.0 * 0.8  # u^T W v with u = e0: the first row of W times v
    assert_close(out, np.array(W) @ [1, -1] / sigma + [0.1, -0.2, 0.3], ROUNDING)
    assert conv.weight_u.tolist() == [1.0, 0.0, 0.0]  # no power iteration: the buffer is untouched


def test_self_attention_starts_as_identity_and_attends_over_positions():
    torch.manual_seed(0)
    block = SelfAttention(8)
    assert block.gamma.item() == 0.0
    assert list(block.state_dict())[:1] == ["gamma"]
    x = torch.randn(2, 8, 2, 3)
    assert torch.equal(block(x), x)  # exact: 0 * attention + x

    with torch.no_grad():
        block.gamma.fill_(0.5)
    out = block(x).detach()
    xn = x.double().numpy().reshape(2, 8, 6)  # the reference in float64

    def weights(conv):
        return conv.weight.detach().double().numpy()[:, :, 0, 0], conv.bias.detach().double().numpy()

    (wq, bq), (wk, bk), (wv, bv) = weights(block.query_conv), weights(block.key_conv), weights(block.value_conv)
    expected = np.empty((2, 8, 6))
    for n in range(2):
        q, k, v = wq @ xn[n] + bq[:, None], wk @ xn[n] + bk[:, None], wv @ xn[n] + bv[:, None]
        for i in range(6):  # output position i: softmax over key positions j of q_i . k_j, unscaled
            logits = q[:, i] @ k
            attention = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
            expected[n, :, i] = 0.5 * (v @ attention) + xn[n][:, i]
    # one block of float32 operations against float64: ROUNDING of the output's magnitude
    assert_close(out.reshape(2, 8, 6), expected, ROUNDING)


@pytest.mark.parametrize("channels", [8, 16])
def test_self_attention_query_key_width_is_an_eighth(channels):
    block = SelfAttention(channels)
    assert block.query_conv.out_channels == block.key_conv.out_channels == channels // 8
    assert block.value_conv.out_channels == channels
