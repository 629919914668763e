"""tools.convert_vgg end to end: a full-size VGG19 (convolutions) and one-line errors."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from common.vgg.layouts import VGG19
from common.vgg.torch_vgg import load_vgg
from conftest import encode_caffemodel, random_vgg_layers
from tools.convert_vgg import main


def test_full_vgg19_convolutions_convert_to_torch(tmp_path):
    layers = random_vgg_layers(VGG19, with_fc=False)
    caffemodel = tmp_path / "VGG_ILSVRC_19_layers.caffemodel"
    caffemodel.write_bytes(encode_caffemodel(layers))
    out = tmp_path / "vgg19_caffe.pth"
    assert main(["--caffemodel", str(caffemodel), "--arch", "vgg19", "--format", "torch",
                 "--out", str(out), "--no_fc"]) == 0
    state = torch.load(out, weights_only=True)
    assert len(state) == 32
    assert np.array_equal(state["features.34.weight"].numpy(), dict(layers)["conv5_4"][0])
    assert json.loads((tmp_path / "vgg19_caffe.pth.json").read_text())["mean_bgr"] == [103.939, 116.779, 123.68]
    assert load_vgg(out).features[0].weight.shape == (64, 3, 3, 3)


def test_fsth_format_needs_the_fc_layers(tmp_path, capsys):
    caffemodel = tmp_path / "conv_only.caffemodel"
    caffemodel.write_bytes(encode_caffemodel(random_vgg_layers(VGG19, with_fc=False)))
    with pytest.raises(SystemExit) as exc:
        main(["--caffemodel", str(caffemodel), "--arch", "vgg19", "--format", "fsth", "--out", str(tmp_path / "x.pth")])
    assert exc.value.code == 2
    assert "no layer 'fc6'" in capsys.readouterr().err
    assert not (tmp_path / "x.pth").exists()


def test_missing_caffemodel_is_a_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tools.convert_vgg", "--caffemodel", str(tmp_path / "none"),
                             "--arch", "vggface", "--format", "keras", "--out", str(tmp_path / "w.h5")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "caffemodel not found" in result.stderr
