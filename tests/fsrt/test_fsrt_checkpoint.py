"""fsrt.checkpoint: the official file layouts load strictly, mismatches are one-line errors."""

from __future__ import annotations

import pytest
import torch
from fsrt_testlib import load_manifest, state_from_manifest

from common.checkpoint import load_strict
from common.errors import CheckpointMismatchError, InputError
from fsrt.checkpoint import FSRT_PARTS, load_fsrt, load_kp_detector, load_pretrained, save_fsrt
from fsrt.config import load_config
from fsrt.model import FSRT, MultiScaleDiscriminator, SmallImprovedFSRTDecoder


@pytest.fixture(scope="module")
def manifest() -> dict:
    return load_manifest()


@pytest.fixture(scope="module")
def model() -> FSRT:
    """An FSRT to load into; every test that uses it loads a complete checkpoint first."""
    return FSRT()


@pytest.fixture(scope="module")
def official(manifest, tmp_path_factory) -> dict:
    """vox256.pt as train.py writes it (scalars, the three FSRT parts, optimiser, discriminator)
    and a flat kp_detector.pt, with the manifest's names and shapes and random values."""
    folder = tmp_path_factory.mktemp("official")
    entry = manifest["configs"]["vox256"]
    parts = {part: state_from_manifest(entry["loaded_by_demo"][part], seed=i) for i, part in enumerate(FSRT_PARTS)}
    content = {
        "epoch_it": 3,
        "it": 1234,
        "t": 5.5,
        "loss_val_best": 31.2,
        "run_id": None,
        **parts,
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": list(range(111))}]},
        "discriminator": state_from_manifest(entry["training_only"]["discriminator"], seed=9),
    }
    kp_state = state_from_manifest(manifest["kp_detector.pt"]["state_dict"], seed=5)
    torch.save(content, folder / "vox256.pt")
    torch.save(kp_state, folder / "kp_detector.pt")
    return {"content": content, "kp_state": kp_state, "fsrt": folder / "vox256.pt", "kp": folder / "kp_detector.pt"}


def _assert_loaded(module: torch.nn.Module, state: dict) -> None:
    ours = module.state_dict()
    assert list(ours) == list(state)  # same names in the same (registration) order
    for key, value in state.items():
        assert torch.equal(ours[key], value), key


def test_official_layout_loads_in_one_call(official):
    content = official["content"]
    detector, model = load_pretrained("vox256", official["fsrt"], official["kp"])

    assert not detector.training and not model.training
    _assert_loaded(detector, official["kp_state"])
    for part in FSRT_PARTS:
        _assert_loaded(getattr(model, part), content[part])
    assert model.encoder.conv_blocks[0].layers[0].weight.shape == (96, 483, 3, 3)
    assert torch.equal(model.decoder.render_mlp[8].bias, content["decoder"]["render_mlp.8.bias"])


def test_load_fsrt_returns_the_training_entries(official, model):
    rest = load_fsrt(model, official["fsrt"])
    assert list(rest) == ["epoch_it", "it", "t", "loss_val_best", "run_id", "optimizer", "discriminator"]
    assert rest["it"] == 1234
    disc = MultiScaleDiscriminator([1], **load_config("vox256")["discriminator"]["disc_kwargs"])
    load_strict(disc, rest["discriminator"])
    assert torch.equal(disc.discs["1"].conv.bias, official["content"]["discriminator"]["discs.1.conv.bias"])


def test_two_source_config_has_the_two_source_layout(manifest):
    model = FSRT(**load_config("vox256_2Source")["model"])
    for part in FSRT_PARTS:
        expected = [
            (t["name"], t["shape"]) for t in manifest["configs"]["vox256_2Source"]["loaded_by_demo"][part]["tensors"]
        ]
        assert [(k, list(v.shape)) for k, v in getattr(model, part).state_dict().items()] == expected


def test_kp_detector_drops_fomm_jacobian_keys(manifest, tmp_path):
    state = state_from_manifest(manifest["kp_detector.pt"]["state_dict"], seed=2)
    fomm = {**state, "jacobian.weight": torch.zeros(40, 35, 7, 7), "jacobian.bias": torch.zeros(40)}
    torch.save(fomm, tmp_path / "flat.pt")
    torch.save({"kp_detector": fomm, "generator": {"w": torch.zeros(1)}}, tmp_path / "vox-cpk.pth.tar")
    for name in ("flat.pt", "vox-cpk.pth.tar"):
        detector = load_kp_detector(tmp_path / name)
        _assert_loaded(detector, state)
        assert not hasattr(detector, "jacobian") and not detector.training


def test_other_manifest_layouts_match(manifest):
    small = SmallImprovedFSRTDecoder()
    _assert_loaded_strict(small, state_from_manifest(manifest["small_decoder_variant_decoder"]))
    disc = MultiScaleDiscriminator([1], **load_config("vox256")["discriminator"]["disc_kwargs"])
    _assert_loaded_strict(disc, state_from_manifest(manifest["configs"]["vox256"]["training_only"]["discriminator"]))
    assert manifest["configs"]["vox256_2Source"]["identical_names_and_shapes_to_vox256"]


def _assert_loaded_strict(module, state):
    load_strict(module, state)
    _assert_loaded(module, state)


def test_mismatches_are_one_line_errors(official, model, tmp_path):
    decoder = dict(official["content"]["decoder"])
    del decoder["render_mlp.8.bias"]
    decoder["render_mlp.8.weight"] = torch.zeros(4, 1536)
    torch.save({**official["content"], "decoder": decoder}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointMismatchError) as err:
        load_fsrt(model, tmp_path / "bad.pt")
    message = str(err.value)
    assert "\n" not in message
    assert "bad.pt [decoder]" in message and "1 missing: render_mlp.8.bias" in message
    assert "render_mlp.8.weight (4, 1536) vs (3, 1536)" in message

    with pytest.raises(
        CheckpointMismatchError,
        match="not an FSRT checkpoint, no encoder, decoder, expression_encoder entry .found: predictor",
    ):
        load_fsrt(model, official["kp"])
    with pytest.raises(
        CheckpointMismatchError, match=r"does not match KPDetector: 73 missing: .* 10 unexpected: epoch_it"
    ):
        load_kp_detector(official["fsrt"])
    with pytest.raises(InputError, match="none.pt: checkpoint file not found; .*andrerochow/fsrt"):
        load_kp_detector(tmp_path / "none.pt")


def test_save_fsrt_round_trips_the_official_layout(tmp_path):
    torch.manual_seed(0)
    octaves = {"pix_octaves": 2, "kp_octaves": 1}
    small = dict(
        encoder_kwargs={"num_conv_blocks": 1, "num_att_blocks": 1, **octaves},
        decoder_kwargs={"num_att_blocks": 1, **octaves},
        expression_size=16,
    )
    model, disc = FSRT(**small), MultiScaleDiscriminator([1], block_expansion=8, max_features=16)
    optimizer = torch.optim.Adam(model.parameters())
    path = save_fsrt(tmp_path / "model.pt", model, it=7, optimizer=optimizer, discriminator=disc)
    content = torch.load(path, weights_only=True)
    assert list(content) == ["it", "encoder", "decoder", "expression_encoder", "optimizer", "discriminator"]
    assert len(content["optimizer"]["param_groups"][0]["params"]) == len(list(model.parameters()))

    copy = FSRT(**small)
    assert load_fsrt(copy, path)["it"] == 7
    for part in FSRT_PARTS:
        _assert_loaded(getattr(copy, part), getattr(model, part).state_dict())
