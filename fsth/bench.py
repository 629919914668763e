"""Speed and memory of the full-size FSTH networks at 256 x 256 with random weights.

    python -m fsth.bench [--steps 3] [--device cpu|cuda|cuda:N] [--json OUT] [--original DIR]

Prints ms per generated frame of G (batch 1 and 8), seconds per meta-training iteration
(batch 1, T = 8, VGG19 + VGGFace content loss with random weights) and the peak memory;
`--json` also writes them as common.bench rows, G's with its counted GFLOP per frame.
`--original DIR` then times the original re-implementation beside ours (fsth.bench_original).
"""

from __future__ import annotations

import argparse
import functools
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from common.bench import BenchRow, count_flops, write_rows_json
from common.distributed import add_device_argument, resolve_device
from common.errors import cli_main
from common.vgg.torch_vgg import VGGFeatures
from fsth import bench_original
from fsth.config import DEFAULTS
from fsth.loss import Loss_EG_meta
from fsth.meta_train import train_step
from fsth.network import Discriminator, Embedder, Generator


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, repeats: int, device: torch.device) -> float:
    """Seconds per call after one warm-up call."""
    fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def random_vgg_files(folder: Path) -> dict[str, str]:
    """Random full-size VGG19 / VGGFace weights in FSTH's `conv_layers.*` layout (the loss reads files)."""
    files = {}
    for arch in ("vgg19", "vggface"):
        state = {k.replace("features.", "conv_layers."): v for k, v in VGGFeatures(arch).state_dict().items()}
        files[f"{arch}_weight_file"] = str(folder / f"{arch}.pth")
        torch.save(state, files[f"{arch}_weight_file"])
    return files


def bench(steps: int, device: torch.device) -> tuple[list[tuple[str, float, str]], list[BenchRow]]:
    """(printed rows, common.bench rows)."""
    torch.manual_seed(0)
    size, T, dim = 256, DEFAULTS["metatrain_T"], DEFAULTS["embedding_dim"]
    G = Generator(DEFAULTS["G_config"], dim).to(device)
    E = Embedder(DEFAULTS["E_config"], dim).to(device)
    D = Discriminator(DEFAULTS["V_config"], 4, dim).to(device)
    rows, standard, where = [], [], str(device)
    G.eval()
    with torch.no_grad():
        # per frame, G's work does not depend on the batch: counted on one frame
        gflop = count_flops(G, torch.rand(1, 3, size, size, device=device), torch.randn(1, dim, device=device)) / 1e9
        for batch in (1, 8):
            y, e = torch.rand(batch, 3, size, size, device=device), torch.randn(batch, dim, device=device)
            seconds = _timed(functools.partial(G, y, e), steps, device)
            rows.append((f"G forward, batch {batch}", 1000 * seconds / batch, "ms / frame"))
            peak = _peak_mib(device)
            standard.append(
                BenchRow("fsth", rows[-1][0], "inference", seconds / batch, "frame", peak, gflop, "", where)
            )
    with tempfile.TemporaryDirectory() as folder:
        cfg = {**DEFAULTS, **random_vgg_files(Path(folder))}
        L_EG = Loss_EG_meta.from_config(cfg).to(device).eval()
    for net in (G, E, D):
        net.train()
    optim_EG = torch.optim.Adam([*E.parameters(), *G.parameters()], lr=cfg["lr_EG"], betas=cfg["adam_betas"])
    optim_D = torch.optim.Adam(D.parameters(), lr=cfg["lr_D"], betas=cfg["adam_betas"])
    batch = (
        torch.tensor([1]),
        torch.rand(1, T, 3, size, size),
        torch.rand(1, T, 3, size, size),
        torch.rand(1, 3, size, size),
        torch.rand(1, 3, size, size),
    )
    seconds = _timed(lambda: train_step(E, G, D, L_EG, optim_EG, optim_D, batch, device), steps, device)
    rows.append((f"meta-training step, batch 1, T = {T}", seconds, "s / step"))
    rows.append(("peak memory", _peak_mib(device), "MiB (GPU allocated)" if device.type == "cuda" else "MiB (max RSS)"))
    standard.append(BenchRow("fsth", rows[-2][0], "training", seconds, "step", rows[-1][1], device=where))
    return rows, standard


@cli_main
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fsth.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="timed repeats after one warm-up")
    parser.add_argument("--json", metavar="OUT", help="also write the rows as common.bench JSON")
    parser.add_argument("--original", metavar="DIR", help="also time a bowen-xiao96/reenact checkout beside ours")
    add_device_argument(parser)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    face = bench_original.find_face_dir(args.original, device.type) if args.original else None
    rows, standard = bench(args.steps, device)
    comparisons = bench_original.compare(face, args.steps) if face else []
    standard += bench_original.bench_rows(comparisons, args.steps)
    header = f"fsth at 256 x 256, {device}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if args.json:
        write_rows_json(args.json, standard, header)
    print(header)
    for name, value, unit in rows:
        print(f"{name:<38} {value:>10.1f}  {unit}")
    for line in bench_original.table(comparisons, args.steps):
        print(line)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
