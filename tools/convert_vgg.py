"""Convert Caffe VGG weights to the layouts the methods load, without Caffe.

    python -m tools.convert_vgg --caffemodel VGG_ILSVRC_19_layers.caffemodel --arch vgg19 --format torch --out vgg19_caffe.pth
    python -m tools.convert_vgg --caffemodel VGG_FACE.caffemodel --arch vggface --format fsth --out vggface_caffe.pth
    python -m tools.convert_vgg --caffemodel VGG_ILSVRC_19_layers.caffemodel --arch vgg19 --format keras --out vgg19_notop.h5
    python -m tools.convert_vgg --caffemodel VGG_FACE.caffemodel --arch vggface --format keras --out vgg_face_weights.h5

Formats:
  torch  torchvision keys `features.<i>.*` (+ `classifier.{0,3,6}.*` unless --no_fc): FSRT, common.vgg
  fsth   FSTH's VGGNetwork keys `conv_layers.<i>.*`, `linear_layers.{0,3,6}.*` (its strict load needs the fc layers)
  keras  vgg19: weights for tf.keras.applications.VGG19(include_top=False); vggface: LSR's VGGFaceModel
Every output gets a `<out>.json` sidecar recording the input convention (BGR, 0-255, mean).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common.errors import InputError, cli_main
from common.vgg.caffemodel import read_caffemodel
from common.vgg.layouts import caffe_weights, get_arch, torch_layout

LAYOUT_PREFIXES = {"torch": ("features", "classifier"), "fsth": ("conv_layers", "linear_layers")}


def convert(caffemodel: Path, arch_name: str, fmt: str, out: Path, with_fc: bool = True) -> Path:
    arch = get_arch(arch_name)
    blobs = read_caffemodel(caffemodel)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt in LAYOUT_PREFIXES:
        import torch

        from common.checkpoint import save_checkpoint

        features, classifier = LAYOUT_PREFIXES[fmt]
        weights = caffe_weights(blobs, arch, with_fc=with_fc or fmt == "fsth")
        state = {k: torch.from_numpy(v) for k, v in torch_layout(weights, arch, features, classifier).items()}
        save_checkpoint(state, out)
    elif fmt == "keras":
        if out.suffix != ".h5":
            raise InputError(f"{out}: Keras weights need a .h5 file name")
        from common.vgg import keras_vgg

        (keras_vgg.write_vgg19_notop if arch.name == "vgg19" else keras_vgg.write_vggface)(blobs, out)
    else:
        raise InputError(f"unknown format '{fmt}'; choose torch, fsth or keras")
    sidecar = {"arch": arch.name, "format": fmt, "source": str(caffemodel.name), "input": "BGR",
               "range": [0, 255], "mean_bgr": list(arch.mean_bgr), "std": 1}
    Path(f"{out}.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return out


@cli_main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--caffemodel", required=True, type=Path)
    parser.add_argument("--arch", required=True, choices=["vgg19", "vggface"])
    parser.add_argument("--format", required=True, choices=["torch", "fsth", "keras"])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--no_fc", action="store_true", help="torch format: leave out fc6-fc8")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    convert(args.caffemodel, args.arch, args.format, args.out, with_fc=not args.no_fc)
    print(f"wrote {args.out} ({args.arch}, {args.format}) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    main()
