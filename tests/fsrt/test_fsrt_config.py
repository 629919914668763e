"""fsrt.config: the bundled YAMLs hold the original values; unknown keys are errors."""

from __future__ import annotations

import pytest

from common.errors import InputError
from fsrt.config import DEFAULTS, RUNS_DIR, available_configs, load_config, resolve_config
from fsrt.model import FSRT


def test_bundled_configs_hold_the_original_values():
    cfg = load_config("vox256")
    assert cfg["data"]["num_src"] == 1 and cfg["data"]["dataset"] == "vox"
    assert cfg["data"]["num_pixels_phase1"] == 4096 and cfg["data"]["num_pixels"] == 16384
    assert cfg["data"]["augmentation_params"]["jitter_param"]["hue"] == 0.1
    assert cfg["model"]["encoder_kwargs"] == {
        "pix_octaves": 16,
        "pix_start_octave": -1,
        "kp_octaves": 4,
        "kp_start_octave": -1,
        "encode_with_expression": True,
        "num_conv_blocks": 3,
        "num_att_blocks": 5,
        "num_kp": 10,
    }
    assert cfg["model"]["small_decoder"] is False and cfg["model"]["expression_size"] == 256
    assert cfg["discriminator"]["disc_kwargs"]["kp_variance"] == 0.01
    assert cfg["discriminator"]["scales"] == [1]
    training = cfg["training"]
    assert (training["iters_in_phase1"], training["iters_in_phase2"], training["max_it"]) == (200000, 300000, 4000000)
    assert training["perceptual_loss_weight"] == [0.01] * 5
    assert training["generator_gan_feature_matching"] == [0.01] * 4
    assert training["model_selection_mode"] == "maximize" and training["variance_loss_weight"] == 0.2
    assert training["num_workers"] == 20 and training["batch_size"] == 24


def test_two_source_config_differs_only_in_num_src():
    one, two = load_config("vox256"), load_config("vox256_2Source")
    assert two["data"]["num_src"] == 2
    two["data"]["num_src"] = 1
    assert one == two
    assert available_configs() == ["sample", "vox256", "vox256_2Source"]


def test_config_names_resolve_to_the_bundled_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("vox256", "vox256.yaml", "runs/vox256.yaml", RUNS_DIR / "vox256.yaml"):
        assert resolve_config(name) == RUNS_DIR / "vox256.yaml"
    (tmp_path / "vox256.yaml").write_text("data: {num_src: 3}\n")
    assert load_config("vox256.yaml")["data"]["num_src"] == 3  # an existing file wins
    bundled = "bundled configs: sample, vox256, vox256_2Source"
    with pytest.raises(InputError, match=f"vox512: config file not found .{bundled}"):
        load_config("vox512")


def test_unknown_key_names_the_closest_valid_one(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("model:\n  encoder_kwargs:\n    pix_octave: 8\n")
    with pytest.raises(
        InputError, match=r"unknown key 'model.encoder_kwargs.pix_octave' \(did you mean 'pix_octaves'\?\)"
    ):
        load_config(path)
    with pytest.raises(InputError, match="did you mean 'batch_size'"):
        load_config({"training": {"batchsize": 8}})


def test_missing_keys_take_the_original_fallbacks(tmp_path):
    path = tmp_path / "short.yaml"
    path.write_text("model:\n  small_decoder: True\ntraining:\n  batch_size: 8\n")
    cfg = load_config(path)
    assert cfg["training"]["batch_size"] == 8
    assert cfg["training"]["max_it"] == DEFAULTS["training"]["max_it"] == 1000000  # train.py's fallback
    assert cfg["model"]["decoder_kwargs"]["pix_octaves"] == 16
    model = FSRT(**cfg["model"])
    assert type(model.decoder).__name__ == "SmallImprovedFSRTDecoder"
    assert model.decoder.render_mlp[2].out_features == 768
