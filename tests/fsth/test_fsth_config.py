"""fsth.config: the original settings and layer strings, parsed into the original block sequence."""

import json

import pytest

from common.errors import InputError
from fsth.components import adain_slices
from fsth.config import DEFAULTS, G_config, load_config, parse_layer_config

_KIND = {
    "ResidualBlockDown": "D",
    "ResidualBlockUp": "U",
    "ResidualBlock": "B",
    "ResidualBlockAdaptive": "BA",
    "InstanceNorm2d": "I",
    "SelfAttention": "A",
}


def test_generator_string_parses_into_the_expected_blocks():
    specs = parse_layer_config(G_config, 3)
    assert [s.kind for s in specs] == [
        "D",
        "I",
        "D",
        "I",
        "D",
        "I",
        "A",
        "D",
        "I",
        "BA",
        "BA",
        "BA",
        "BA",
        "BA",
        "U",
        "U",
        "A",
        "U",
        "U",
    ]
    assert specs[0] == type(specs[0])("D", 3, 64, 9, 2)
    assert specs[6] == type(specs[0])("A", 256, 256)  # the attention sees the 32 x 32, 256-channel map
    assert specs[-1] == type(specs[0])("U", 64, 3, 3, 2)


@pytest.mark.parametrize("key, net, input_dim", [("G_config", "G", 3), ("E_config", "E", 6), ("V_config", "D", 6)])
def test_every_layer_string_matches_the_original_modules(manifest, key, net, input_dim):
    specs = parse_layer_config(DEFAULTS[key], input_dim)
    layers = manifest["networks"][net]["layers"]
    assert [s.kind for s in specs] == [_KIND[layer["module"]] for layer in layers]
    for spec, layer in zip(specs, layers):
        assert spec.in_channels == layer.get("in_channel", layer.get("num_features"))
        if "out_channel" in layer:
            assert (spec.out_channels, spec.kernel_size) == (layer["out_channel"], layer["kernel_size"])


def test_adain_slices_are_the_originals(manifest):
    slices = adain_slices(parse_layer_config(G_config, 3))
    assert slices == [tuple(s) for s in manifest["networks"]["G"]["adain_slices"]]
    assert sum(a + b for a, b in slices) == 6531


def test_defaults_are_the_original_settings(manifest):
    for key, value in manifest["config"].items():
        assert json.loads(json.dumps(DEFAULTS[key])) == value, key


@pytest.mark.parametrize(
    "bad, message",
    [
        ([("D", 64, 3, 2), ("X", 3)], r"G_config\[1\]: unknown layer type 'X'"),
        ([("D", 64, 3)], r"G_config\[0\]: 'D' takes 3 positive integers"),
        ([("BA", 512, 0)], r"G_config\[0\]: 'BA' takes 2 positive integers"),
        ([], "G_config: empty layer config"),
    ],
)
def test_bad_layer_strings_are_one_line_input_errors(bad, message):
    with pytest.raises(InputError, match=message) as info:
        parse_layer_config(bad, 3, "G_config")
    assert "\n" not in str(info.value)


def test_yaml_overrides_unknown_keys_and_bad_layers(tmp_path):
    good = tmp_path / "run.yaml"
    good.write_text("lr_EG: 1.0e-4\nE_config: [[D, 64, 3, 2], [A], [D, 512, 3, 2]]\n")
    cfg = load_config(good, metatrain_T=4)
    assert (cfg["lr_EG"], cfg["metatrain_T"], cfg["lr_D"]) == (1e-4, 4, 2e-4)
    assert [s.kind for s in parse_layer_config(cfg["E_config"], 6)] == ["D", "A", "D"]

    (tmp_path / "typo.yaml").write_text("lr_E: 1.0e-4\n")
    with pytest.raises(InputError, match="unknown key 'lr_E' \\(did you mean 'lr_EG'"):
        load_config(tmp_path / "typo.yaml")
    (tmp_path / "layer.yaml").write_text("V_config: [[D, 64, 3, 2], [Q]]\n")
    with pytest.raises(InputError, match=r"layer.yaml: V_config\[1\]: unknown layer type 'Q'"):
        load_config(tmp_path / "layer.yaml")
