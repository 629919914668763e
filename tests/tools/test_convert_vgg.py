"""tools.convert_vgg end to end (torch formats): files, sidecars and one-line errors."""

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
import torch
from synthetic_caffe import encode_caffemodel, random_vgg_layers

from common.vgg import layouts
from common.vgg.layouts import VGG19
from common.vgg.torch_vgg import load_vgg
from tools.convert_vgg import main


def test_full_vgg19_convolutions_convert_to_torch(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="convert_vgg")
    layers = random_vgg_layers(VGG19, with_fc=False)
    caffemodel = tmp_path / "VGG_ILSVRC_19_layers.caffemodel"
    caffemodel.write_bytes(encode_caffemodel(layers))
    out = tmp_path / "vgg19_caffe.pth"
    assert (
        main(["--caffemodel", str(caffemodel), "--arch", "vgg19", "--format", "torch", "--out", str(out), "--no_fc"])
        == 0
    )
    state = torch.load(out, weights_only=True)
    assert len(state) == 32 and all(k.startswith("features.") for k in state)
    assert np.array_equal(state["features.34.weight"].numpy(), dict(layers)["conv5_4"][0])
    sidecar = json.loads((tmp_path / "vgg19_caffe.pth.json").read_text())
    assert sidecar["arch"] == "vgg19" and sidecar["caffemodel"] == caffemodel.name
    assert sidecar["input"]["mean_bgr"] == [103.939, 116.779, 123.68]
    assert load_vgg(out).features[0].weight.shape == (64, 3, 3, 3)
    assert "16 weighted layers, 20,024,384 parameters" in caplog.text  # progress lines


def test_fsth_format_has_exactly_fsths_keys(tmp_path, tiny_vgg, monkeypatch):
    monkeypatch.setitem(layouts.ARCHS, "tiny", tiny_vgg)  # a small network through the same path
    layers = dict(random_vgg_layers(tiny_vgg))
    caffemodel = tmp_path / "tiny.caffemodel"
    caffemodel.write_bytes(encode_caffemodel(list(layers.items()), v1=False))
    from tools.convert_vgg import convert

    out = convert(caffemodel, "tiny", "fsth", tmp_path / "tiny_caffe.pth")
    state = torch.load(out, weights_only=True)
    assert list(state)[-6:] == [f"linear_layers.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")]
    assert len(state) == 2 * 16 and np.array_equal(state["linear_layers.3.weight"].numpy(), layers["fc7"][0])
    assert np.array_equal(state["conv_layers.24.weight"].numpy(), layers["conv5_1"][0])


def test_fsth_format_needs_the_fc_layers(tmp_path, tiny_vgg, monkeypatch, capsys):
    monkeypatch.setitem(layouts.ARCHS, "tiny", tiny_vgg)
    caffemodel = tmp_path / "conv_only.caffemodel"
    caffemodel.write_bytes(encode_caffemodel(random_vgg_layers(tiny_vgg, with_fc=False)))
    with pytest.raises(SystemExit) as exc:
        main(["--caffemodel", str(caffemodel), "--arch", "tiny", "--format", "fsth", "--out", str(tmp_path / "x.pth")])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: the caffemodel has no layer 'fc6'")
    assert list(tmp_path.iterdir()) == [caffemodel]  # nothing half-written


def test_missing_caffemodel_is_a_one_line_error(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.convert_vgg",
            "--caffemodel",
            str(tmp_path / "none"),
            "--arch",
            "vggface",
            "--format",
            "keras",
            "--out",
            str(tmp_path / "w.h5"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {tmp_path / 'none'}: caffemodel not found; the official files are ")
    assert result.stderr.count("\n") == 1 and "VGG_ILSVRC_19_layers.caffemodel" in result.stderr
    assert not (tmp_path / "w.h5").exists()
