"""vpgc.config: the official YAML layout, validated; dotlist overrides; unknown keys are one-line errors."""

from __future__ import annotations

import pytest
import yaml
from vpgc_testlib import load_manifest

from common.errors import InputError
from vpgc.config import CONFIGS_DIR, DEFAULTS, apply_overrides, available_configs, load_config
from vpgc.model import VQGridModel

SMALL = [
    "model.params.ddconfig.ch=32",
    "model.params.ddconfig.ch_mult=[1, 2]",
    "model.params.ddconfig.resolution=32",
    "model.params.ddconfig.num_res_blocks=1",
    "model.params.embed_dim=64",
]


def test_bundled_config_is_the_official_one():
    assert available_configs() == ["obama_sliding_4"]
    official = load_manifest()["config_obama_sliding_4"]
    assert yaml.safe_load((CONFIGS_DIR / "obama_sliding_4.yaml").read_text()) == official
    config = load_config()
    loss = config["model"]["params"]["lossconfig"]["params"]
    assert loss["disc_start"] == 10000 and loss["disc_weight"] == 0.8 and loss["perceptual_weight"] == 1.0
    assert config["model"]["base_learning_rate"] == 4.5e-5 and config["data"]["params"]["num_workers"] == 8
    assert load_config("obama_sliding_4.yaml") == config == load_config(CONFIGS_DIR / "obama_sliding_4.yaml")
    assert load_config(official) == config


def test_overrides_are_typed_and_validated():
    config = load_config(overrides=["model.params.lossconfig.params.disc_start=5", *SMALL])
    assert config["model"]["params"]["lossconfig"]["params"]["disc_start"] == 5
    assert config["model"]["params"]["ddconfig"]["ch_mult"] == [1, 2]
    model = VQGridModel.from_config(config, with_loss=False)
    assert model.quantize.embedding.shape == (256, 16, 64) and not hasattr(model, "loss")
    assert load_config()["model"]["params"]["lossconfig"]["params"]["disc_start"] == 10000  # no shared state
    assert apply_overrides(DEFAULTS, ["model.params.ddconfig.soft_quant=true"])["model"]["params"]["ddconfig"][
        "soft_quant"
    ]


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.params.lossconfig.params.disc_strat=5", "unknown key 'model.params.lossconfig.params.disc_strat'"),
        ("model.parms.embed_dim=4", "unknown key 'model.parms' (did you mean 'params'?)"),
        ("model.params.ddconfig", "is not of the form key=value"),
        ("model.params.ddconfig=3", "'model.params.ddconfig' is a section"),
        ("model.target=taming.models.vqgan.VQModel", "model.target 'taming.models.vqgan.VQModel' is not supported"),
    ],
)
def test_bad_overrides_are_one_line_errors(override, message):
    with pytest.raises(InputError) as error:
        load_config(overrides=[override])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_unknown_key_in_a_file_names_the_closest(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model:\n  params:\n    ddconfig:\n      z_channel: 256\n")
    with pytest.raises(InputError, match=r"unknown key 'model.params.ddconfig.z_channel' \(did you mean 'z_channels'"):
        load_config(path)
    with pytest.raises(InputError, match="nothing.yaml: config file not found"):
        load_config(tmp_path / "nothing.yaml")
