"""FSTH reenactment of the shared sample (`tools.make_sample_data`), for `make demo`.

    python -m fsth.demo --sample DIR --out OUT [--checkpoint save_N.pkl] [--steps N] [--max_seconds S]

With --checkpoint: `fsth.infer` with DIR/source.png as the source frame(s) and DIR/driving/ as the
driving frames. Without: a QUICK FIT, not the official model (none was ever published): a small
meta-training run (`fsth.meta_train.meta_train`) on the sample's own frames at 64 x 64, stopped
after --steps iterations or --max_seconds, then the same inference with its checkpoint. The
perceptual (VGG) terms are switched off (weight 0); meta_train's loss still loads VGG weight files,
so random placeholder weights are written to a temporary folder and only ever multiplied by 0.
Writes OUT/frames/00000.png ..., OUT/result.mp4 and OUT/README.txt (what produced them).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from common.checkpoint import require_file
from common.errors import InputError, cli_main
from common.image import read_image
from common.progress import get_logger
from common.sample import add_sample_arguments, require, sample_fps, sample_frames
from common.video import write_frames, write_video
from fsth import meta_train as meta_train_module
from fsth.checkpoint import WHERE
from fsth.config import load_config
from fsth.infer import Reenactor, driving_frames
from fsth.loss import Loss_EG_meta

log = get_logger('fsth.demo')

# Narrow networks with the original block sequence (3 downsamplings: 64 px -> 8 x 8 maps).
QUICK_NETWORKS = {
    'G_config': (('D', 16, 9, 2), ('I',), ('D', 32, 3, 2), ('I',), ('A',), ('D', 32, 3, 2), ('I',),
                 ('BA', 32, 3), ('BA', 32, 3), ('U', 32, 3, 2), ('U', 16, 3, 2), ('A', 8), ('U', 3, 3, 2)),
    'E_config': (('D', 16, 3, 2), ('D', 32, 3, 2), ('A',), ('D', 32, 3, 2)),
    'V_config': (('D', 16, 3, 2), ('D', 32, 3, 2), ('A',), ('D', 32, 3, 2), ('B', 32, 3)),
    'embedding_dim': 32,
}
QUICK_SIZE = 64

QUICK_LABEL = ("QUICK FIT on the sample, NOT the official model: FSTH networks ({size} px, narrow) "
               "meta-trained from scratch for {steps} steps ({seconds:.0f} s on this machine's CPU) on the sample's own "
               "frames, then run feed-forward. The perceptual (VGG19/VGGFace) loss terms were disabled "
               "(weight 0); meta_train still loads VGG weight files, so random placeholder weights were "
               "used and contributed nothing. Losses used: adversarial + feature matching + embedding "
               "matching. Expect blurry, low-quality output.")
CHECKPOINT_LABEL = "FSTH reenactment with checkpoint {checkpoint} (feed-forward, no fine-tuning)."


def _placeholder_vgg(folder: Path) -> dict:
    """Tiny random-weight VGG files in FSTH's layout, with the real block structure so the
    configured layer indices exist. Only to satisfy the loader: their loss weight is 0."""
    from common.vgg.layouts import VGGArch
    from common.vgg.torch_vgg import VGGFeatures

    out = {}
    for name, blocks, mean in (('vgg19', (2, 2, 4, 4, 4), (103.939, 116.779, 123.68)),
                               ('vggface', (2, 2, 3, 3, 3), (93.5940, 104.7624, 129.1863))):
        arch = VGGArch(f'placeholder_{name}', blocks, 10, mean, 'random placeholder (loss weight 0)',
                       widths=(4, 4, 4, 4, 4), fc_width=8)
        state = {k.replace('features.', 'conv_layers.'): v for k, v in VGGFeatures(arch).state_dict().items()}
        torch.save(state, folder / f'{name}.pth')
        out[name] = (arch, folder / f'{name}.pth')
    return out


def _training_set(sample: Path, root: Path) -> Path:
    """The sample's frames as one training video (frames + landmarks .npy beside them)."""
    clip = root / 'sample' / 'clip'
    clip.mkdir(parents=True)
    for i, frame in enumerate(sample_frames(sample)):
        shutil.copy(frame.image, clip / f'{i:05d}.png')
        shutil.copy(require(frame.landmarks, sample), clip / f'{i:05d}.npy')
    return root


def quick_fit(sample: Path, work: Path, steps: int, max_seconds: float, seed: int = 0) -> tuple[Path, int, float]:
    """Meta-train the quick config on the sample; (checkpoint, steps done, seconds)."""
    vgg = _placeholder_vgg(work)
    cfg = load_config(None, **QUICK_NETWORKS, train_dataset=str(_training_set(sample, work / 'data')),
                      input_size=QUICK_SIZE, metatrain_T=4, metatrain_batch_size=2, num_worker=0,
                      vgg19_weight_file=str(vgg['vgg19'][1]), vggface_weight_file=str(vgg['vggface'][1]),
                      vgg19_loss_weight=0.0, vggface_loss_weight=0.0, max_epoch=10 ** 6,
                      display_every=10, check_every=10 ** 9, save_every=10 ** 9, lr_EG=1e-3, lr_D=1e-3)
    loss = Loss_EG_meta.from_config(cfg, vgg19_arch=vgg['vgg19'][0], vggface_arch=vgg['vggface'][0])
    start = time.perf_counter()
    run_dir = work / 'run'
    # one meta_train call per chunk of steps, resuming from its checkpoint, so the time limit is
    # checked between chunks without touching meta_train itself
    done, ckpt, chunk = 0, None, 5
    while done < steps:
        n = min(chunk, steps - done)
        resume = meta_train_module.read_meta_checkpoint(ckpt) if ckpt is not None else None
        ckpt = meta_train_module.meta_train(cfg, run_dir, loss, resume=resume, max_steps=n, seed=seed)
        done += n
        if time.perf_counter() - start > max_seconds:
            break
    return ckpt, done, time.perf_counter() - start


def reenact(checkpoint: Path, sample: Path, out: Path) -> list[Path]:
    """fsth.infer on the sample: source.png embedded, driving/ rendered; frames + result.mp4."""
    model = Reenactor(checkpoint, device='cpu')
    e = model.embed([sample / 'source.png'])
    frames, _, _ = driving_frames(sample / 'driving')
    if (out / 'frames').exists():
        shutil.rmtree(out / 'frames')
    written = write_frames(out / 'frames', model.render(e, frames))
    write_video(out / 'result.mp4', (read_image(p) for p in written), fps=sample_fps(sample))
    return written


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m fsth.demo', description=__doc__.split('\n')[0])
    add_sample_arguments(parser)
    parser.add_argument('--checkpoint', type=Path, help='an official/meta-training save_<step>.pkl; '
                                                        'without it a quick fit on the sample is run')
    parser.add_argument('--steps', type=int, default=60, help='quick fit: iterations (default 60)')
    parser.add_argument('--max_seconds', type=float, default=50.0,
                        help='quick fit: stop after about this many seconds (default 50)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> None:
    args = parse_args(argv)
    sample_frames(args.sample)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.checkpoint is not None:
        require_file(args.checkpoint, 'checkpoint file', WHERE)
        label = CHECKPOINT_LABEL.format(checkpoint=args.checkpoint)
        written = reenact(args.checkpoint, args.sample, args.out)
    else:
        if args.steps < 1:
            raise InputError(f"--steps must be at least 1, got {args.steps}")
        with tempfile.TemporaryDirectory(prefix='fsth_demo_') as work:
            ckpt, steps, seconds = quick_fit(args.sample, Path(work), args.steps, args.max_seconds, args.seed)
            label = QUICK_LABEL.format(size=QUICK_SIZE, steps=steps, seconds=seconds)
            written = reenact(ckpt, args.sample, args.out)
    text = f"{label}\nsource: {args.sample / 'source.png'}\ndriving: {args.sample / 'driving'}\n" \
           f"{len(written)} frames -> {args.out / 'frames'}, {args.out / 'result.mp4'}\n"
    (args.out / 'README.txt').write_text(text)
    print(text, end='')


if __name__ == '__main__':
    main()
