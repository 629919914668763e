"""Speed and memory of the full-size FSTH networks at 256 x 256 with random weights.

    python -m fsth.bench [--steps 3] [--device cpu|cuda|cuda:N] [--json OUT] [--original DIR] \
        [--precisions fp32 bf16]

Prints ms per generated frame of G (batch 1 and 8) and per embedded frame of E (batch 8),
seconds per meta-training iteration (batch 1, T = 8, VGG19 + VGGFace content loss with random
weights) and the peak memory; `--json` also writes them as common.bench rows, G's and E's with
their counted GFLOP per frame. Each precision of `--precisions` other than fp32 (default bf16 on
the CPU, fp16 on a GPU) times the G and E rows again under autocast, taking turns with fp32 on the
same weights and inputs, as rows `<stage> [bf16]` whose notes give the speed-up over fp32 and how
far the frames moved (`common.precision.frame_agreement`; for E, the frames G renders in float32
from the two embeddings). Training is timed in fp32 only.
`--original DIR` then times the original re-implementation beside ours (fsth.bench_original).
"""

from __future__ import annotations

import argparse
import functools
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from common.bench import BenchRow, count_flops, write_rows_json
from common.distributed import add_device_argument, resolve_device
from common.errors import cli_main
from common.precision import PRECISIONS, autocast, check_precision, frame_agreement
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


def _timed_in_turns(calls: dict[str, Callable], repeats: int, device: torch.device) -> tuple[dict, dict]:
    """(seconds per call, output of the warm-up call) of each of `calls`: one untimed warm-up call
    each, then `repeats` rounds taking turns, in reverse order every other round, so that a change
    of the machine's load falls on all of them alike."""
    outputs = {name: fn() for name, fn in calls.items()}
    _sync(device)
    totals, names = dict.fromkeys(calls, 0.0), list(calls)
    for round_index in range(repeats):
        for name in names[::-1] if round_index % 2 else names:
            start = time.perf_counter()
            calls[name]()
            _sync(device)
            totals[name] += time.perf_counter() - start
    return {name: total / repeats for name, total in totals.items()}, outputs


def _at(precision: str, device: torch.device, fn: Callable, *args) -> Callable[[], torch.Tensor]:
    """`fn(*args)` run under `precision`'s autocast, its output as float32."""

    def run() -> torch.Tensor:
        with autocast(precision, device):
            return fn(*args).float()

    return run


def precision_note(fp32_seconds: float, seconds: float, fp32_frames, frames) -> str:
    """The notes of a reduced-precision row: speed-up over fp32 and the frames' agreement with fp32's."""
    agreement = frame_agreement(fp32_frames, frames)
    return (
        f"x{fp32_seconds / seconds:.2f} vs fp32; frames vs fp32 {agreement['psnr_db']:.1f} dB PSNR, "
        f"max {agreement['max_levels']} levels"
    )


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


def _inference_rows(
    label: str, calls: dict[str, Callable], frames_of: Callable, batch: int, gflop: float, steps: int, device
) -> tuple[list[tuple[str, float, str, str]], list[BenchRow]]:
    """(printed rows, common.bench rows) of one inference stage at every precision of `calls`
    (fp32 first); `frames_of` turns a call's output into frames in [0, 1]."""
    seconds, outputs = _timed_in_turns(calls, steps, device)
    peak, printed, standard = _peak_mib(device), [], []
    for precision in calls:
        name, notes = label, ""
        if precision != "fp32":
            name = f"{label} [{precision}]"
            fp32_frames, frames = frames_of(outputs["fp32"]), frames_of(outputs[precision])
            notes = precision_note(seconds["fp32"], seconds[precision], fp32_frames, frames)
        per_frame = seconds[precision] / batch
        printed.append((name, 1000 * per_frame, "ms / frame", notes))
        standard.append(BenchRow("fsth", name, "inference", per_frame, "frame", peak, gflop, notes, str(device)))
    return printed, standard


def bench(
    steps: int, device: torch.device, precisions: Sequence[str] = ("fp32",)
) -> tuple[list[tuple[str, float, str, str]], list[BenchRow]]:
    """(printed rows: name, value, unit, notes; common.bench rows). Float32 is always timed: it is
    what the other `precisions` are compared with."""
    torch.manual_seed(0)
    size, T, dim = 256, DEFAULTS["metatrain_T"], DEFAULTS["embedding_dim"]
    G = Generator(DEFAULTS["G_config"], dim).to(device)
    E = Embedder(DEFAULTS["E_config"], dim).to(device)
    D = Discriminator(DEFAULTS["V_config"], 4, dim).to(device)
    rows, standard, where = [], [], str(device)
    order = ["fp32", *(p for p in precisions if p != "fp32")]
    with torch.no_grad():
        # one train-mode pass runs the spectral norms' power iteration, as any training does: with
        # their random initial vectors G's eval outputs saturate at 0 and 1 and no frame comparison means much
        G(torch.rand(1, 3, size, size, device=device), torch.randn(1, dim, device=device))
        E(torch.rand(1, 3, size, size, device=device), torch.rand(1, 3, size, size, device=device))
    G.eval()
    E.eval()
    with torch.no_grad():
        # per frame, G's and E's work does not depend on the batch: counted on one frame
        gflop = count_flops(G, torch.rand(1, 3, size, size, device=device), torch.randn(1, dim, device=device)) / 1e9
        for batch in (1, 8):
            y, e = torch.rand(batch, 3, size, size, device=device), torch.randn(batch, dim, device=device)
            calls = {p: _at(p, device, G, y, e) for p in order}
            printed, rows_g = _inference_rows(
                f"G forward, batch {batch}", calls, lambda frames: frames, batch, gflop, steps, device
            )
            rows += printed
            standard += rows_g
        x, y = torch.rand(8, 3, size, size, device=device), torch.rand(8, 3, size, size, device=device)
        gflop = count_flops(E, x[:1], y[:1]) / 1e9
        # an embedding is not a frame: compare the frames float32 G renders from each mean embedding
        y_render = y[:2]

        def rendered(embeddings: torch.Tensor) -> torch.Tensor:
            return G(y_render, embeddings.mean(dim=0, keepdim=True).expand(len(y_render), -1))

        calls = {p: _at(p, device, E, x, y) for p in order}
        printed, rows_e = _inference_rows("E forward, batch 8", calls, rendered, 8, gflop, steps, device)
        rows += printed
        standard += rows_e
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
    step = functools.partial(train_step, E, G, D, L_EG, optim_EG, optim_D, batch, device)
    # one extra step, counted: E, G, D and both VGG networks, forward and backward
    gflop = count_flops(step) / 1e9
    seconds = _timed(step, steps, device)
    rows.append((f"meta-training step, batch 1, T = {T}", seconds, "s / step", ""))
    peak_unit = "MiB (GPU allocated)" if device.type == "cuda" else "MiB (max RSS)"
    rows.append(("peak memory", _peak_mib(device), peak_unit, ""))
    standard.append(BenchRow("fsth", rows[-2][0], "training", seconds, "step", rows[-1][1], gflop, device=where))
    return rows, standard


@cli_main
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fsth.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="timed repeats after one warm-up")
    parser.add_argument("--json", metavar="OUT", help="also write the rows as common.bench JSON")
    parser.add_argument("--original", metavar="DIR", help="also time a bowen-xiao96/reenact checkout beside ours")
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=PRECISIONS,
        help="also time G and E at these (default: fp32 and bf16 on the CPU, fp32 and fp16 on a GPU)",
    )
    add_device_argument(parser)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    precisions = args.precisions or ["fp32", "fp16" if device.type == "cuda" else "bf16"]
    for precision in precisions:
        check_precision(precision, device)
    face = bench_original.find_face_dir(args.original, device.type) if args.original else None
    rows, standard = bench(args.steps, device, precisions)
    comparisons = bench_original.compare(face, args.steps) if face else []
    standard += bench_original.bench_rows(comparisons, args.steps)
    header = f"fsth at 256 x 256, {device}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if args.json:
        write_rows_json(args.json, standard, header)
    print(header)
    for name, value, unit, notes in rows:
        print(f"{name:<38} {value:>10.1f}  {unit}" + (f"  ({notes})" if notes else ""))
    for line in bench_original.table(comparisons, args.steps):
        print(line)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
