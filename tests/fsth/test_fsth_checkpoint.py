"""fsth.checkpoint: the original meta_train.py list format, our dict format, mismatch reports,
and the meta -> fine-tuning state conversion."""

from collections import OrderedDict

import pytest
import torch
from numerics import ROUNDING, assert_close

from common.errors import CheckpointMismatchError, InputError
from fsth.checkpoint import (
    FORMAT,
    MetaCheckpoint,
    build_meta_networks,
    read_meta_checkpoint,
    to_finetune_state,
    write_meta_checkpoint,
)


def _adam_state(lr):
    # what Adam.state_dict() holds before its first step
    return {
        "state": {},
        "param_groups": [
            {"lr": lr, "betas": (0.0, 0.999), "eps": 1e-8, "weight_decay": 0, "amsgrad": False, "params": [0, 1, 2]}
        ],
    }


def _assert_loaded(net, state):
    loaded = net.state_dict()
    assert list(loaded) == list(state)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_original_checkpoint_loads_strictly(tmp_path, manifest_states):
    """Official names and shapes, random values, saved as meta_train.py does (save_optim_state on)."""
    G, E, D = (OrderedDict(manifest_states[k]) for k in "GED")
    path = tmp_path / "save_5000.pkl"
    torch.save([2, 17, 5000, G, E, D, _adam_state(5e-5), _adam_state(2e-4)], path)
    ckpt = read_meta_checkpoint(path)
    assert (ckpt.epoch, ckpt.step, ckpt.total_step, ckpt.sample_count, ckpt.config) == (2, 17, 5000, 2, None)
    assert ckpt.optim_D["param_groups"][0]["lr"] == 2e-4
    nets = build_meta_networks(ckpt)
    for net, state in zip(nets, (G, E, D)):
        _assert_loaded(net, state)


def test_original_legacy_serialisation_without_optimisers(tmp_path, small_networks, small):
    states = [OrderedDict(net.state_dict()) for net in small_networks]
    path = tmp_path / "save_10000.pkl"
    torch.save([0, 3, 10000, *states], path, _use_new_zipfile_serialization=False)  # torch < 1.6 files
    ckpt = read_meta_checkpoint(path)
    assert (ckpt.total_step, ckpt.optim_EG, ckpt.optim_D, ckpt.sample_count) == (10000, None, None, 3)
    for net, state in zip(build_meta_networks(ckpt, small), states):
        _assert_loaded(net, state)


def test_our_format_roundtrips_with_its_config(tmp_path, small_networks, small):
    G, E, D = (net.state_dict() for net in small_networks)
    rng = torch.get_rng_state()
    ckpt = MetaCheckpoint(
        G,
        E,
        D,
        epoch=1,
        step=2,
        total_step=3,
        optim_EG=_adam_state(5e-5),
        config=dict(small, input_normalize=True),
        extra={"torch_rng": rng},
    )
    path = write_meta_checkpoint(tmp_path / "ckpt" / "meta_3.pt", ckpt)
    assert torch.load(path, weights_only=True)["format"] == FORMAT
    back = read_meta_checkpoint(path)
    assert (back.epoch, back.step, back.total_step, back.optim_D, back.source) == (1, 2, 3, None, str(path))
    assert back.optim_EG == ckpt.optim_EG and back.config == ckpt.config
    assert torch.equal(back.extra["torch_rng"], rng)
    for net, state in zip(build_meta_networks(back), (G, E, D)):  # small configs come from the file
        _assert_loaded(net, state)


def test_mismatch_is_a_one_line_error_naming_network_and_keys(tmp_path, small_networks, small):
    G, E, D = (dict(net.state_dict()) for net in small_networks)
    del E["layers.2.gamma"]
    D["w0"] = torch.zeros(1, 8)
    path = tmp_path / "bad.pkl"
    torch.save([0, 0, 0, G, E, D], path)
    with pytest.raises(CheckpointMismatchError) as info:
        build_meta_networks(read_meta_checkpoint(path), small)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path} [E]: does not match Embedder: 1 missing: layers.2.gamma")
    with pytest.raises(CheckpointMismatchError, match=r"\[D\]: .*1 mis-shaped: w0 \(1, 8\) vs \(1, 16\)"):
        build_meta_networks(MetaCheckpoint(G, dict(small_networks[1].state_dict()), D), small)


def test_full_size_checkpoint_into_small_config_is_reported(small_networks):
    G = small_networks[0].state_dict()
    with pytest.raises(CheckpointMismatchError, match=r"^checkpoint \[G\]: does not match Generator: .*mis-shaped"):
        build_meta_networks(MetaCheckpoint(G, {}, {}))


@pytest.mark.parametrize("content", [{"G": {}}, [1, 2, 3], [0, 0, 0, {}, {}, "x"], {"format": "other", "G": {}}])
def test_other_files_are_refused_in_one_line(tmp_path, content):
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(InputError, match=r"other.pt: not an FSTH meta-training checkpoint") as info:
        read_meta_checkpoint(path)
    assert "\n" not in str(info.value)


def test_finetune_state_has_the_original_layout_and_values(manifest, manifest_states):
    G, D = manifest_states["G"], manifest_states["D"]
    e_mean = torch.rand(1, 512)
    g_ft, d_ft = to_finetune_state(G, D, e_mean)
    for name, state in (("G_finetune", g_ft), ("D_finetune", d_ft)):
        expected = [(k, s) for k, s, _ in manifest["networks"][name]["state_dict"]]
        assert [(k, list(v.shape)) for k, v in state.items()] == expected
    P = G["P.weight"]  # output unit 2j is sigma_j, 2j + 1 is mu_j
    js = [0, 1000, 6530]
    # dot products of 512 terms of size ~1 (float64 here, a float32 matrix product there): ROUNDING
    # of the values' magnitude (~10); swapped sigma and mu would be off by that magnitude
    expected = torch.stack([P[[2 * j, 2 * j + 1]].double() @ e_mean[0].double() for j in js])  # (sigma_j, mu_j) rows
    assert_close(g_ft["adain"][0, js], expected, ROUNDING)
    assert_close(d_ft["w"], D["w0"] + e_mean, ROUNDING)  # one addition
    assert d_ft["b"] is D["b"] and "embedding.weight" not in d_ft


def test_finetune_state_needs_meta_state_dicts(manifest_states):
    with pytest.raises(CheckpointMismatchError, match="G state dict lacks P.weight"):
        to_finetune_state({}, manifest_states["D"], torch.zeros(1, 512))
