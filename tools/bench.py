"""Every method's bench in one table, beside this machine's matmul limit (`make bench`).

    python -m tools.bench [--quick] [--out bench_output] [--only fsrt,lsr,...] [--threads N] [--scaling]

Runs `tools.bench_common` and each package's bench in its own subprocess (TensorFlow's never in a
torch process) with `--json OUT/raw/<name>.json` (its printed table goes to OUT/raw/<name>.log),
measures the float32 and bfloat16 peak of a large matrix product on the same thread count before
and after the benches (the higher counts: load on a shared machine only lowers it), and
writes OUT/bench.md and OUT/bench.json: per stage the seconds per frame / step / call, peak memory,
the counted GFLOP of its dominant forward, the GFLOP/s that achieves and its share of the float32
peak. A bench that fails or times out is a row with its one-line error; the others still run.
Progress goes to stderr.

The flags of each bench (`BENCHES`) keep the full run to about 11 minutes on two idle cores (10.5
measured with every bench's default bf16 rows) and `--quick` to about 6: the full run decodes one whole FSRT
frame and times its three training phases, FSTH and LSR at their default repeats, VPGC best of two
with a 2-frame stage-1 training batch (4 frames need about 20 GB), VFA at its `--quick` setting
(its batch-8 training steps alone take several minutes). `--quick` decodes an eighth of an FSRT
frame (time and FLOPs scaled), times FSRT's training phase 1 only, one repeat elsewhere and VPGC's
stage-1 step on one frame. The peak measurements run in this process, before and after the benches.
`--scaling` then runs `tools.bench_scaling` (how time and memory grow with frames, sources, K and
resolution; about 3 more minutes, under 2 with `--quick`) into the same folder and links its outputs.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

from common.bench import BenchRow, matmul_peak_gflops, read_rows_json
from common.errors import InputError, cli_main, require_at_least_one
from common.precision import native_bf16


@dataclasses.dataclass(frozen=True)
class Bench:
    """A bench command: its module and its flags for the full and for the `--quick` run."""

    module: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()


BENCHES = {
    "bench_common": Bench("tools.bench_common", quick=("--frames", "16")),
    "fsrt": Bench("fsrt.bench", quick=("--num_pixels", "8192", "--phases", "1")),
    "fsth": Bench("fsth.bench", quick=("--steps", "1")),
    "lsr": Bench("lsr.bench", quick=("--iters", "1")),
    "vpgc": Bench("vpgc.bench", ("--stage1_train_frames", "2"), ("--quick", "--stage1_train_frames", "1")),
    "vfa": Bench("vfa.bench", ("--quick",), ("--quick",)),
}


BF16_SAID = {True: "yes", False: "no (bf16 is emulated: slower than float32)", None: "unknown"}


def log(message: str) -> None:
    print(f"tools.bench: {message}", file=sys.stderr, flush=True)


def last_line(path: Path) -> str:
    """The last non-empty line of a log: an exception's `Type: message`, or cli_main's `error: ...`."""
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def run_logged(command: list[str], log_path: Path, env: dict, timeout: float) -> str | None:
    """Run `command` with its output in `log_path`; None when it succeeded, else a one-line reason."""
    with log_path.open("w") as stream:
        # its own session: on a timeout the processes it spawned are stopped with it
        process = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"timed out after {timeout:.0f} s"
        finally:
            if process.poll() is None:  # timed out, or this run was interrupted (Ctrl-C)
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return f"exit status {process.returncode}: {last_line(log_path)}" if process.returncode != 0 else None


def run_bench(name: str, bench: Bench, quick: bool, raw: Path, env: dict, timeout: float) -> dict:
    """Run one bench as `python -m MODULE FLAGS --json raw/NAME.json`; its record: command, seconds,
    header and rows, or error (a one-line reason) when it failed, timed out or wrote no rows."""
    output, log_path = raw / f"{name}.json", raw / f"{name}.log"
    output.unlink(missing_ok=True)
    command = [sys.executable, "-m", bench.module, *(bench.quick if quick else bench.full), "--json", str(output)]
    record = {"command": " ".join(["python", *command[1:]]), "log": str(log_path)}
    start = time.perf_counter()
    error = run_logged(command, log_path, env, timeout)
    record["seconds"] = time.perf_counter() - start
    if error is not None:
        record["error"] = error
    else:
        try:
            record["header"], record["rows"] = read_rows_json(output)
        except (OSError, ValueError) as exc:
            record["error"] = f"no rows: {' '.join(str(exc).split())}"
    return record


def measure_peaks(size: int, threads: int | None) -> dict:
    """GFLOP/s of a size x size matrix product: float32 and bfloat16 on the CPU, and on the GPU
    when there is one (rows that ran there are compared with it)."""
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return {
        device: {dtype: matmul_peak_gflops(size, dtype, threads, device=device) for dtype in ("float32", "bfloat16")}
        for device in devices
    }


def higher_peaks(*measured: dict) -> dict:
    """Per device and dtype the highest of several `measure_peaks` results: a shared machine's load
    only ever lowers a measured rate, so the highest is the nearest to the limit."""
    return {
        device: {dtype: max(m[device][dtype] for m in measured) for dtype in rates}
        for device, rates in measured[0].items()
    }


def table_rows(records: dict, peaks: dict) -> list[dict]:
    """One dict per stage (a failed bench: one row with its error), with its share of the float32 peak."""
    rows = []
    for name, record in records.items():
        if "error" in record:
            failed = BenchRow(name, "bench failed", "other", None, "call", notes=record["error"])
            rows.append({**failed.to_dict(), "percent_of_float32_peak": None})
            continue
        for row in record["rows"]:
            peak = peaks.get("cuda" if row.device.startswith("cuda") else "cpu", {}).get("float32")
            rate = row.achieved_gflops
            rows.append({**row.to_dict(), "percent_of_float32_peak": 100 * rate / peak if rate and peak else None})
    return rows


def _number(value, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _seconds(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def run_scaling(out: Path, quick: bool, env: dict, timeout: float) -> dict:
    """`python -m tools.bench_scaling` into `out` (its output in OUT/raw/scaling.log): its command,
    seconds, and error when it failed."""
    command = [sys.executable, "-m", "tools.bench_scaling", "--out", str(out), *(["--quick"] if quick else [])]
    record = {"command": " ".join(["python", *command[1:]])}
    start = time.perf_counter()
    error = run_logged(command, out / "raw" / "scaling.log", env, timeout)
    record["seconds"] = time.perf_counter() - start
    return {**record, "error": error} if error else record


def markdown(rows: list[dict], records: dict, peaks: dict, machine: dict, scaling: dict | None = None) -> str:
    size = machine["matmul_size"]
    before, after = machine["peaks_before"], machine["peaks_after"]
    limits = "; ".join(
        f"{device} float32 {rates['float32']:.0f} GFLOP/s, bfloat16 {rates['bfloat16']:.0f} GFLOP/s "
        f"({rates['bfloat16'] / rates['float32']:.1f}x; float32 {before[device]['float32']:.0f} before the benches, "
        f"{after[device]['float32']:.0f} after)"
        for device, rates in peaks.items()
    )
    lines = [
        "# Benchmarks",
        "",
        f"{machine['date']}, {machine['processor']}, {machine['threads']} threads, torch {machine['torch']}, "
        f"{'--quick' if machine['quick'] else 'full run'}; bfloat16 instructions: {BF16_SAID[machine['native_bf16']]}.",
        "",
        f"Machine limit ({size}x{size} matrix product, best of 5, the higher of a measurement before and one "
        f"after the benches; far apart, the machine's load changed during the run): {limits}.",
        "GFLOP counts the dominant forward's matrix products and convolutions (2 per multiply-add); "
        "GFLOP/s = GFLOP / seconds, a lower bound of its kernels' rate.",
        "",
        "| method | stage | seconds | per | peak MB | GFLOP | GFLOP/s | % of float32 peak | notes |",
        "|---|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        cells = (
            row["method"],
            row["stage"],
            _seconds(row["seconds"]),
            row["unit"],
            _number(row["peak_mb"], 0),
            _number(row["gflop"], 1),
            _number(row["achieved_gflops"], 1),
            _number(row["percent_of_float32_peak"], 0),
            row["notes"],
        )
        lines.append("| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |")
    lines += ["", "Runs (each bench's own table is in raw/<name>.log):", ""]
    for name, record in records.items():
        said = record.get("header") or record.get("error", "")
        lines.append(f"- {name}: `{record['command']}` ({record['seconds']:.0f} s): {said}")
    if scaling:
        said = scaling.get("error") or "[scaling.md](scaling.md), [scaling.png](scaling.png), scaling.json"
        lines += ["", f"Scaling with the work: `{scaling['command']}` ({scaling['seconds']:.0f} s): {said}"]
    return "\n".join(lines) + "\n"


def processor_name() -> str:
    """The CPU's model name where Linux tells it, else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few minutes instead of about 11 (see the flags above)")
    parser.add_argument("--out", default="bench_output", help="folder for bench.md, bench.json and raw/")
    parser.add_argument("--only", help=f"comma-separated benches to run (of {', '.join(BENCHES)})")
    parser.add_argument("--threads", type=int, help="threads for every bench and the peak (default: each library's)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds after which a bench is stopped")
    parser.add_argument("--matmul_size", type=int, default=2048, help="matrix size of the peak measurement")
    parser.add_argument("--scaling", action="store_true", help="then run tools.bench_scaling into the same folder")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else list(BENCHES)
    unknown = [name for name in names if name not in BENCHES]
    if unknown or not names:
        raise InputError(
            f"--only {args.only!r}: unknown bench {unknown[0] if unknown else '(none)'!r}; "
            f"choose from {', '.join(BENCHES)}"
        )
    args.names = list(dict.fromkeys(names))
    require_at_least_one(args, "threads")
    if args.timeout <= 0 or args.matmul_size < 1:
        raise InputError("--timeout and --matmul_size must be positive")
    args.out = Path(args.out)
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out {args.out}: exists and is not a folder")
    return args


@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    raw = args.out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if args.threads:
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
            env[variable] = str(args.threads)
    import torch

    threads = args.threads or torch.get_num_threads()
    log(f"matmul peak ({args.matmul_size}x{args.matmul_size}, {threads} threads)")
    peaks_before = measure_peaks(args.matmul_size, threads)
    records = {}
    for index, name in enumerate(args.names, 1):
        log(f"[{index}/{len(args.names)}] {name}: python -m {BENCHES[name].module}")
        records[name] = run_bench(name, BENCHES[name], args.quick, raw, env, args.timeout)
        outcome = records[name].get("error", f"{len(records[name].get('rows', []))} rows")
        log(f"[{index}/{len(args.names)}] {name}: {records[name]['seconds']:.0f} s, {outcome}")
    scaling = None
    if args.scaling:
        log("scaling: python -m tools.bench_scaling")
        scaling = run_scaling(args.out, args.quick, env, args.timeout)
        log(f"scaling: {scaling['seconds']:.0f} s, {scaling.get('error', 'done')}")
    log(f"matmul peak again ({args.matmul_size}x{args.matmul_size}, {threads} threads)")
    peaks_after = measure_peaks(args.matmul_size, threads)
    peaks = higher_peaks(peaks_before, peaks_after)
    machine = {
        "peaks_before": peaks_before,
        "peaks_after": peaks_after,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "processor": processor_name(),
        "native_bf16": native_bf16(),
        "threads": threads,
        "torch": torch.__version__,
        "quick": args.quick,
        "matmul_size": args.matmul_size,
    }
    rows = table_rows(records, peaks)
    (args.out / "bench.md").write_text(markdown(rows, records, peaks, machine, scaling))
    for record in records.values():
        record.pop("rows", None)  # they are in `rows`, with the percentages
    report = {"machine": machine, "peaks_gflops": peaks, "rows": rows, "benches": records, "scaling": scaling}
    (args.out / "bench.json").write_text(json.dumps(report, indent=1) + "\n")
    log(f"wrote {args.out / 'bench.md'} and {args.out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
