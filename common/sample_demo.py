"""What every `make demo` step (`python -m <package>.sample_demo`) shares: its arguments, the
time-boxed quick fit used when no official checkpoint is given, and the README.txt that says
which of the two produced the frames; and what every `python -m <package>.demo_model` shares:
its --sample/--work/--out arguments and the work folder."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from common.errors import InputError, require_at_least_one
from common.sample import SampleFrame, add_sample_arguments, sample_frames

MODEL_KINDS = ("official", "demo model", "quick fit")


def add_demo_arguments(
    parser: argparse.ArgumentParser,
    steps: int,
    max_seconds: float,
    checkpoint_flag: str = "--checkpoint",
    checkpoint_help: str = "official checkpoint",
) -> None:
    """--sample, --out, the checkpoint flag (without it: a quick fit), --steps, --max_seconds, --seed."""
    add_sample_arguments(parser)
    parser.add_argument(
        checkpoint_flag,
        dest="checkpoint",
        type=Path,
        help=f"{checkpoint_help}; without it a quick fit on the sample is run",
    )
    parser.add_argument(
        "--steps", type=int, default=steps, help=f"quick fit: at most this many steps (default {steps})"
    )
    parser.add_argument(
        "--max_seconds",
        type=float,
        default=max_seconds,
        help=f"quick fit: stop training after about this many seconds (default {max_seconds:g})",
    )
    parser.add_argument("--seed", type=int, default=0, help="quick fit: initialisation and data order")


def start_demo(args: argparse.Namespace) -> list[SampleFrame]:
    """Check everything a demo step reads before any work (the sample's frames, the quick-fit
    settings) with one-line errors, then create the output folder; returns the sample's frames."""
    frames = sample_frames(args.sample)
    require_at_least_one(args, "steps")
    if args.max_seconds <= 0:
        raise InputError(f"--max_seconds must be positive, got {args.max_seconds}")
    args.out.mkdir(parents=True, exist_ok=True)
    return frames


def time_boxed_fit(
    train_until: Callable[[int], object], steps: int, max_seconds: float, first: int = 10
) -> tuple[int, float]:
    """Train in resumed chunks until `steps` are done or about `max_seconds` have passed.

    `train_until(n)` must continue the run to step n (trainers here resume exactly). A first call
    of `first` steps measures the step time; each later one runs as many steps as fit in the time
    left, so the limit holds without the trainer knowing of it. Returns (steps done, seconds).
    """
    start, done = time.perf_counter(), 0
    while done < steps:
        elapsed = time.perf_counter() - start
        if done and elapsed >= max_seconds:
            break
        target = (
            min(steps, first)
            if not done
            else min(steps, done + max(1, int((max_seconds - elapsed) / (elapsed / done))))
        )
        train_until(target)
        done = target
    return done, time.perf_counter() - start


def write_readme(out: Path, label: str, sample: Path, outputs: str) -> str:
    """OUT/README.txt: what produced the frames (`label`), the inputs and `outputs`; printed too."""
    text = f"{label}\nsource: {sample / 'source.png'}\ndriving: {sample / 'driving'}\n{outputs}\n"
    (out / "README.txt").write_text(text)
    print(text, end="")
    return text


def demo_model_parser(prog: str, doc: str, out: Path, out_help: str, work_help: str) -> argparse.ArgumentParser:
    """A `<package>.demo_model` parser with --sample (required), --work and --out (default `out`)."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0])
    parser.add_argument("--sample", required=True, type=Path, help="folder written by tools.make_sample_data")
    parser.add_argument("--work", type=Path, help=f"{work_help} (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=out, help=f"{out_help} (default: {out})")
    return parser


Result = TypeVar("Result")


def in_work_folder(work: Path | None, prefix: str, build: Callable[[Path], Result]) -> Result:
    """build(work), or build(a temporary folder named `prefix`...) removed afterwards when `work` is None."""
    if work is not None:
        return build(work)
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        return build(Path(folder))


def pick_model(official: Sequence[Path], demo: Sequence[Path]) -> tuple[list[Path], str] | None:
    """The files a demo step loads when the user names none, and what they are.

    `official`: the released files where the package README says to put them
    (checkpoints/<package>/...); `demo`: the small model trained on the sample and committed in
    the package (<package>/demo_model/...). The official files win when all are present. Returns
    (files, "official" or "demo model"), or None when neither set is complete.
    """
    for files, kind in ((official, "official"), (demo, "demo model")):
        if files and all(Path(f).is_file() for f in files):
            return [Path(f) for f in files], kind
    return None


def peak_memory_mb() -> float:
    """This process's peak resident memory so far, in MiB (ru_maxrss is KiB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_run_info(
    out: Path,
    method: str,
    model: str,
    checkpoint: str,
    size: int,
    parts: dict[str, dict],
    seconds_per_frame: float,
) -> Path:
    """OUT/run.json: what `tools.compare_demo` needs to score a demo step without knowing the method.

    `model` is "official", "demo model" or "quick fit"; `checkpoint` names the files used;
    `size` is the output frames' side in pixels. `parts` maps "self" and "cross" to
    {"frames": folder of NNNNN.png named after the driving frames they render, relative to OUT,
    "source": source image, "driving": driving frames folder, "identity": image whose identity the
    result should keep}. Peak memory is this process's so far.
    """
    if model not in MODEL_KINDS:
        raise ValueError(f"model must be one of {MODEL_KINDS}, got {model!r}")
    info = {
        "method": method,
        "model": model,
        "checkpoint": checkpoint,
        "size": int(size),
        "seconds_per_frame": float(seconds_per_frame),
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "parts": {name: {key: str(value) for key, value in part.items()} for name, part in parts.items()},
    }
    path = out / "run.json"
    path.write_text(json.dumps(info, indent=2) + "\n")
    return path
