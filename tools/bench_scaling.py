"""How time and peak memory grow with the work: `python -m tools.bench_scaling [--quick] [--out bench_output]`.

Five series, at the official network widths with random weights (`SERIES`):

- frames per video: FSTH inference as `fsth.infer` runs it (E on one source frame once, then G on
  the driving landmark images one per call, its CPU default) for 1, 8 and 16 frames at 256 px: a fixed cost plus
  a cost per frame;
- source images: FSRT (`vox256` sizes) keypoints + encoder on S = 1, 2, 4 sources, then the
  decoder on 4096 query pixels scaled to a 256 x 256 frame (its attention reads all S sources' tokens);
- K: LSR's default two_step_syn model at 224 px, the K-shot latents (once per video) and the
  traced forward per driving frame for K = 1, 4, 8 (TensorFlow, in processes without torch);
- resolution: FSTH's G per frame (batch 1; with E's embedding, as above) and FSRT's decoder per
  frame (4096 pixels timed, scaled to the frame; one source at the same size) at 128 and 256 px.

Each point runs in its own process (this module with `--point`), so that its peak resident
memory (`ru_maxrss`) is its own: one warm-up call, then the best of up to two timed calls (the
second only while the first was short). Landmark drawing, file reading and writing are not timed.
A failed or timed-out point is a row with its one-line error. Writes OUT/scaling.md (a table per
series with a least-squares line), OUT/scaling.json and OUT/scaling.png (one panel per series:
seconds and peak MB against the varied quantity); each point's output is in OUT/raw/scaling/.
About 3 minutes on two cores (2.5 measured at a load average of 2-3), `--quick` (fewer points,
fewer pixels, FSTH's resolution series on one frame) under 2; several times longer while other
processes compete for the cores, which also slows the points unevenly (see each point's load).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common.errors import InputError, cli_main
from tools.bench import processor_name, run_logged


def best_seconds(call: Callable[[], object], repeats: int = 2, within: float = 8.0) -> float:
    """Fastest of up to `repeats` timed calls of `call` (warmed up by the caller), at least one; no
    further call once `within` seconds have been spent, so that a long call is timed once."""
    times = []
    while not times or (len(times) < repeats and sum(times) < within):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def finite_note(finite: bool) -> dict:
    """{"note"} when a point's output held NaN or infinity: kernels can run at another speed on them."""
    return {} if finite else {"note": "output not finite: its time may not be representative"}


def fsth_video(frames: int, size: int = 256, batch: int = 1, config: str | None = None) -> dict:
    """Seconds of FSTH inference on a `frames`-frame video: E on one source frame and landmark
    image, then G on the driving landmark images `batch` at a time (fsth.infer's CPU default: 1)."""
    import torch

    from fsth.config import load_config
    from fsth.network import Embedder, Generator

    cfg = load_config(config)
    torch.manual_seed(0)
    dim = cfg["embedding_dim"]
    generator, embedder = Generator(cfg["G_config"], dim), Embedder(cfg["E_config"], dim)
    source, source_landmarks = torch.rand(2, 1, 3, size, size)
    landmarks = torch.rand(frames, 3, size, size)
    with torch.no_grad():
        # one train-mode pass runs the spectral norms' power iteration, as training does: without it
        # random E outputs embeddings near 1e20 and G's frames are NaN, not a representative workload
        generator(landmarks[:1], torch.randn(1, dim))
        embedder(source, source_landmarks)
    generator.eval()
    embedder.eval()

    def embed() -> torch.Tensor:
        return embedder(source, source_landmarks).mean(dim=0, keepdim=True)

    def video() -> list[torch.Tensor]:
        e = embed()
        return [generator(chunk, e.expand(len(chunk), -1)) for chunk in landmarks.split(batch)]

    with torch.no_grad():
        e = embed()
        shapes = {min(batch, frames), frames % batch} - {0}  # each batch shape the video has
        finite = all(bool(generator(landmarks[:n], e.expand(n, -1)).isfinite().all()) for n in shapes)
        embed_seconds = best_seconds(embed)
        total = best_seconds(video)
    return {
        "seconds": total,
        "per_frame": total / frames,
        "embed": embed_seconds,
        "generate_per_frame": (total - embed_seconds) / frames,
        **finite_note(finite),
    }


def fsrt_frame(
    sources: int = 1,
    size: int = 256,
    num_pixels: int = 4096,
    config: str = "vox256",
    width_scale: float = 1.0,
    chunk: int = 8192,
) -> dict:
    """Seconds of FSRT on `sources` source frames: keypoints + expression and the encoder (once
    per video), and the decoder per `size` x `size` frame: the keys and values of z projected once
    plus the per-pixel work, timed on `num_pixels` query pixels in chunks of `chunk` (the demo's
    --max_num_pixels) and scaled to the frame (it is linear in the pixels)."""
    import torch

    from fsrt.config import load_config
    from fsrt.model import FSRT, KPDetector

    cfg = load_config(config)
    torch.manual_seed(0)
    model = FSRT(**{**cfg["model"], "width_scale": width_scale}).eval()
    detector = KPDetector().eval()
    images, driving = torch.rand(sources, 3, size, size), torch.rand(1, 3, size, size)
    code = model.pixel_code(size, size)[:num_pixels]

    def encode() -> torch.Tensor:
        keypoints, expressions = model.keypoints_and_expression(detector, images)
        return model.encode(images[None], keypoints[None], expressions[None])

    with torch.inference_mode():
        driving_keypoints, driving_expression = model.keypoints_and_expression(detector, driving)
        z = encode()

        def decode() -> torch.Tensor:
            return model.decoder.render(z, code, driving_keypoints, driving_expression, chunk)

        finite = bool(decode().isfinite().all())
        encode_seconds = best_seconds(encode)
        project_seconds = best_seconds(lambda: model.decoder.allocation_transformer.transformer.project_kv(z))
        pixel_seconds = max(best_seconds(decode) - project_seconds, 0.0)
        decode_seconds = project_seconds + pixel_seconds * size * size / len(code)
    times = {"seconds": encode_seconds + decode_seconds, "encode": encode_seconds, "decode_per_frame": decode_seconds}
    return {**times, **finite_note(finite)}


def lsr_k_shot(k: int, size: int = 224, overrides: dict | None = None) -> dict:
    """Seconds of LSR inference with `k` few-shot frames: the latents (eager, once per video, as
    lsr.run.infer computes them) and the traced forward per driving frame (TensorFlow)."""
    import numpy as np
    import tensorflow as tf

    from lsr import engine, options
    from lsr.data import frames as F
    from lsr.models import create_model

    config = options.default_config(train_resolution=size, K=k, **(overrides or {}))
    model = create_model(config)
    if hasattr(model, "init_extra_train_and_eval_networks"):
        model.init_extra_train_and_eval_networks()
    rng = np.random.default_rng(0)

    def images(*shape: int) -> tf.Tensor:
        return tf.constant(rng.uniform(-1, 1, shape).astype(np.float32))

    batch = {
        F.FRAMES_KEY: images(1, k, size, size, 3),
        F.CONTOURS_KEY: images(1, k, size, size, 3),
        F.TARGET_CONTOUR_KEY: images(1, size, size, 3),
    }
    shots = engine.encoder_inputs(config, batch)

    def latents() -> tuple:
        return tuple(z if z is None else z.numpy() for z in model.compute_latents(shots, training=False))

    engine.forward(model, batch, training=False)  # builds every network
    fixed = tuple(z if z is None else tf.constant(z) for z in latents())
    run = tf.function(lambda b: engine.public_outputs(engine.forward(model, b, training=False, latents=fixed)))

    def frame() -> np.ndarray:
        return run(batch)["output"].numpy()

    finite = bool(np.isfinite(frame()).all())  # traces
    latent_seconds, frame_seconds = best_seconds(latents), best_seconds(frame)
    times = {"seconds": latent_seconds + frame_seconds, "latents": latent_seconds, "per_frame": frame_seconds}
    return {**times, **finite_note(finite)}


POINTS = {"fsth_video": fsth_video, "fsrt_frame": fsrt_frame, "lsr_k_shot": lsr_k_shot}


@dataclasses.dataclass(frozen=True)
class Series:
    """A varied quantity: `point(**{argument: value}, **params)` for each of `values` (`quick_values`
    and `quick_params` with --quick). `columns` are (key, header) of the point's seconds, the first
    one the total whose least-squares line against value**`power` is reported."""

    title: str
    quantity: str
    point: str
    argument: str
    values: tuple[int, ...]
    quick_values: tuple[int, ...]
    columns: tuple[tuple[str, str], ...]
    params: dict = dataclasses.field(default_factory=dict)
    quick_params: dict = dataclasses.field(default_factory=dict)
    power: int = 1

    def runs(self, quick: bool) -> tuple[tuple[int, ...], dict]:
        return (self.quick_values, {**self.params, **self.quick_params}) if quick else (self.values, self.params)


SERIES = {
    "frames": Series(
        "frames per video: FSTH inference at 256 px (E on 1 source, G one frame per call)",
        "frames",
        "fsth_video",
        "frames",
        (1, 8, 16),
        (1, 8),
        (("seconds", "total s"), ("per_frame", "s / frame"), ("embed", "E s"), ("generate_per_frame", "G s / frame")),
    ),
    "sources": Series(
        "source images: FSRT vox256, 256 px (encoder once, decoder per frame)",
        "sources",
        "fsrt_frame",
        "sources",
        (1, 2, 4),
        (1, 2),
        (("seconds", "encode + 1 frame s"), ("encode", "encode s"), ("decode_per_frame", "decoder s / frame")),
        quick_params={"num_pixels": 1024},
    ),
    "k": Series(
        "K few-shot frames: LSR two_step_syn, 224 px (latents once, forward per frame)",
        "K",
        "lsr_k_shot",
        "k",
        (1, 4, 8),
        (1, 4),
        (("seconds", "latents + 1 frame s"), ("latents", "latents s"), ("per_frame", "s / frame")),
    ),
    "fsth_resolution": Series(
        "resolution: FSTH G per frame (8 frames, one per call; --quick: 1 frame)",
        "px",
        "fsth_video",
        "size",
        (128, 256),
        (128, 256),
        (("generate_per_frame", "G s / frame"), ("embed", "E s")),
        params={"frames": 8},
        quick_params={"frames": 1},
        power=2,
    ),
    "fsrt_resolution": Series(
        "resolution: FSRT decoder per frame (1 source at the same size)",
        "px",
        "fsrt_frame",
        "size",
        (128, 256),
        (128, 256),
        (("decode_per_frame", "decoder s / frame"), ("encode", "encode s")),
        quick_params={"num_pixels": 1024},
        power=2,
    ),
}


def peak_mb() -> float:
    """This process's peak resident memory so far, MiB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_point(series: Series, value: int, quick: bool, folder: Path, env: dict, timeout: float) -> dict:
    """One point in its own process: {"value", the point's seconds, "peak_mb", "wall_seconds"} or
    {"value", "error"} (a one-line reason). Its output goes to FOLDER/<point>-<argument><value>.log."""
    _, params = series.runs(quick)
    stem = f"{series.point}-{series.argument}{value}"
    result, log_path = folder / f"{stem}.json", folder / f"{stem}.log"
    result.unlink(missing_ok=True)
    spec = json.dumps({"point": series.point, "kwargs": {**params, series.argument: value}})
    command = [sys.executable, "-m", "tools.bench_scaling", "--point", spec, "--result", str(result)]
    start = time.perf_counter()
    error = run_logged(command, log_path, env, timeout)
    wall = time.perf_counter() - start
    if error is None:
        try:
            return {"value": value, **json.loads(result.read_text()), "wall_seconds": wall}
        except (OSError, ValueError) as exc:
            error = f"no result: {' '.join(str(exc).split())}"
    return {"value": value, "error": error, "wall_seconds": wall}


def linear_fit(series: Series, points: list[dict]) -> tuple[float, float] | None:
    """(a, b) of the least-squares line total = a + b * value**power, None with under two values."""
    import numpy as np

    key = series.columns[0][0]
    done = [(point["value"] ** series.power, point[key]) for point in points if "error" not in point]
    if len({x for x, _ in done}) < 2:
        return None
    slope, intercept = np.polyfit(*zip(*done), 1)
    return float(intercept), float(slope)


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def markdown(results: dict, machine: dict) -> str:
    """scaling.md: the machine, then per series a table of its points and its fitted line."""
    lines = [
        "# Scaling",
        "",
        f"{machine['date']}, {machine['processor']}, {machine['threads']} threads, "
        f"{'--quick' if machine['quick'] else 'full run'}, {machine['seconds']:.0f} s; load average "
        f"{machine['load_before']:.1f} before, {machine['load_after']:.1f} after.",
        "Random weights at the official widths; each point in its own process (peak MB: its resident "
        "peak, weights included; load: the 1-minute load average as it ended), best of up to 2 timed calls "
        "after a warm-up. Plot: scaling.png.",
    ]
    for name, record in results.items():
        series = SERIES[name]
        headers = [series.quantity, *(header for _, header in series.columns), "peak MB", "load", "notes"]
        lines += ["", f"## {series.title}", "", "| " + " | ".join(headers) + " |"]
        lines.append("|" + "---:|" * (len(headers) - 1) + "---|")
        for point in record["points"]:
            times = [_cell(point.get(key)) for key, _ in series.columns]
            note = point.get("error", point.get("note", "")).replace("|", "\\|")
            memory, load = _cell(point.get("peak_mb")), _cell(point.get("load"))
            lines.append(f"| {point['value']} | " + " | ".join([*times, memory, load, note]) + " |")
        if record["fit"]:
            intercept, slope = record["fit"]
            x = series.quantity + (f"^{series.power}" if series.power > 1 else "")
            lines += ["", f"Least-squares line: {series.columns[0][1]} = {intercept:.3g} + {slope:.3g} x {x}."]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> Path:
    """scaling.png: a panel per series, its seconds (solid) and peak MB (dashed, right axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 2 if len(results) > 1 else 1
    rows = -(-len(results) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(7 * columns, 3.6 * rows), squeeze=False)
    for axis in axes.flat[len(results) :]:
        axis.set_visible(False)
    for axis, (name, record) in zip(axes.flat, results.items()):
        series, done = SERIES[name], [point for point in record["points"] if "error" not in point]
        values = [point["value"] for point in done]
        for key, header in series.columns:
            axis.plot(values, [point[key] for point in done], "o-", label=header)
        # both axes from 0: growth reads as a ratio, and a few MB of noise as flat
        ticks = [point["value"] for point in record["points"]]
        axis.set(xlabel=series.quantity, ylabel="seconds", xticks=ticks, ylim=(0, None))
        axis.set_title(series.title, fontsize=8)
        memory = axis.twinx()
        memory.plot(values, [point["peak_mb"] for point in done], "s--", color="grey", label="peak MB")
        memory.set(ylabel="peak MB", ylim=(0, None))
        handles = axis.get_legend_handles_labels()[0] + memory.get_legend_handles_labels()[0]
        axis.legend(handles=handles, fontsize=7, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_report(out: Path, results: dict, machine: dict) -> list[Path]:
    """OUT/scaling.md, OUT/scaling.json and OUT/scaling.png of `results` ({series name: {"points"}});
    adds each series' "fit"."""
    for name, record in results.items():
        record["fit"] = linear_fit(SERIES[name], record["points"])
    paths = [out / "scaling.md", out / "scaling.json", out / "scaling.png"]
    paths[0].write_text(markdown(results, machine))
    paths[1].write_text(json.dumps({"machine": machine, "series": results}, indent=1) + "\n")
    plot(results, paths[2])
    return paths


def run_point(spec: str, result: Path) -> int:
    """The `--point` mode: run one point in this process and write its seconds and peak MB."""
    try:
        request = json.loads(spec)
        point, kwargs = POINTS[request["point"]], request["kwargs"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"--point {spec!r}: not a point of {', '.join(POINTS)} with its kwargs ({exc})") from None
    measured = point(**kwargs)
    # the machine's 1-minute load average as the point ends: on a shared machine it tells which
    # points ran beside other work (threads waiting for busy cores can slow a point several-fold)
    result.write_text(json.dumps({**measured, "peak_mb": peak_mb(), "load": os.getloadavg()[0]}) + "\n")
    return 0


def log(message: str) -> None:
    print(f"tools.bench_scaling: {message}", file=sys.stderr, flush=True)


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer points and pixels: under 2 minutes")
    parser.add_argument("--out", default="bench_output", help="folder for scaling.md, .json, .png and raw/scaling/")
    parser.add_argument("--only", help=f"comma-separated series to run (of {', '.join(SERIES)})")
    parser.add_argument("--timeout", type=float, default=600, help="seconds after which a point is stopped")
    parser.add_argument("--point", help="(internal) run one point, given as JSON, in this process")
    parser.add_argument("--result", type=Path, help="(internal) where --point writes its result")
    args = parser.parse_args(argv)
    if args.point is not None:
        if args.result is None:
            raise InputError("--point needs --result")
        return args
    names = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else list(SERIES)
    unknown = [name for name in names if name not in SERIES]
    if unknown or not names:
        raise InputError(
            f"--only {args.only!r}: unknown series {unknown[0] if unknown else '(none)'!r}; "
            f"choose from {', '.join(SERIES)}"
        )
    args.names = list(dict.fromkeys(names))
    if args.timeout <= 0:
        raise InputError(f"--timeout must be positive, got {args.timeout}")
    args.out = Path(args.out)
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out {args.out}: exists and is not a folder")
    return args


@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.point is not None:
        return run_point(args.point, args.result)
    folder = args.out / "raw" / "scaling"
    folder.mkdir(parents=True, exist_ok=True)
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    results = {}
    for name in args.names:
        series = SERIES[name]
        results[name] = {"title": series.title, "quantity": series.quantity, "points": []}
        for value in series.runs(args.quick)[0]:
            point = measure_point(series, value, args.quick, folder, dict(os.environ), args.timeout)
            results[name]["points"].append(point)
            outcome = point.get("error") or f"{point[series.columns[0][0]]:.3g} s, {point['peak_mb']:.0f} MB"
            log(f"{name} {series.quantity}={value}: {outcome} ({point['wall_seconds']:.0f} s)")
    machine = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "processor": processor_name(),
        "threads": os.environ.get("OMP_NUM_THREADS", f"{os.cpu_count()} (default)"),
        "quick": args.quick,
        "seconds": time.perf_counter() - start,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }
    paths = write_report(args.out, results, machine)
    log(f"wrote {', '.join(str(path) for path in paths)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
