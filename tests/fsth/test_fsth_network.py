"""fsth.network: recorded outputs of the original, state-dict layout, shapes, fine-tuning variants."""

import numpy as np
import pytest
import torch
from numerics import FORWARD, ROUNDING, assert_close, mismatch

from fsth.checkpoint import to_finetune_state
from fsth.network import Discriminator, Embedder, FinetuneDiscriminator, FinetuneGenerator, Generator


@pytest.fixture(scope="module")
def recorded(data_dir):
    """Weights, inputs and outputs recorded by running the original `face/` networks (commit a2eb8d3,
    torch 2.13, CPU) with the SMALL configs at 32 x 32: eval-mode outputs, then train-mode outputs
    (one power iteration per conv) and the updated u, v buffers."""
    with np.load(data_dir / "original_outputs.npz") as data:
        return {
            k: torch.from_numpy(data[k].astype(np.float32) if data[k].dtype == np.float16 else data[k])
            for k in data.files
        }


def compute_outputs(recorded, networks, perturb: float = 1.0) -> dict[str, torch.Tensor]:
    """Eval- then train-mode outputs of G, E, D loaded with the recorded weights, and the
    spectral-norm vectors after the train-mode pass; `perturb` scales the first output channel of
    each network's first convolution (spectral norm cancels a scaling of the whole tensor)."""
    nets = dict(zip("GED", networks))
    out = {}
    for name, net in nets.items():
        state = {k[2:]: v for k, v in recorded.items() if k.startswith(f"{name}/")}
        first = next(k for k in state if k.endswith("weight_orig"))
        state[first] = state[first].clone()
        state[first][0] *= perturb
        net.load_state_dict(state, strict=True)
    x, y, xs, ys, idx = (recorded[k] for k in ("x", "y", "xs", "ys", "idx"))
    for mode in ("eval", "train"):
        for net in nets.values():
            net.train(mode == "train")
        with torch.no_grad():
            e = nets["E"](xs, ys)
            x_hat = nets["G"](y, e.view(2, 2, -1).mean(1))
            d = nets["D"](x, y, idx)
        assert len(d.features) == 4
        out.update({f"{mode}/e": e, f"{mode}/x_hat": x_hat, f"{mode}/score": d.score, f"{mode}/w": d.w})
        out.update({f"{mode}/d_feature_{i}": feature for i, feature in enumerate(d.features)})
    for name, net in nets.items():
        for key, value in net.state_dict().items():
            if key.endswith(("weight_u", "weight_v")):
                out[f"after_train/{name}/{key}"] = value
    return out


def test_outputs_match_the_original(recorded, small_networks):
    """To `numerics.FORWARD` of each tensor's magnitude: float32 rounding on other CPUs and
    kernel paths stays a few millionths of it, and `test_a_perturbed_weight_fails` shows that
    a 1% change of one weight tensor is far outside it."""
    ours = compute_outputs(recorded, small_networks)
    for name, value in ours.items():
        if name.endswith("/w"):  # a row of the embedding table: copied, no arithmetic
            torch.testing.assert_close(value, recorded[name], rtol=0, atol=0)
        else:
            assert recorded[name].abs().max() > 1e-2, name  # a real signal, not an all-zero output
            assert_close(value, recorded[name], FORWARD, name)


def test_a_perturbed_weight_fails(recorded, small_networks):
    """One output channel of one convolution per network scaled by 1.01 moves every output,
    and the spectral-norm vectors of those convolutions, out of the tolerance."""
    ours = compute_outputs(recorded, small_networks, perturb=1.01)
    perturbed_layers = {"G/layers.0.conv_l.", "E/layers.0.conv_l.", "D/layers.0.conv_l."}
    vectors = {name for name in ours if name.startswith("after_train/")}
    moved_vectors = {name for name in vectors if name.split("/", 1)[1].rsplit("weight_", 1)[0] in perturbed_layers}
    assert len(moved_vectors) == 6
    for name, value in ours.items():
        if not name.endswith("/w") and (name not in vectors or name in moved_vectors):
            assert mismatch(value, recorded[name], FORWARD) is not None, name


@pytest.fixture(scope="module")
def full_networks():
    torch.manual_seed(0)
    nets = {
        "G": Generator(),
        "E": Embedder(),
        "D": Discriminator(sample_count=2),
        "G_finetune": FinetuneGenerator(),
        "D_finetune": FinetuneDiscriminator(),
    }
    return nets


@pytest.mark.parametrize("name", ["G", "E", "D", "G_finetune", "D_finetune"])
def test_state_dict_names_shapes_and_order_are_the_originals(manifest, full_networks, name):
    net, expected = full_networks[name], manifest["networks"][name]
    state = net.state_dict()
    assert [(k, list(v.shape)) for k, v in state.items()] == [(k, s) for k, s, _ in expected["state_dict"]]
    params = dict(net.named_parameters())
    assert [k for k, _, kind in expected["state_dict"] if kind == "param"] == list(params)
    assert sum(p.numel() for p in params.values()) == expected["param_numel"]


def test_output_shapes_at_128(manifest, full_networks):
    """The original's 256 x 256 shapes, halved (128 keeps the test fast; E/D end at 2 x 2).

    Train mode: fresh spectral-norm vectors are random, so before a first power iteration the
    eval-mode sigma can be near 0 and blow the activations up (in the original too).
    """
    G, E, D = (full_networks[k].train() for k in "GED")
    x, y = torch.rand(1, 3, 128, 128), torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        e = E(x, y)
        x_hat = G(y, e)
        d = D(x, y, torch.tensor([1]))
    assert e.shape == (1, 512) and e.min() >= 0
    assert x_hat.shape == (1, 3, 128, 128) and 0 <= x_hat.min() and x_hat.max() <= 1
    *features, score, w = manifest["networks"]["D"]["forward_outputs"]
    assert [tuple(f.shape) for f in d.features] == [(1, c, h // 2, w_ // 2) for _, c, h, w_ in features]
    assert d.score.shape == tuple(score) and d.w.shape == tuple(w)
    assert torch.equal(d.w, D.embedding.weight[1:2])  # a row of the embedding table: a copy


def test_initialisation_follows_the_original(full_networks):
    G, D = full_networks["G"], full_networks["D"]
    assert abs(G.P.weight.std().item() - 0.02) < 5e-4 and abs(G.P.weight.mean().item()) < 5e-4
    assert 0 <= D.embedding.weight.min() and D.embedding.weight.max() < 1
    assert D.b.shape == () and D.w0.shape == (1, 512)
    assert all(m.gamma.item() == 0 for m in G.modules() if hasattr(m, "gamma"))


def test_unnormalised_generator_outputs_0_to_255(small_networks, small):
    G = small_networks[0].eval()
    G255 = Generator(small["G_config"], small["embedding_dim"], normalize=False).eval()
    G255.load_state_dict(G.state_dict())
    y, e = torch.rand(1, 3, 32, 32), torch.rand(1, 16)
    with torch.no_grad():
        assert_close(G255(y, e), 255 * G(y, e), ROUNDING)  # the same network, scaled at its end


def test_finetune_networks_start_where_the_meta_networks_are(small_networks, small):
    """After the original's state conversion, G_ft(y) = G(y, e_mean) and D_ft scores like D with
    e_mean in place of W_i."""
    G, E, D = (net.eval() for net in small_networks)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        e_mean = E(x, y).mean(0, keepdim=True)
        D.embedding.weight[0] = e_mean[0]
        g_state, d_state = to_finetune_state(G.state_dict(), D.state_dict(), e_mean)
        G_ft = FinetuneGenerator(small["G_config"]).eval()
        D_ft = FinetuneDiscriminator(small["V_config"], small["embedding_dim"]).eval()
        G_ft.load_state_dict(g_state, strict=True)
        D_ft.load_state_dict(d_state, strict=True)
        # AdaIN parameters from the conversion's one matrix product or from G's projection of
        # each batch item (another product shape), then the whole generator: FORWARD
        assert_close(G_ft(y), G(y, e_mean.expand(2, -1)), FORWARD, "G")
        meta, tuned = D(x, y, torch.tensor([0, 0])), D_ft(x, y)
    # score = <features, w + w0> + b with (w + w0) summed in another order: ROUNDING
    assert_close(tuned.score, meta.score, ROUNDING, "score")
    assert tuned.w is None and all(torch.equal(a, b) for a, b in zip(tuned.features, meta.features))
