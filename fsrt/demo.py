"""Animate source image(s) with a driving video: `python -m fsrt.demo --checkpoint ... --config ...`.

The original's command and flags; the work is done by `fsrt.animate`. Each output frame is
[driving frame | prediction] side by side, as the original writes it.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from common.distributed import add_device_argument, resolve_device
from common.errors import InputError, cli_main
from common.image import tensor_to_image, to_uint8
from common.precision import add_precision_argument, check_precision
from common.progress import get_logger, progress
from common.video import VideoWriter, iter_frames, mux_audio, video_info, write_frames
from fsrt import animate
from fsrt.checkpoint import DEFAULT_KP_DETECTOR, load_pretrained

log = get_logger("fsrt.demo")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fsrt.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML config (or a bundled name: vox256, vox256_2Source)")
    parser.add_argument("--checkpoint", required=True, help="FSRT checkpoint (vox256.pt, vox256_2Source.pt)")
    parser.add_argument("--kp_checkpoint", default=str(DEFAULT_KP_DETECTOR), help="keypoint detector checkpoint")
    parser.add_argument(
        "--source_image", required=True, nargs="+", help="source image(s), or one video whose frames --source_idx picks"
    )
    parser.add_argument(
        "--source_idx",
        type=int,
        nargs="+",
        default=None,
        help="indices of the sources among the given images / video frames (negative from the end)",
    )
    parser.add_argument("--driving_video", default="driving.mp4", help="driving video or folder of frames")
    parser.add_argument("--result_video", default="result.mp4", help="output video: [driving | result] per frame")
    parser.add_argument(
        "--result_frames", default=None, help="also write the results alone, lossless, as DIR/00000.png ..."
    )
    parser.add_argument("--relative", action="store_true", help="relative motion transfer (default absolute)")
    parser.add_argument("--adapt_scale", action="store_true", help="scale relative motion by the keypoint hulls' sizes")
    parser.add_argument(
        "--find_best_frame",
        action="store_true",
        help="measure relative motion from the driving frame most like the source (landmarks)",
    )
    parser.add_argument("--best_frame", type=int, default=None, help="measure relative motion from this frame")
    parser.add_argument(
        "--landmark_backend",
        default="dlib",
        choices=("dlib", "face_alignment"),
        help="landmarks of --find_best_frame (face_alignment needs local weights, --fan_weights)",
    )
    parser.add_argument("--fan_weights", default=None, help="folder of the face_alignment weight files")
    add_device_argument(parser)
    parser.add_argument("--cpu", action="store_true", help="the original's flag: the same as --device cpu")
    parser.add_argument("--audio", action="store_true", help="copy the driving video's audio into the result")
    parser.add_argument(
        "--max_num_pixels",
        type=int,
        default=8192,
        help="query pixels decoded at once (all frames of a batch together); lower it to save memory",
    )
    parser.add_argument("--batch_size", type=int, default=4, help="driving frames per decoder call")
    add_precision_argument(parser)
    opt = parser.parse_args(argv)
    if opt.max_num_pixels < 1 or opt.batch_size < 1:
        parser.error("--max_num_pixels and --batch_size must be positive")
    return opt


@cli_main
def main(argv=None) -> int:
    opt = parse_args(argv)
    device = resolve_device("cpu" if opt.cpu else opt.device)
    check_precision(opt.precision, device)
    fps = video_info(opt.driving_video).fps  # fails early, before anything is computed or written
    sources = animate.read_sources(opt.source_image, opt.source_idx)
    detector, model = load_pretrained(opt.config, opt.checkpoint, opt.kp_checkpoint, device)

    anchor = opt.best_frame or 0
    if opt.find_best_frame and opt.best_frame is None:
        from common.landmarks import LandmarkDetector

        landmarks = LandmarkDetector(opt.landmark_backend, device=device, flip_input=True, weights_dir=opt.fan_weights)
        frames = map(animate.prepare, iter_frames(opt.driving_video))
        source_name = f"{', '.join(opt.source_image)} (first source)"
        anchor = animate.best_frame(sources[0], frames, landmarks, source_name, opt.driving_video)
        log.info("best frame: %d", anchor)

    # Pass 1: keypoints and expressions of every driving frame (small), so that relative motion
    # can be measured from any anchor frame without holding the video in memory.
    z, kp_source = animate.encode_sources(model, detector, animate.to_tensor(sources).to(device), opt.precision)
    codes = [
        animate.drive_codes(model, detector, animate.to_tensor(batch).to(device))
        for batch in animate.batches(map(animate.prepare, iter_frames(opt.driving_video)), opt.batch_size)
    ]
    kp, expression = (torch.cat(parts) for parts in zip(*codes))
    if not -len(kp) <= anchor < len(kp):
        raise InputError(f"{opt.driving_video}: --best_frame {anchor} out of range ({len(kp)} frames)")
    kp = animate.transfer_motion(kp, kp_source[0], kp[anchor], opt.relative, opt.adapt_scale)

    # Pass 2: render and write; the video only replaces --result_video once complete.
    frames = animate.batches(map(animate.prepare, iter_frames(opt.driving_video)), opt.batch_size)
    with VideoWriter(opt.result_video, fps=fps) as writer:
        start = 0
        for batch in progress(frames, desc="rendering", total=-(-len(kp) // opt.batch_size)):
            stop = start + len(batch)
            results = tensor_to_image(
                animate.render(
                    model,
                    z,
                    kp[start:stop],
                    expression[start:stop],
                    animate.SIZE,
                    animate.SIZE,
                    opt.max_num_pixels,
                    opt.precision,
                )
            )
            for driving, result in zip(batch, results):
                writer.write(np.concatenate([to_uint8(driving), result], axis=1))
            if opt.result_frames:
                write_frames(opt.result_frames, results, start=start)
            start = stop
    if opt.audio:
        mux_audio(opt.result_video, opt.driving_video)
    log.info("wrote %s (%d frames at %.3g fps)", opt.result_video, start, fps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
