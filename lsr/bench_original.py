"""`python -m lsr.bench --original DIR`: ours beside the original LSR code, same weights and inputs.

DIR is a checkout of MoustafaMeshry/lsr; nothing else in `lsr` imports it. The original runs on
TensorFlow 2.15 with the fact sheet's run-time shims, applied to the imported classes (DIR is only
read):
- `layers.Conv2DScaled.call` uses private Keras attributes that Keras 2.15 lacks: replaced by the
  same computation through the public `convolution_op`;
- `VGGLoss` asks Keras for the ImageNet VGG19 download: built with `weights=None` (random weights
  cost the same time; its loss is only reported at inference, never used);
- its modules read absl's global FLAGS, where `lsr.options` already defines the same names: they get
  a stand-in `options` module holding the original's own defaults (read from DIR/options.py) with
  the bench's overrides.

Both default two_step_syn models get the same weights (ours written to a checkpoint, read into the
original's networks with every value matched), then, alternating ours and the original's calls in
one process (best of `--iters` each, so contention affects both alike):
1. inference, K=1, PNG writing left out: ours = what `lsr.run.infer` does per driver frame (the
   tf.function forward with the K-shot latents computed once, then the io-tuple panel); the
   original = its `--run_mode=infer` per-frame step (`evaluate_distributed`: forward,
   discriminator, the default losses, metrics and the io-tuple summary) and, separately, its
   networks alone (`process` with the same latents). Its VGG-Face losses need 224x224 inputs, so
   below 224 they are off for that step.
2. one meta-training G+D step at `--batch_size`, K=4, perceptual (VGG / VGG-Face / identity) losses
   off on both sides as in `lsr.bench`: ours `engine.make_train_step`, the original's
   `train_distributed` under its MirroredStrategy.
The first call's outputs (images, and the losses of the training step) must agree to `PARITY` of
their largest magnitude. Peak resident memory is measured per side and stage in a fresh process
that builds and runs only that side (`python -m lsr.bench_original DIR --peak_of SIDE --stage STAGE`).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import gc
import json
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.bench import BenchRow
from common.errors import InputError, cli_main

# tests/numerics.FORWARD: whole networks computed two ways, as a fraction of the largest magnitude.
PARITY = 5e-5
# Top-level module names of the original; they must come from DIR.
ORIGINAL_MODULES = ("options", "layers", "networks", "utils", "models", "losses", "data")
REQUIRED_FILES = ("options.py", "layers.py", "networks.py", "models/two_step_synthesis_model.py")
VGG_FACE_RESOLUTION = 224  # VGG-Face's fc6 is a 7x7 convolution over pool5 of a 224x224 input
PERCEPTUAL_OFF = dict(w_loss_vgg=0, w_loss_vgg_face_recon=0, w_loss_identity=0)
SIDES = ("ours", "original")
FORWARD_PATH = "network forward"  # the original's networks alone, beside its whole infer step
STAGES = ("inference", "training")


def check_original(directory) -> Path:
    """DIR as a Path if it holds the original's model code, else one-line InputError."""
    path = Path(directory)
    if not path.is_dir():
        raise InputError(f"--original {directory}: no such folder (a checkout of MoustafaMeshry/lsr)")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise InputError(f"--original {directory}: not a checkout of MoustafaMeshry/lsr (no {', '.join(missing)})")
    return path.resolve()


def original_defaults(options_file: Path) -> dict:
    """{flag: default} of every `flags.DEFINE_*` call in the original's options.py (defaults are
    literals or constant expressions such as `1<<7`)."""
    values = {}
    for node in ast.walk(ast.parse(options_file.read_text(), str(options_file))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "").startswith("DEFINE_"):
            default = compile(ast.Expression(node.args[1]), str(options_file), "eval")
            values[ast.literal_eval(node.args[0])] = eval(default, {"__builtins__": {}})  # noqa: S307
    return values


def alternate(calls: dict[str, Callable[[], object]], repeats: int, clock=time.perf_counter):
    """(first results, seconds): each call once untimed (tracing, first allocations), keeping what
    it returned, then `repeats` rounds timing every call once in the given order, so that a change
    of load on the machine reaches every call alike. seconds[name] lists the timed calls."""
    first = {name: call() for name, call in calls.items()}
    seconds = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = clock()
            call()
            seconds[name].append(clock() - start)
    return first, seconds


def relative_difference(actual: dict, expected: dict) -> float:
    """Largest |actual - expected| over the shared keys, each as a fraction of max|expected|."""
    worst = 0.0
    for key in expected.keys() & actual.keys():
        a, e = np.asarray(actual[key], np.float64), np.asarray(expected[key], np.float64)
        scale = float(np.abs(e).max(initial=0.0)) or 1.0
        worst = max(worst, float(np.abs(a - e).max(initial=0.0)) / scale)
    return worst


@dataclasses.dataclass
class Comparison:
    """One stage: best seconds per call of ours and of one path of the original (`original_path`),
    and how far their first outputs differ."""

    stage: str
    original_path: str
    kind: str
    unit: str
    ours: float
    original: float
    difference: float | None = None
    compared: list[str] = dataclasses.field(default_factory=list)
    peak_mib: dict = dataclasses.field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Original time over ours: above 1, ours is faster."""
        return self.original / self.ours

    @property
    def agrees(self) -> bool:
        return self.difference is None or self.difference <= PARITY


class Original:
    """The original's model code imported from DIR, with the run-time shims applied."""

    def __init__(self, directory: Path):
        import tensorflow as tf

        self.defaults = original_defaults(directory / "options.py")
        self.flags = types.SimpleNamespace(**self.defaults)
        foreign = [
            name
            for name in ORIGINAL_MODULES
            if name in sys.modules and not str(getattr(sys.modules[name], "__file__", "")).startswith(str(directory))
        ]
        if foreign:
            raise RuntimeError(
                f"modules {foreign} are already imported from elsewhere; run the bench in its own process"
            )
        stand_in = types.ModuleType("options")
        stand_in.FLAGS = self.flags
        sys.modules["options"] = stand_in
        sys.path.insert(0, str(directory))
        import layers
        from models import two_step_synthesis_model

        def scaled_convolution(conv, inputs):
            outputs = conv.convolution_op(inputs, conv.kernel * conv.runtime_coeff)
            if conv.use_bias:
                outputs = tf.nn.bias_add(outputs, conv.bias)
            return outputs if conv.activation is None else conv.activation(outputs)

        layers.Conv2DScaled.call = scaled_convolution
        self.model_class = two_step_synthesis_model.TwoStepSynthesisModel
        self.strategy = tf.distribute.MirroredStrategy()  # what its main.py runs every mode under

    def build(self, overrides: dict, batch: dict):
        """The original's TwoStepSynthesisModel at its defaults with `overrides`, discriminator and
        loss networks included, every variable created by one pass over `batch`."""
        import tensorflow as tf

        from lsr.data import frames as F

        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise ValueError(f"not flags of the original: {unknown}")
        vars(self.flags).update(self.defaults, **overrides)  # its networks read the module's FLAGS while building
        download_free = tf.keras.applications.VGG19
        tf.keras.applications.VGG19 = lambda *args, **kwargs: download_free(*args, **{**kwargs, "weights": None})
        try:
            with self.strategy.scope():
                model = self.model_class(types.SimpleNamespace(**vars(self.flags)))
                model.init_extra_train_and_eval_networks()
                tf.compat.v1.train.get_or_create_global_step()
                outputs = model.process(
                    encoder_inputs(model.config, batch), batch[F.TARGET_CONTOUR_KEY], training=False
                )
                model.get_networks()["discriminator"](outputs["output"], batch[F.TARGET_CONTOUR_KEY], training=False)
        finally:
            tf.keras.applications.VGG19 = download_free
        return model


def encoder_inputs(config, batch):
    """The K few-shot frames with their landmark drawings, [B, K, H, W, 6] at the default flags."""
    import tensorflow as tf

    from lsr.data import frames as F

    if config.concat_conditional_inputs_to_encoder:
        return tf.concat([batch[F.FRAMES_KEY], batch[F.CONTOURS_KEY]], axis=-1)
    return batch[F.FRAMES_KEY]


def make_inputs(batch_size: int, k: int, size: int, seed: int = 0) -> dict:
    """A provider batch: frames and landmark drawings in [-1, 1], uint8 label maps, example names."""
    import tensorflow as tf

    from lsr.data import frames as F

    rng = np.random.RandomState(seed)

    def images(*shape):
        return tf.constant(rng.uniform(-1, 1, shape).astype(np.float32))

    def labels(*shape):
        return tf.constant(rng.randint(0, 19, shape).astype(np.uint8))

    names = {
        key: tf.constant([b"bench"] * batch_size) for key in (F.PERSON_ID_KEY, F.VIDEO_ID_KEY, F.VIDEO_PART_ID_KEY)
    }
    return {
        F.FRAMES_KEY: images(batch_size, k, size, size, 3),
        F.CONTOURS_KEY: images(batch_size, k, size, size, 3),
        F.SEGMAPS_KEY: labels(batch_size, k, size, size),
        F.TARGET_FRAME_KEY: images(batch_size, size, size, 3),
        F.TARGET_CONTOUR_KEY: images(batch_size, size, size, 3),
        F.TARGET_SEGMAP_KEY: labels(batch_size, size, size),
        **names,
    }


def build_ours(overrides: dict):
    """Our two_step_syn model at the default flags with `overrides`, every network built."""
    from lsr import options
    from lsr.models import create_model

    model = create_model(options.default_config(**overrides))
    model.init_extra_train_and_eval_networks()
    model.build_networks()
    return model


def copy_weights(ours, original_model) -> None:
    """Ours' network variables into the original's, through one checkpoint whose every value must
    match a variable of the original (same object-graph keys and shapes) and vice versa."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as folder:
        prefix = tf.train.Checkpoint(**ours.get_networks()).write(f"{folder}/weights")
        tf.train.Checkpoint(**original_model.get_networks()).read(prefix).assert_consumed()


def inference_calls(original: Original | None, size: int, sides=SIDES) -> dict[str, Callable[[], dict]]:
    """Per-driver-frame calls at K=1, each returning its output image as NumPy: 'ours' (lsr.run.infer's
    per-frame work but the PNG), 'original' (its --run_mode=infer step, likewise) and 'original
    forward' (its networks alone)."""
    import tensorflow as tf

    from lsr import engine
    from lsr.data import frames as F

    overrides = dict(train_resolution=size, K=1, run_mode="infer")
    if size != VGG_FACE_RESOLUTION:
        overrides.update(w_loss_vgg_face_recon=0, w_loss_identity=0)
    batch = make_inputs(1, 1, size)
    few_shot = (F.FRAMES_KEY, F.CONTOURS_KEY, F.SEGMAPS_KEY)
    driver = {key: value for key, value in batch.items() if key not in few_shot}
    calls, ours = {}, None
    if "ours" in sides:
        ours = build_ours({key: overrides[key] for key in ("train_resolution", "K", "run_mode")})
        latents = ours.compute_latents(encoder_inputs(ours.config, batch), training=False)

        @tf.function
        def run(batch):
            return engine.public_outputs(engine.forward(ours, batch, training=False, latents=latents))

        def ours_frame():
            outputs = {key: value.numpy() for key, value in run(driver).items()}
            engine.io_tuples(driver, outputs["output"], outputs["segmap_label_map"])  # the panel it writes as PNG
            return outputs

        calls["ours"] = ours_frame
    if "original" in sides:
        model, strategy = original.build(overrides, batch), original.strategy
        if ours is not None:
            copy_weights(ours, model)
        z_style, z_layout = model.compute_latents(encoder_inputs(model.config, batch), num_few_shots=1, training=False)
        # What its infer data pipeline hands each step: the few-shot entries emptied, the latents attached.
        step_input = {**driver, **{key: tf.zeros([0]) for key in few_shot}, "z_style": z_style, "z_layout": z_layout}

        def infer_step():
            _, outputs, (_, images, _) = model.evaluate_distributed(strategy, step_input, 1)
            images["io_tuple"].numpy()  # the panel it writes as PNG
            return {"output": outputs["output"].numpy()}

        @tf.function
        def network(contours):
            def replica(x):
                return model.process(None, x, training=False, precomputed_latents=(z_style, z_layout))["output"]

            return strategy.run(replica, args=(contours,))

        calls["original"] = infer_step
        calls["original forward"] = lambda: {"output": network(driver[F.TARGET_CONTOUR_KEY]).numpy()}
    return calls


# (lr_warmstart_steps, decay_start_step, decay_end_step, decay_num_intervals), as lsr.bench's training.
SCHEDULE = (500, 10**6, 2 * 10**6, 100)


def training_calls(original: Original | None, size: int, batch_size: int, sides=SIDES) -> dict[str, Callable[[], dict]]:
    """One meta-training G+D step per call (K=4, perceptual losses off), returning its losses and
    output image: 'ours' (engine.make_train_step) and 'original' (its train_distributed)."""
    import tensorflow as tf

    from lsr import engine
    from lsr.losses import ModelLosses

    overrides = dict(train_resolution=size, K=4, batch_size=batch_size, run_mode="train", **PERCEPTUAL_OFF)
    batch = make_inputs(batch_size, 4, size)
    calls, ours = {}, None
    if "ours" in sides:
        ours = build_ours(overrides)
        ours.create_optimizers(tf.Variable(0, dtype=tf.int64), *SCHEDULE)
        losses = ModelLosses(ours.config)
        plan = engine.variables_to_train(ours, finetuning=False)
        step = engine.make_train_step(ours, losses, tf.distribute.get_strategy(), batch_size, plan)

        def ours_step():
            loss, outputs = step(batch)
            return {"output": outputs["output"].numpy(), **{f"loss {k}": v.numpy() for k, v in loss.items()}}

        calls["ours"] = ours_step
    if "original" in sides:
        model, strategy = original.build(overrides, batch), original.strategy
        if ours is not None:
            copy_weights(ours, model)
        with strategy.scope():
            model.create_optimizers(*SCHEDULE)

        def original_step():
            loss, outputs, _ = model.train_distributed(strategy, batch, batch_size, True, True)
            return {"output": outputs["output"].numpy(), **{f"loss {k}": v.numpy() for k, v in loss.items()}}

        calls["original"] = original_step
    return calls


def peak_mib() -> float | None:
    """This process's peak resident memory so far in MiB (Linux's VmHWM, which starts afresh at exec,
    whereas getrusage's ru_maxrss keeps the parent's resident set at fork); None elsewhere."""
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.is_file() else []
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith("VmHWM:")), None)


def measure_peak(directory: Path, side: str, stage: str, size: int, batch_size: int) -> float | None:
    """Peak resident MiB of a fresh process that builds one side of one stage and calls it twice;
    None if that process failed (its last error line is printed)."""
    command = [sys.executable, "-m", "lsr.bench_original", str(directory), "--peak_of", side, "--stage", stage]
    command += ["--resolution", str(size), "--batch_size", str(batch_size)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        print(f"peak memory of {side} {stage}: failed ({(done.stderr.strip().splitlines() or ['?'])[-1]})")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]


def _stage_calls(original, stage: str, size: int, batch_size: int, sides=SIDES) -> dict:
    if stage == "inference":
        return inference_calls(original, size, sides)
    return training_calls(original, size, batch_size, sides)


def compare(directory, size: int = 224, batch_size: int = 1, repeats: int = 3, memory: bool = True) -> list[Comparison]:
    """Both stages side by side (see the module docstring); `memory` adds each side's peak
    resident memory per stage, measured in fresh processes."""
    directory = check_original(directory)
    original = Original(directory)
    comparisons = []
    for stage in STAGES:
        first, seconds = alternate(_stage_calls(original, stage, size, batch_size), repeats)
        best = {name: min(values) for name, values in seconds.items()}
        if stage == "inference":
            label, unit = f"inference K=1, {size} px", "frame"
            paths = {"original": "--run_mode=infer step", "original forward": FORWARD_PATH}
        else:
            label, unit = f"train step, batch {batch_size}, K=4, {size} px", "step"
            paths = {"original": "train_distributed step"}
        for name, path in paths.items():
            difference = relative_difference(first["ours"], first[name])
            compared = sorted(first["ours"].keys() & first[name].keys())
            comparisons.append(Comparison(label, path, stage, unit, best["ours"], best[name], difference, compared))
        del first
        gc.collect()
    if memory:
        for stage in STAGES:
            peaks = {side: measure_peak(directory, side, stage, size, batch_size) for side in SIDES}
            for comparison in comparisons:
                if comparison.kind == stage:
                    # The original's process runs its whole step; the forward alone is not apart.
                    alone = comparison.original_path == FORWARD_PATH
                    comparison.peak_mib = {"ours": peaks["ours"]} if alone else peaks
    return comparisons


def _mib(value) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def rows(comparisons: list[Comparison], device: str) -> list[BenchRow]:
    """common.bench rows: ours (method 'lsr', once per stage) and each path of the original
    ('lsr-original'), the ratio and the output difference in the notes."""
    standard, stages = [], set()
    for c in comparisons:
        agreement = "n/a" if c.difference is None else f"{c.difference:.1e} of max|original|"
        notes = f"original/ours {c.ratio:.2f}x; outputs ({', '.join(c.compared)}) differ by {agreement}"
        if c.stage not in stages:
            stages.add(c.stage)
            ours = BenchRow("lsr", f"{c.stage}, beside the original", c.kind, c.ours, c.unit, device=device)
            standard.append(dataclasses.replace(ours, peak_mb=c.peak_mib.get("ours")))
        stage = f"{c.stage}, {c.original_path}"
        peak = c.peak_mib.get("original")
        standard.append(BenchRow("lsr-original", stage, c.kind, c.original, c.unit, peak, notes=notes, device=device))
    return standard


def table(comparisons: list[Comparison]) -> str:
    """The Markdown table the bench prints."""
    lines = [
        "| stage | original's path | ours s | original s | original / ours | outputs: max diff / max abs "
        "| peak MiB ours / original |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        verdict = "n/a" if c.difference is None else f"{c.difference:.1e} ({'agree' if c.agrees else 'DIFFER'})"
        peaks = f"{_mib(c.peak_mib.get('ours'))} / {_mib(c.peak_mib.get('original'))}"
        times = f"{c.ours:.3f} | {c.original:.3f} | {c.ratio:.2f}x"
        lines.append(f"| {c.stage} | {c.original_path} | {times} | {verdict} | {peaks} |")
    return "\n".join(lines)


@cli_main
def bench(directory, size: int, batch_size: int, repeats: int, json_out=None, memory: bool = True) -> int:
    """`python -m lsr.bench --original DIR`: print the header and table (and write `json_out` as
    common.bench rows); 0 when every stage's outputs agree to `PARITY`, else 1."""
    directory = check_original(directory)  # a wrong folder fails before anything is built
    import tensorflow as tf

    from common.bench import write_rows_json

    device = "cuda" if tf.config.list_logical_devices("GPU") else "cpu"
    header = (
        f"LSR two_step_syn beside the original ({directory.name}), {size}x{size}, shared random weights, "
        f"{device}, alternating, best of {repeats}"
    )
    print(header, flush=True)
    comparisons = compare(directory, size, batch_size, repeats, memory)
    print(table(comparisons))
    if json_out:
        extra = {"original": [{**vars(c), "ratio": c.ratio, "agrees": c.agrees} for c in comparisons]}
        write_rows_json(json_out, rows(comparisons, device), header, extra)
    return 0 if all(c.agrees for c in comparisons) else 1


@cli_main
def main(argv=None) -> int:
    """The peak-memory child: build one side of one stage, call it twice, print {"peak_mib": ...}."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("original", help="checkout of MoustafaMeshry/lsr")
    parser.add_argument("--peak_of", choices=SIDES, required=True)
    parser.add_argument("--stage", choices=STAGES, required=True)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=1)
    args = parser.parse_args(argv)
    directory = check_original(args.original)
    original = Original(directory) if args.peak_of == "original" else None
    alternate(_stage_calls(original, args.stage, args.resolution, args.batch_size, (args.peak_of,)), 1)
    print(json.dumps({"peak_mib": peak_mib()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
