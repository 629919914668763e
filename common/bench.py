"""The benches' shared result format and the machine's reference numbers.

Every `<pkg>/bench.py --json OUT` writes `BenchRow`s with `write_rows_json`; `python -m tools.bench`
collects them into one table beside the machine's matmul peak (`matmul_peak_gflops`), so that a
method's achieved GFLOP/s (`count_flops` of its dominant forward / its time) reads as a fraction
of what this CPU or GPU can do at all. Framework-neutral at import: torch is imported inside the
functions that time or count with it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

KINDS = ("inference", "training", "other")
UNITS = ("frame", "step", "call")
FORMAT = 1  # version of the JSON layout written by write_rows_json


@dataclasses.dataclass
class BenchRow:
    """One measured stage: `seconds` and `gflop` are per `unit` (a frame, a training step or a call).

    `gflop` counts the stage's dominant forward (matmuls and convolutions, 2 FLOPs per
    multiply-add; see `count_flops`), so `achieved_gflops` is a lower bound of the rate its kernels
    run at. `peak_mb` is the peak memory in MiB (resident set on CPU, allocator peak on GPU).
    `device` is where it ran ("cpu", "cuda", "cuda:1"), which tells which peak it compares with.
    """

    method: str
    stage: str
    kind: str
    seconds: float | None
    unit: str
    peak_mb: float | None = None
    gflop: float | None = None
    notes: str = ""
    device: str = "cpu"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {KINDS}")
        if self.unit not in UNITS:
            raise ValueError(f"unit {self.unit!r} is not one of {UNITS}")

    @property
    def achieved_gflops(self) -> float | None:
        """GFLOP/s of the counted work: gflop / seconds, None when either is missing."""
        if self.gflop is None or not self.seconds:
            return None
        return self.gflop / self.seconds

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "achieved_gflops": self.achieved_gflops}

    @classmethod
    def from_dict(cls, values: dict) -> BenchRow:
        """The row `to_dict` wrote (derived and unknown keys are ignored)."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})


def write_rows_json(path: str | Path, rows: list[BenchRow], header: str, extra: dict | None = None) -> Path:
    """`{"format", "header", "standard_rows": [...], **extra}` as JSON at `path` (written whole, then
    renamed, so that a reader never sees half a file). `extra` holds a bench's own details."""
    path = Path(path)
    report = {"format": FORMAT, "header": header, "standard_rows": [row.to_dict() for row in rows], **(extra or {})}
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(report, indent=1, default=str) + "\n")
    os.replace(temporary, path)
    return path


def read_rows_json(path: str | Path) -> tuple[str, list[BenchRow]]:
    """(header, rows) of a file `write_rows_json` wrote; ValueError names what is wrong with it."""
    report = json.loads(Path(path).read_text())
    if not isinstance(report, dict) or not isinstance(report.get("standard_rows"), list):
        raise ValueError(f"{path}: no 'standard_rows' list (not written by common.bench.write_rows_json)")
    return str(report.get("header", "")), [BenchRow.from_dict(row) for row in report["standard_rows"]]


def matmul_peak_gflops(
    size: int = 2048, dtype: str = "float32", threads: int | None = None, repeats: int = 5, device: str = "cpu"
) -> float:
    """GFLOP/s of the fastest of `repeats` `size` x `size` matrix products (2 size^3 FLOPs each)
    after one untimed product, on `threads` torch threads (default: torch's current count, the one
    the benches run with): the practical limit of dense float32 / bfloat16 work on this machine."""
    import torch

    kind = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator).to(device=device, dtype=kind) for _ in range(2))
    out = torch.empty_like(a)
    saved = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)

    def product_seconds() -> float:
        if device != "cpu":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        if device != "cpu":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    try:
        product_seconds()  # allocation and kernel selection are not part of the rate
        best = min(product_seconds() for _ in range(repeats))
    finally:
        torch.set_num_threads(saved)
    return 2 * size**3 / best / 1e9


def count_flops(fn, *args, **kwargs) -> int:
    """FLOPs of one call `fn(*args, **kwargs)`, counted by torch.utils.flop_counter.FlopCounterMode.

    It counts matrix products, convolutions and attention (and their backward passes), each
    multiply-add as 2 FLOPs, from the shapes the call dispatches; element-wise work (activations,
    normalisation, additions) is not counted. The call runs once, at its normal cost. torch's table
    lacks the CPU kernel of scaled_dot_product_attention: it is counted here like the GPU ones."""
    import torch
    from torch.utils import flop_counter

    aten = torch.ops.aten

    def forward(query, key, value, *args, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, **kwargs) -> int:
        return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)

    mapping = {
        aten._scaled_dot_product_flash_attention_for_cpu: forward,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: backward,
    }
    with flop_counter.FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops()


def fixed(value, digits: int = 3) -> str:
    """`value` with `digits` decimals, "-" for None (a stage that did not run)."""
    return "-" if value is None else f"{value:.{digits}f}"


def side_by_side_table(rows: list[dict], header: str) -> str:
    """Markdown of ours-beside-original rows (keys stage, ours, unit, original, ratio, peak_mib, note)."""
    lines = [
        header,
        "",
        "| stage | ours | original | original / ours | peak MiB | notes |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ours = "-" if row["ours"] is None else f"{row['ours']:.3f} {row['unit']}"
        cells = (row["stage"], ours, fixed(row["original"]), fixed(row["ratio"], 2), fixed(row["peak_mib"], 0))
        lines.append("| " + " | ".join((*cells, row["note"])) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------ ours beside the original
PARITY_TOLERANCE = 5e-5  # tests/numerics.py FORWARD: whole networks, fraction of max |original|


@dataclasses.dataclass
class Comparison:
    """One stage timed on both sides (`<pkg>.bench --original`): best seconds per `unit` and the
    worst output difference as a fraction of the original's largest magnitude (`worst_output`
    names the output). `peak_mib`: side -> MiB, where each side was measured in a process of its own."""

    stage: str
    kind: str
    unit: str
    ours: float
    original: float
    worst: float
    worst_output: str
    peak_mib: dict = dataclasses.field(default_factory=dict)

    @property
    def speedup(self) -> float:
        """How many times faster ours is (> 1: faster)."""
        return self.original / self.ours

    @property
    def agrees(self) -> bool:
        return self.worst <= PARITY_TOLERANCE


def best_alternating(calls: dict, repeats: int) -> tuple[dict[str, float], dict]:
    """Best seconds of each zero-argument call over `repeats` rounds in which the calls take turns
    (in reverse order every other round, so that none always follows the other), after one untimed
    warm-up round; and what each call returned in the warm-up round."""
    from common.errors import InputError

    if repeats < 1:
        raise InputError(f"repeats must be at least 1, got {repeats}")
    first = {name: call() for name, call in calls.items()}
    best = dict.fromkeys(calls, float("inf"))
    for round_index in range(repeats):
        for name, call in list(calls.items())[:: 1 if round_index % 2 else -1]:
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, first


def relative_difference(actual, expected) -> float:
    """max |actual - expected| as a fraction of max |expected| (arrays or tensors of one shape);
    the plain difference when `expected` is all zeros."""
    import numpy as np

    def values(x) -> np.ndarray:
        return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)

    actual, expected = values(actual), values(expected)
    if actual.shape != expected.shape:
        raise ValueError(f"shape {actual.shape} != original {expected.shape}")
    difference = float(np.abs(actual - expected).max())
    scale = float(np.abs(expected).max())
    return difference / scale if scale else difference


def worst_difference(ours: dict, original: dict) -> tuple[float, str]:
    """(largest `relative_difference` over the outputs `original` names, that output's name)."""
    differences = {name: relative_difference(ours[name], original[name]) for name in original}
    name = max(differences, key=differences.get)
    return differences[name], name
