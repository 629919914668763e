"""Score generated frames of any method against ground truth, a driver and an identity.

`python -m tools.evaluate --generated NAME=PATH [--generated NAME=PATH ...] --reference PATH
[--source IMAGE] [--identity IMAGE] [--driving PATH] [--frames 40-47] [--size N]
[--metrics l1,psnr,...] [--panel NAME=SPEC] --out DIR`

PATH is a folder of frames (matched with the reference by file stem) or a video (by frame
index). Writes DIR/per_frame.csv, DIR/summary.json, DIR/metrics.md and DIR/metrics.png. LPIPS
and FID run only when their weights are found (docs/evaluation.md); otherwise the report says
they were skipped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common.errors import InputError, cli_main
from common.image import read_image
from tools.evaluation import (
    METRICS,
    Evaluation,
    Result,
    Weights,
    crop_panel,
    frame_size,
    load_fid,
    load_lpips,
    parse_metrics,
    parse_panel,
    parse_selection,
    plan_columns,
    read_frames,
    select_frames,
)
from tools.report import markdown_table, plot_metrics, write_json, write_per_frame_csv

BASELINE = "source unchanged"


def parse_generated(specs: list[str]) -> dict[str, Path]:
    """`NAME=PATH` pairs in order; names must be distinct."""
    generated: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--generated {spec!r}: expected NAME=PATH")
        if name in generated or name == BASELINE:
            raise InputError(f"--generated: the name {name!r} is used twice")
        generated[name] = Path(path)
    return generated


def parse_panels(specs: list[str], names: list[str]) -> dict[str, tuple[int, int, int, int]]:
    """`NAME=SPEC` pairs of --panel; NAME must be a --generated name, 'reference' or 'driving'."""
    panels = {}
    for spec in specs:
        name, sep, panel = spec.partition("=")
        if not sep or name not in [*names, "reference", "driving"]:
            raise InputError(
                f"--panel {spec!r}: expected NAME=SPEC with NAME one of {', '.join(names)}, reference, driving"
            )
        panels[name] = parse_panel(panel)
    return panels


def load_set(path: Path, label: str, selection: set[int] | None, panel) -> dict:
    """The selected frames of a folder or video, cropped to `panel` when given."""
    frames = select_frames(read_frames(path), selection, label)
    return crop_panel(frames, panel) if panel else frames


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__.split("\n\n")[0])
    parser.add_argument("--generated", action="append", required=True, metavar="NAME=PATH", help="frames or video")
    parser.add_argument("--reference", type=Path, help="ground-truth frames or video")
    parser.add_argument("--source", type=Path, help="source image: adds the 'source unchanged' baseline row")
    parser.add_argument("--identity", type=Path, help="image whose identity the frames keep (default: --source)")
    parser.add_argument("--driving", type=Path, help="driving frames or video: AKD, pose and expression to the driver")
    parser.add_argument(
        "--panel",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="score one panel of side-by-side outputs: NAME a --generated name, 'reference' or 'driving'; "
        "SPEC 3/5 (fourth of five panels) or 1,1/2,4 (row 1, column 1 of a 2x4 grid)",
    )
    parser.add_argument("--frames", help="frames to score by number, e.g. 40-47 or 40,41")
    parser.add_argument("--size", type=int, help="score at N x N (default: each method's own frame size)")
    parser.add_argument("--metrics", help=f"comma-separated subset of {','.join(METRICS)} (default: all that can run)")
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Every input path and value, before any frame is read."""
    for flag in ("source", "identity"):
        path = getattr(args, flag)
        if path is not None and not path.is_file():
            raise InputError(f"--{flag} {path}: image file not found")
    if args.size is not None and args.size < 16:
        raise InputError(f"--size must be at least 16 pixels, got {args.size}")
    if args.reference is None and args.driving is None and args.source is None and args.identity is None:
        raise InputError("nothing to compare with: give --reference, --driving or --source/--identity")


def evaluate(args: argparse.Namespace) -> list[Result]:
    """Score every generated set (and the baseline) and write the four report files."""
    check_args(args)
    generated = parse_generated(args.generated)
    requested = parse_metrics(args.metrics)
    selection = parse_selection(args.frames) if args.frames else None
    panels = parse_panels(args.panel, list(generated))
    load = lambda path, name, label: load_set(path, label, selection, panels.get(name))
    identity = args.identity or args.source
    weights = Weights.find()
    given = (args.reference is not None, args.driving is not None, identity is not None)
    columns, notes = plan_columns(requested, *given, weights)
    evaluation = Evaluation(
        columns,
        load(args.reference, "reference", "--reference") if args.reference else None,
        load(args.driving, "driving", "--driving") if args.driving else None,
        identity,
        load_lpips(weights) if "lpips" in columns else None,
        load_fid(weights) if "fid" in columns else None,
    )
    sets = {name: load(path, name, f"--generated {name}") for name, path in generated.items()}
    results, baselines = [], {}
    for name, frames in sets.items():
        size = (args.size, args.size) if args.size else frame_size(frames)
        results.append(evaluation.score(name, list(frames), list(frames.values()), size))
        baselines.setdefault(size, list(frames))
    if args.source is not None:
        for size, names in baselines.items():
            label = BASELINE if len(baselines) == 1 else f"{BASELINE} {size[0]}x{size[1]}"
            frames = [read_image(args.source, size)] * len(names)
            results.append(evaluation.score(label, names, frames, size, set_level=False))
    write_report(args.out, results, columns, notes)
    return results


def write_report(out: Path, results: list[Result], columns: list[str], notes: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_per_frame_csv(out / "per_frame.csv", results, columns)
    write_json(out / "summary.json", {"methods": {r.method: r.summary() for r in results}, "notes": notes})
    table = markdown_table(results, columns)
    (out / "metrics.md").write_text(table + "".join(f"\n{note}" for note in notes) + ("\n" if notes else ""))
    plot_metrics(out / "metrics.png", [("", results, columns)])
    print(table + "".join(f"{note}\n" for note in notes), end="")


@cli_main
def main(argv: list[str] | None = None) -> int:
    evaluate(build_parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    main()
