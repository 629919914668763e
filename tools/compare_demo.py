"""Compare every method's `make demo` output on the shared sample, in one report.

`python -m tools.compare_demo --demo demo_output [--sample demo_output/sample] --out demo_output/compare`

Reads each DEMO/<method>/run.json (written by common.sample_demo.write_run_info). Self-reenactment
is scored on the held-out frames only (never trained on by the demo models) against the ground
truth; cross-identity on all frames, by identity to the part's identity image and motion to its
driver. Baseline rows return the source image unchanged. Writes metrics.md, metrics.json,
metrics.png, contact_sheet.png, self.mp4, cross.mp4 and README.txt under --out.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import InputError, cli_main
from common.image import read_image
from common.sample import held_out_frames, sample_fps, training_count
from tools.evaluation import (
    Evaluation,
    FaceCache,
    Result,
    Weights,
    fit,
    frame_size,
    load_lpips,
    plan_columns,
    read_frames,
)
from tools.report import markdown_table, plot_metrics, rank, write_json

METHODS = ("fsth", "fsrt", "lsr", "vpgc", "vfa")  # the packages with a `make demo` step
NOT_METHODS = {"sample", "compare", "preview"}  # other folders `make demo` writes
SELF_METRICS = ("l1", "psnr", "ssim", "ms_ssim", "lpips", "akd", "aed", "csim")
CROSS_METRICS = ("akd", "pose", "expression", "aed", "csim")
INFO_COLUMNS = (
    ("seconds_per_frame", "s/frame"),
    ("peak_memory_mb", "peak MB"),
    ("model", "model"),
    ("checkpoint", "checkpoint"),
)
TILE = 128
HEADER = 18
MODEL_WORDS = {
    "official": "the official checkpoint",
    "demo model": "a DEMO MODEL trained on the sample's training frames by `make demo-models`",
    "quick fit": "a QUICK FIT on the sample (a pipeline check, not a trained model)",
}


@dataclass
class Part:
    """One part (self or cross) of a method's run: its frames and inputs, paths resolved."""

    frames: dict[str, np.ndarray]
    source: Path
    driving: Path
    identity: Path

    @property
    def size(self) -> tuple[int, int]:
        return frame_size(self.frames)


@dataclass
class Run:
    method: str
    info: dict
    parts: dict[str, Part]


def resolve(value: str, run_folder: Path, sample: Path) -> Path:
    """A path written in run.json: as written (absolute, or relative to where `make demo` ran),
    relative to the run folder, else the file or folder of that name in --sample."""
    path = Path(value)
    for candidate in (path, run_folder / path, sample / path.name):
        if candidate.exists():
            return candidate
    raise InputError(f"{run_folder / 'run.json'}: {value} not found (nor {sample / path.name})")


def load_run(folder: Path, sample: Path) -> Run:
    """A method's run.json with its self and cross parts' frames read and input paths resolved."""
    try:
        info = json.loads((folder / "run.json").read_text())
        parts = info["parts"]
        loaded = {
            name: Part(
                read_frames(folder / part["frames"]),
                resolve(part["source"], folder, sample),
                resolve(part["driving"], folder, sample),
                resolve(part["identity"], folder, sample),
            )
            for name, part in parts.items()
            if name in ("self", "cross")
        }
    except InputError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{folder / 'run.json'}: not a run.json of write_run_info ({exc})") from None
    return Run(info.get("method", folder.name), info, loaded)


def find_runs(demo: Path, sample: Path) -> tuple[list[Run], list[str]]:
    """The runs of DEMO/<method>/run.json, and one line per method missing or unreadable."""
    if not demo.is_dir():
        raise InputError(f"{demo}: not a folder (run make demo first)")
    skip = lambda p: p.name in NOT_METHODS or p.resolve() == sample.resolve()
    folders = sorted(p for p in demo.iterdir() if p.is_dir() and not skip(p))
    names = list(METHODS) + [p.name for p in folders if p.name not in METHODS]
    runs, missing = [], []
    for name in names:
        folder = demo / name
        if not (folder / "run.json").is_file():
            missing.append(f"{name}: no run.json")
            continue
        try:
            runs.append(load_run(folder, sample))
        except InputError as exc:
            missing.append(f"{name}: {exc}")
    if not runs:
        raise InputError(f"{demo}: no method folder holds a run.json (run make demo first)")
    return runs, missing


def run_info(run: Run) -> dict:
    """The table's info columns; checkpoint paths shortened to file names (README.txt has them whole)."""
    info = {key: run.info.get(key, "–") for key, _ in INFO_COLUMNS}
    info["checkpoint"] = ", ".join(Path(part.strip()).name for part in str(info["checkpoint"]).split(","))
    return info


def score_part(
    runs: list[Run], part: str, pick, columns: list[str], truth: dict | None, lpips, problems: list[str]
) -> list[Result]:
    """Each run's `part` frames named by `pick(part)`, then one 'source unchanged' row per distinct
    (size, source, driver, identity). A run that cannot be scored is added to `problems`."""
    results, baselines, cache = [], {}, FaceCache()
    for run in runs:
        inputs = run.parts.get(part)
        if inputs is None:
            problems.append(f"{run.method}: no {part} part in its run.json (scored in the other table only)")
            continue
        try:
            names = pick(inputs)
            driving = read_frames(inputs.driving) if part == "cross" else None
            labels = ("ground truth", str(inputs.driving))
            evaluation = Evaluation(columns, truth, driving, inputs.identity, lpips, labels=labels, cache=cache)
            frames = [inputs.frames[name] for name in names]
            results.append(evaluation.score(run.method, names, frames, inputs.size, run_info(run)))
        except InputError as exc:
            problems.append(f"{run.method} {part}: {exc}")
            continue
        baselines.setdefault((inputs.size, inputs.source, inputs.driving, inputs.identity), (names, evaluation))
    sources = {key[1] for key in baselines}
    for (size, source, _, _), (names, evaluation) in baselines.items():
        label = f"source unchanged {size[0]}px" + (f" ({source.name})" if len(sources) > 1 else "")
        frames = [read_image(source, size)] * len(names)
        results.append(evaluation.score(label, names, frames, size, {"model": "baseline"}, set_level=False))
    return results


def held_out_names(sample: Path):
    """Frame picker for self-reenactment: the held-out frames, all of which a run must have."""
    held = [frame.image.stem for frame in held_out_frames(sample)]

    def pick(part: Part) -> list[str]:
        absent = [name for name in held if name not in part.frames]
        if absent:
            raise InputError(f"self-reenactment frames lack the held-out frame {absent[0]}")
        return held

    return pick


def compare(demo: Path, sample: Path, out: Path) -> dict:
    """Score every run and write the report; returns what metrics.json holds."""
    runs, missing = find_runs(demo, sample)
    weights = Weights.find()
    self_columns, notes = plan_columns(None, True, False, True, weights, SELF_METRICS)
    cross_columns, _ = plan_columns(None, False, True, True, weights, CROSS_METRICS)
    lpips = load_lpips(weights) if "lpips" in self_columns else None
    truth = read_frames(sample / "driving")
    notes.append(f"FID is not reported: a Fréchet distance needs thousands of frames, the sample has {len(truth)}")
    self_results = score_part(runs, "self", held_out_names(sample), self_columns, truth, lpips, missing)
    cross_results = score_part(runs, "cross", lambda part: list(part.frames), cross_columns, None, None, missing)

    out.mkdir(parents=True, exist_ok=True)
    report = {
        "held_out_frames": [frame.image.stem for frame in held_out_frames(sample)],
        "self": _section(self_results, self_columns),
        "cross": _section(cross_results, cross_columns),
        "missing": missing,
        "notes": notes,
    }
    write_json(out / "metrics.json", report)
    (out / "metrics.md").write_text(
        markdown_report(report, self_results, self_columns, cross_results, cross_columns, runs)
    )
    plot_metrics(
        out / "metrics.png",
        [("self, held out", self_results, self_columns), ("cross", cross_results, cross_columns)],
    )
    if _common_inputs(runs, "self") is not None:
        contact_sheet(out / "contact_sheet.png", runs, sample, truth)
    for part in ("self", "cross"):
        if _common_inputs(runs, part) is not None:
            side_by_side_video(out / f"{part}.mp4", runs, part, sample_fps(sample))
    (out / "README.txt").write_text(readme(runs, missing, demo))
    return report


def _section(results: list[Result], columns: list[str]) -> dict:
    """A table's scores for metrics.json: per method the summary and per-frame scores, and the
    methods from best to worst on each metric."""
    return {
        "columns": columns,
        "methods": {r.method: {**r.summary(), "per_frame": dict(zip(r.frames, r.rows))} for r in results},
        "ranking": {column: rank(results, column) for column in columns},
    }


def markdown_report(report, self_results, self_columns, cross_results, cross_columns, runs) -> str:
    held = report["held_out_frames"]
    lines = [
        "# Methods on the demo sample",
        "",
        f"## Self-reenactment on the held-out frames {held[0]}-{held[-1]} (never trained on)",
        "",
        "Ground truth: the sample's driving frames at each method's output size; identity: the source image.",
        "",
        markdown_table(self_results, self_columns, INFO_COLUMNS),
        "## Cross-identity (all frames)",
        "",
        "No ground truth exists: identity to the part's identity image, motion to its driving frames.",
        "",
        markdown_table(cross_results, cross_columns, INFO_COLUMNS),
    ]
    for run in runs:
        cross = run.parts.get("cross")
        if cross is not None:
            lines.append(f"- {run.method} cross: {cross.source.name} driven by {cross.driving.name}/")
    lines += [""] + [f"Not scored: {line}" for line in report["missing"]] + report["notes"]
    return "\n".join(lines) + "\n"


def readme(runs: list[Run], missing: list[str], demo: Path) -> str:
    lines = [f"Comparison of the `make demo` outputs under {demo}; which model produced each row:"]
    for run in runs:
        kind = run.info.get("model", "?")
        lines.append(f"- {run.method}: {MODEL_WORDS.get(kind, kind)} ({run.info.get('checkpoint', '?')})")
    lines.append("- source unchanged: baseline, the source image returned for every frame")
    lines += [f"- not scored: {line}" for line in missing]
    lines.append("Quick-fit rows say nothing about a method's quality; official rows are comparable to the papers")
    lines.append("only in kind (one sample, dlib landmarks and descriptors, see docs/evaluation.md).")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ pictures
def _tile(image: np.ndarray | None) -> np.ndarray:
    """A frame at TILE x TILE; grey where a method has no such frame."""
    return np.full((TILE, TILE, 3), 128, np.uint8) if image is None else fit(image, (TILE, TILE))


def _font(size: int = 11):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _header(labels: list[str]) -> np.ndarray:
    """A white strip with one centred label per tile column."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (TILE * len(labels), HEADER), "white")
    draw = ImageDraw.Draw(strip)
    for column, label in enumerate(labels):
        draw.text((TILE * column + TILE // 2, HEADER // 2), label, fill="black", font=_font(), anchor="mm")
    return np.asarray(strip)


def _caption(tile: np.ndarray, text: str) -> np.ndarray:
    """`text` written on the tile's top-left corner, white on a dark outline."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(tile)
    ImageDraw.Draw(image).text((3, 2), text, fill="white", font=_font(10), stroke_width=1, stroke_fill="black")
    return np.asarray(image)


def _common_inputs(runs: list[Run], part: str) -> Part | None:
    """The part of the first run that has it: its source and driver head the picture's columns."""
    return next((run.parts[part] for run in runs if part in run.parts), None)


def _block(runs: list[Run], part: str, names: list[str], captions: list[str], driving: dict) -> list[np.ndarray]:
    """Header plus one row per frame name: source | driving | each method's frame. The source and
    driver are the first run's (`driving`: its frames); a method whose own differ is starred."""
    inputs = _common_inputs(runs, part)
    labels = ["source", "driving"]
    for run in runs:
        own = run.parts.get(part)
        starred = own is not None and (own.source, own.driving) != (inputs.source, inputs.driving)
        labels.append(run.method + ("*" if starred else ""))
    rows, source = [_header(labels)], _tile(read_image(inputs.source))
    for name, caption in zip(names, captions):
        tiles = [source, _caption(_tile(driving.get(name)), caption)]
        tiles += [_tile(run.parts[part].frames.get(name) if part in run.parts else None) for run in runs]
        rows.append(np.concatenate(tiles, axis=1))
    return rows


def contact_sheet(path: Path, runs: list[Run], sample: Path, truth: dict[str, np.ndarray]) -> Path:
    """Rows of self-reenactment (two training, two held-out frames) then cross-identity frames;
    columns source | driving | each method, TILE pixels each."""
    from common.image import write_image

    names = list(truth)
    train = training_count(len(names))
    picks = sorted({0, train // 2, train, len(names) - 1})
    captions = [f"self {names[i]}{' held out' if i >= train else ''}" for i in picks]
    rows = _block(runs, "self", [names[i] for i in picks], captions, truth)
    cross = _common_inputs(runs, "cross")
    if cross is not None:
        picked = [names[0], names[len(names) // 2]]
        rows += _block(runs, "cross", picked, [f"cross {name}" for name in picked], read_frames(cross.driving))
    return write_image(path, np.concatenate(rows, axis=0))


def side_by_side_video(path: Path, runs: list[Run], part: str, fps: float) -> Path:
    """Every frame of `part` as source | driving | each method, labelled at the top."""
    from common.video import write_video

    driving = read_frames(_common_inputs(runs, part).driving)
    frames = (np.concatenate(_block(runs, part, [name], [name], driving), axis=0) for name in driving)
    return write_video(path, frames, fps=fps)


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, default=Path("demo_output"), help="the make demo output folder")
    parser.add_argument("--sample", type=Path, help="the sample (default: DEMO/sample)")
    parser.add_argument("--out", type=Path, help="report folder (default: DEMO/compare)")
    args = parser.parse_args(argv)
    out = args.out or args.demo / "compare"
    compare(args.demo, args.sample or args.demo / "sample", out)
    print(f"wrote {out / 'metrics.md'}")
    return 0


if __name__ == "__main__":
    main()
