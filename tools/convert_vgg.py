r"""Convert Caffe VGG weights to the layouts the methods load, without Caffe.

  python -m tools.convert_vgg --caffemodel VGG_ILSVRC_19_layers.caffemodel --arch vgg19 --format torch \
      --out vgg19_caffe.pth
  python -m tools.convert_vgg --caffemodel VGG_FACE.caffemodel --arch vggface --format fsth --out vggface_caffe.pth
  python -m tools.convert_vgg --caffemodel VGG_ILSVRC_19_layers.caffemodel --arch vgg19 --format keras \
      --out vgg19_notop.h5
  python -m tools.convert_vgg --caffemodel VGG_FACE.caffemodel --arch vggface --format keras --out vgg_face_weights.h5

Formats:
  torch  torchvision keys features.<i>.* (+ classifier.{0,3,6}.* unless --no_fc):
         common.vgg.torch_vgg (FSRT, VFA and FSTH perceptual losses)
  fsth   FSTH's VGGNetwork keys conv_layers.<i>.*, linear_layers.{0,3,6}.* (the original loads
         them strictly, fc layers included)
  keras  vgg19: weights for tf.keras.applications.VGG19(include_top=False, weights=<out>) (LSR);
         vggface: weights for LSR's VGGFaceModel (common.vgg.keras_vgg), fc6-fc8 as convolutions
Every output gets a sidecar <out>.json recording the input convention the weights expect
(BGR, 0-255, per-channel mean, no std). Caffe files: VGG_ILSVRC_19_layers.caffemodel from
http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/, VGG_FACE.caffemodel in
https://www.robots.ox.ac.uk/~vgg/software/vgg_face/src/vgg_face_caffe.tar.gz
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common.errors import InputError, cli_main
from common.progress import get_logger
from common.vgg.caffemodel import read_caffemodel
from common.vgg.convert import caffe_weights, metadata, torch_state, write_metadata
from common.vgg.layouts import ARCHS, get_arch

FORMATS = ("torch", "fsth", "keras")
log = get_logger("convert_vgg")


def convert(caffemodel: Path, arch_name: str, fmt: str, out: Path, with_fc: bool = True) -> Path:
    """Read `caffemodel`, write `out` in `fmt` and its `<out>.json` sidecar; returns `out`."""
    arch = get_arch(arch_name)
    if fmt not in FORMATS:
        raise InputError(f"unknown format '{fmt}'; choose from {', '.join(FORMATS)}")
    if fmt == "keras" and out.suffix != ".h5":
        raise InputError(f"{out}: Keras weights need a .h5 file name")
    start = time.perf_counter()
    blobs = read_caffemodel(caffemodel)
    notop = arch.name == "vgg19"  # Keras: VGG19 without top for LSR's VGGLoss, else LSR's VGG-Face
    # FSTH's strict load needs fc6-fc8; LSR's VGG-Face uses fc8 for identity.
    need_fc = {"torch": with_fc, "fsth": True, "keras": not notop}[fmt]
    weights = caffe_weights(blobs, arch, with_fc=need_fc)
    count = sum(w.size + b.size for w, b in weights.values())
    log.info(
        "read %s (%.1f MB) in %.1f s: %d weighted layers, %s parameters; writing %s",
        caffemodel.name,
        caffemodel.stat().st_size / 1e6,
        time.perf_counter() - start,
        len(weights),
        f"{count:,}",
        out,
    )
    if fmt == "keras":
        from common.vgg import keras_vgg  # TensorFlow only for this format

        if notop:
            keras_vgg.write_vgg19_notop(weights, out)
        else:
            keras_vgg.write_vggface(weights, out, arch)
    else:
        from common.vgg.torch_vgg import save_state_dict  # torch only for these formats

        save_state_dict(torch_state(weights, arch, "fsth" if fmt == "fsth" else "torchvision"), out)
    write_metadata(out, metadata(arch, fmt, caffemodel.name))
    log.info("wrote %s and %s.json in %.1f s", out, out.name, time.perf_counter() - start)
    return out


@cli_main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.convert_vgg", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--caffemodel", required=True, type=Path, help="the Caffe weights file")
    parser.add_argument(
        "--arch", required=True, choices=list(ARCHS), help="vgg19: VGG_ILSVRC_19_layers; vggface: VGG_FACE"
    )
    parser.add_argument("--format", required=True, choices=FORMATS, help="see Formats above")
    parser.add_argument("--out", required=True, type=Path, help="output file (.pth for torch/fsth, .h5 for keras)")
    parser.add_argument("--no_fc", action="store_true", help="torch format: leave out fc6-fc8 (features only)")
    args = parser.parse_args(argv)
    convert(args.caffemodel, args.arch, args.format, args.out, with_fc=not args.no_fc)
    return 0


if __name__ == "__main__":
    main()
