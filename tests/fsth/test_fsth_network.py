"""fsth.network: recorded outputs of the original, state-dict layout, shapes, fine-tuning variants."""
import numpy as np
import pytest
import torch

from fsth.checkpoint import to_finetune_state
from fsth.network import (Discriminator, Embedder, FinetuneDiscriminator, FinetuneGenerator,
                          Generator)


@pytest.fixture(scope='module')
def recorded(data_dir):
    """Weights, inputs and outputs recorded by running the original `face/` networks (commit a2eb8d3,
    torch 2.13, CPU) with the SMALL configs at 32 x 32: eval-mode outputs, then train-mode outputs
    (one power iteration per conv) and the updated u, v buffers."""
    with np.load(data_dir / 'original_outputs.npz') as data:
        return {k: torch.from_numpy(data[k].astype(np.float32) if data[k].dtype == np.float16 else data[k])
                for k in data.files}


def test_outputs_match_the_original(recorded, small_networks):
    nets = dict(zip('GED', small_networks))
    for name, net in nets.items():
        net.load_state_dict({k[2:]: v for k, v in recorded.items() if k.startswith(f'{name}/')}, strict=True)
    x, y, xs, ys, idx = (recorded[k] for k in ('x', 'y', 'xs', 'ys', 'idx'))
    for mode in ('eval', 'train'):
        for net in nets.values():
            net.train(mode == 'train')
        with torch.no_grad():
            e = nets['E'](xs, ys)
            x_hat = nets['G'](y, e.view(2, 2, -1).mean(1))
            d = nets['D'](x, y, idx)
        torch.testing.assert_close(e, recorded[f'{mode}/e'], rtol=0, atol=1e-5)
        torch.testing.assert_close(x_hat, recorded[f'{mode}/x_hat'], rtol=0, atol=1e-5)
        assert len(d.features) == 4
        for i, feature in enumerate(d.features):
            torch.testing.assert_close(feature, recorded[f'{mode}/d_feature_{i}'], rtol=0, atol=1e-5)
        torch.testing.assert_close(d.score, recorded[f'{mode}/score'], rtol=0, atol=1e-4)
        torch.testing.assert_close(d.w, recorded[f'{mode}/w'], rtol=0, atol=0)
    for name, net in nets.items():
        for key, value in net.state_dict().items():
            if key.endswith(('weight_u', 'weight_v')):
                torch.testing.assert_close(value, recorded[f'after_train/{name}/{key}'], rtol=0, atol=1e-6)


@pytest.fixture(scope='module')
def full_networks():
    torch.manual_seed(0)
    nets = {'G': Generator(), 'E': Embedder(), 'D': Discriminator(sample_count=2),
            'G_finetune': FinetuneGenerator(), 'D_finetune': FinetuneDiscriminator()}
    return nets


@pytest.mark.parametrize('name', ['G', 'E', 'D', 'G_finetune', 'D_finetune'])
def test_state_dict_names_shapes_and_order_are_the_originals(manifest, full_networks, name):
    net, expected = full_networks[name], manifest['networks'][name]
    state = net.state_dict()
    assert [(k, list(v.shape)) for k, v in state.items()] == [(k, s) for k, s, _ in expected['state_dict']]
    params = dict(net.named_parameters())
    assert [k for k, _, kind in expected['state_dict'] if kind == 'param'] == list(params)
    assert sum(p.numel() for p in params.values()) == expected['param_numel']


def test_output_shapes_at_128(manifest, full_networks):
    """The original's 256 x 256 shapes, halved (128 keeps the test fast; E/D end at 2 x 2).

    Train mode: fresh spectral-norm vectors are random, so before a first power iteration the
    eval-mode sigma can be near 0 and blow the activations up (in the original too).
    """
    G, E, D = (full_networks[k].train() for k in 'GED')
    x, y = torch.rand(1, 3, 128, 128), torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        e = E(x, y)
        x_hat = G(y, e)
        d = D(x, y, torch.tensor([1]))
    assert e.shape == (1, 512) and e.min() >= 0
    assert x_hat.shape == (1, 3, 128, 128) and 0 <= x_hat.min() and x_hat.max() <= 1
    *features, score, w = manifest['networks']['D']['forward_outputs']
    assert [tuple(f.shape) for f in d.features] == [(1, c, h // 2, w_ // 2) for _, c, h, w_ in features]
    assert d.score.shape == tuple(score) and d.w.shape == tuple(w)
    torch.testing.assert_close(d.w, D.embedding.weight[1:2])


def test_initialisation_follows_the_original(full_networks):
    G, D = full_networks['G'], full_networks['D']
    assert abs(G.P.weight.std().item() - 0.02) < 5e-4 and abs(G.P.weight.mean().item()) < 5e-4
    assert 0 <= D.embedding.weight.min() and D.embedding.weight.max() < 1
    assert D.b.shape == () and D.w0.shape == (1, 512)
    assert all(m.gamma.item() == 0 for m in G.modules() if hasattr(m, 'gamma'))


def test_unnormalised_generator_outputs_0_to_255(small_networks, small):
    G = small_networks[0].eval()
    G255 = Generator(small['G_config'], small['embedding_dim'], normalize=False).eval()
    G255.load_state_dict(G.state_dict())
    y, e = torch.rand(1, 3, 32, 32), torch.rand(1, 16)
    with torch.no_grad():
        torch.testing.assert_close(G255(y, e), 255 * G(y, e))


def test_finetune_networks_start_where_the_meta_networks_are(small_networks, small):
    """After the original's state conversion, G_ft(y) = G(y, e_mean) and D_ft scores like D with
    e_mean in place of W_i."""
    G, E, D = (net.eval() for net in small_networks)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        e_mean = E(x, y).mean(0, keepdim=True)
        D.embedding.weight[0] = e_mean[0]
        g_state, d_state = to_finetune_state(G.state_dict(), D.state_dict(), e_mean)
        G_ft = FinetuneGenerator(small['G_config']).eval()
        D_ft = FinetuneDiscriminator(small['V_config'], small['embedding_dim']).eval()
        G_ft.load_state_dict(g_state, strict=True)
        D_ft.load_state_dict(d_state, strict=True)
        torch.testing.assert_close(G_ft(y), G(y, e_mean.expand(2, -1)))
        meta, tuned = D(x, y, torch.tensor([0, 0])), D_ft(x, y)
    torch.testing.assert_close(tuned.score, meta.score)
    assert tuned.w is None and all(torch.equal(a, b) for a, b in zip(tuned.features, meta.features))
