"""Speed of LSR on this machine: inference ms per driver frame and training steps/s.

`python -m lsr.bench [--resolution 224] [--iters 3] [--batch_size 1] [--skip_train] [--json OUT]
[--precisions fp32 bf16]`

Builds the default two_step_syn model (random weights: no checkpoint is read)
at `--resolution`, then times, after one untimed traced call each:
- inference with K=1 and K=4 few-shot frames: latents computed once, then the tf.function
  forward pass per driver frame (what `--run_mode=infer` does per frame, PNG writing excluded);
- one meta-training G+D step (`engine.make_train_step`, default GAN/L1/feature-matching losses
  and R1/R2 penalties; the VGG perceptual and identity losses off, their weights not being
  shipped) at `--batch_size`.
Each precision of `--precisions` other than fp32 (default bf16 on the CPU, fp16 on a GPU) times the
inference rows again with the networks built under its Keras mixed policy (`lsr.engine.precision_policy`)
and the fp32 model's weights and inputs, the precisions taking turns in each iteration; its rows
`<stage> [bf16]` note the speed-up over fp32 and how far the frames moved
(`common.precision.frame_agreement` of the [-1, 1] outputs mapped to [0, 1]). Training is fp32 only.
Random weights are more sensitive to rounding than trained ones, so these agreements are pessimistic.
`--original DIR` times a checkout of the original beside ours instead (`lsr.bench_original`).
Prints a table and the process's peak resident memory (`--json`: also as common.bench rows, the
inference rows with the GFLOP of the traced per-frame forward, `graph_gflop`, the training row
with that of the traced step). A measurement, not a test.
"""

from __future__ import annotations

import argparse
import re
import resource
import sys
import time

import numpy as np
import tensorflow as tf

from common.bench import BenchRow, write_rows_json
from common.errors import cli_main
from common.precision import PRECISIONS, check_precision, frame_agreement
from lsr import engine, options
from lsr.data import frames as F
from lsr.losses import ModelLosses
from lsr.models import create_model


def _batch(batch_size: int, k: int, size: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    image = lambda *s: tf.constant(rng.uniform(-1, 1, s).astype(np.float32))
    label = lambda *s: tf.constant(rng.integers(0, 19, s).astype(np.int32))
    return {
        F.FRAMES_KEY: image(batch_size, k, size, size, 3),
        F.CONTOURS_KEY: image(batch_size, k, size, size, 3),
        F.SEGMAPS_KEY: label(batch_size, k, size, size, 1),
        F.TARGET_FRAME_KEY: image(batch_size, size, size, 3),
        F.TARGET_CONTOUR_KEY: image(batch_size, size, size, 3),
        F.TARGET_SEGMAP_KEY: label(batch_size, size, size, 1),
    }


def _model(config):
    model = create_model(config)
    if hasattr(model, "init_extra_train_and_eval_networks"):
        model.init_extra_train_and_eval_networks()
    return model


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _timed(fn, iters: int) -> float:
    """Seconds per call after one warm-up (tracing) call."""
    fn()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - start) / iters


# The op types whose FLOPs are counted: matrix products and convolutions, as common.bench.count_flops
# counts them on the torch side (element-wise work left out).
COUNTED_OPS = [
    "Conv2D",
    "Conv2DBackpropInput",
    "Conv2DBackpropFilter",
    "DepthwiseConv2dNative",
    "MatMul",
    "BatchMatMul.*",
    "Einsum",
]


def live_op_names(graph) -> set[str]:
    """Names of the ops a call of `graph` runs: the ancestors of its outputs and control outputs
    (TensorFlow prunes the rest, e.g. the input gradient of a network's first convolution)."""
    stack, live = [t.op for t in graph.outputs] + list(graph.control_outputs), set()
    while stack:
        op = stack.pop()
        if op.name not in live:
            live.add(op.name)
            stack.extend(t.op for t in op.inputs)
            stack.extend(op.control_inputs)
    return live


def graph_gflop(concrete_function) -> float:
    """GFLOP of one call of a traced tf.function (2 per multiply-add), from TensorFlow's per-op FLOP
    statistics over its graph's `COUNTED_OPS` ops that the call runs (`live_op_names`); the graph's
    shapes must be fully known."""
    graph = concrete_function.graph
    live = live_op_names(graph)
    pruned = [
        re.escape(op.name)
        for op in graph.get_operations()
        if op.name not in live and any(re.fullmatch(kind, op.type) for kind in COUNTED_OPS)
    ]
    profiler = tf.compat.v1.profiler
    spec = profiler.ProfileOptionBuilder(profiler.ProfileOptionBuilder.float_operation())
    spec = spec.with_empty_output().account_displayed_op_only(True).build()
    spec["account_type_regexes"] = COUNTED_OPS
    spec["hide_name_regexes"] = pruned
    return profiler.profile(graph=graph, options=spec).total_float_ops / 1e9


def _timed_in_turns(calls: dict, iters: int) -> tuple[dict, dict]:
    """({name: seconds per call}, {name: output of its warm-up call}) of the zero-argument `calls`:
    one untimed warm-up (tracing) call each, then `iters` rounds in which they take turns, every
    other round in reverse order, so that a change of the machine's load falls on all alike."""
    outputs = {name: fn() for name, fn in calls.items()}
    totals, names = dict.fromkeys(calls, 0.0), list(calls)
    for round_index in range(iters):
        for name in names[::-1] if round_index % 2 else names:
            start = time.perf_counter()
            calls[name]()
            totals[name] += time.perf_counter() - start
    return {name: total / iters for name, total in totals.items()}, outputs


def _model_at(precision: str, config, batch, weights_of=None):
    """`_model(config)` with its layers at `precision`, its inference networks built by one eager
    forward pass on `batch` (inside the policy: sub-layers are created then), then given the
    weights of the model `weights_of` when one is given."""
    with engine.precision_policy(precision):
        model = _model(config)
        engine.forward(model, batch, training=False)
    if weights_of is not None:
        for name, network in weights_of.get_networks().items():
            if network is not None and network.built:
                model.get_networks()[name].set_weights(network.get_weights())
    return model


def bench_inference(size: int, k: int, iters: int, precisions=("fp32",)) -> dict:
    """{precision: (seconds per driver frame, output frames in [0, 1])} for fp32 and `precisions`,
    and under "gflop" the GFLOP of one frame's forward."""
    config = options.default_config(train_resolution=size, K=k)
    batch = _batch(1, k, size)
    calls, gflop, reference = {}, None, None
    for precision in ["fp32", *(p for p in precisions if p != "fp32")]:
        model = _model_at(precision, config, batch, weights_of=reference)
        if reference is None:
            reference = model
        latents = model.compute_latents(engine.encoder_inputs(config, batch), training=False)
        run = tf.function(
            lambda b, model=model, latents=latents: engine.public_outputs(
                engine.forward(model, b, training=False, latents=latents)
            )
        )
        calls[precision] = lambda run=run: {key: t.numpy() for key, t in run(batch).items()}
        if gflop is None:  # the same convolutions and products at every precision
            gflop = graph_gflop(run.get_concrete_function(batch))
    seconds, outputs = _timed_in_turns(calls, iters)
    results = {p: (seconds[p], (np.clip(outputs[p]["output"], -1, 1) + 1) / 2) for p in calls}
    return {**results, "gflop": gflop}


def precision_note(fp32_seconds: float, seconds: float, fp32_frames, frames) -> str:
    """Notes of a reduced-precision row: speed-up over fp32 and the frames' agreement with fp32's."""
    agreement = frame_agreement(fp32_frames, frames)
    return (
        f"x{fp32_seconds / seconds:.2f} vs fp32; frames vs fp32 {agreement['psnr_db']:.1f} dB PSNR, "
        f"max {agreement['max_levels']} levels"
    )


def bench_train(size: int, batch_size: int, iters: int) -> tuple[float, float]:
    """(steps per second, GFLOP of the step's graph: forward, both tapes' gradients)."""
    # The VGG19 / VGG-Face weights are not shipped: their perceptual losses are off.
    config = options.default_config(
        train_resolution=size, batch_size=batch_size, w_loss_vgg=0, w_loss_vgg_face_recon=0, w_loss_identity=0
    )
    strategy = tf.distribute.get_strategy()
    model = _model(config)
    counters_step = tf.Variable(0, dtype=tf.int64)
    model.create_optimizers(counters_step, config.lr_warmstart_steps, 10**6, 2 * 10**6, config.decay_num_intervals)
    losses = ModelLosses(config)
    batch = _batch(batch_size, config.K, size)
    # One eager forward pass and loss builds every network before its variables are listed.
    losses.compute_losses(
        model, engine.forward(model, batch, training=True), batch, training=True, global_batch_size=batch_size
    )
    step = engine.make_train_step(
        model, losses, strategy, batch_size, engine.variables_to_train(model, finetuning=False)
    )
    rate = 1 / _timed(lambda: float(step(batch)[0]["loss_g"]), iters)
    return rate, graph_gflop(step.get_concrete_function(batch))


@cli_main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--iters", type=int, default=3, help="timed calls after the warm-up")
    parser.add_argument("--batch_size", type=int, default=1, help="training batch size")
    parser.add_argument("--skip_train", action="store_true")
    parser.add_argument("--json", metavar="OUT", help="also write the rows as common.bench JSON")
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=PRECISIONS,
        help="inference precisions to time (default: fp32 bf16 on the CPU, fp32 fp16 on a GPU)",
    )
    parser.add_argument(
        "--original", metavar="DIR", help="instead: ours beside a checkout of the original (lsr/bench_original.py)"
    )
    args = parser.parse_args(argv)
    if args.original:
        from lsr import bench_original

        return bench_original.bench(args.original, args.resolution, args.batch_size, args.iters, args.json)
    device = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    where = "cuda" if device == "GPU" else "cpu"
    precisions = args.precisions or ["fp32", "fp16" if device == "GPU" else "bf16"]
    for precision in precisions:
        check_precision(precision, where)
    header = (
        f"LSR two_step_syn, {args.resolution}x{args.resolution}, random weights, {device}, "
        f"{args.iters} timed iterations"
    )
    print(header)
    rows, standard = [], []
    for k in (1, 4):
        results = bench_inference(args.resolution, k, args.iters, precisions)
        gflop, (fp32_seconds, fp32_frames) = results.pop("gflop"), results["fp32"]
        for precision, (seconds, frames) in results.items():
            label, notes = f"inference K={k}", ""
            if precision != "fp32":
                label = f"{label} [{precision}]"
                notes = precision_note(fp32_seconds, seconds, fp32_frames, frames)
            rows.append((label, f"{1000 * seconds:9.1f} ms/frame" + (f" ({notes})" if notes else "")))
            print(f"{rows[-1][0]:<36s} {rows[-1][1]}", flush=True)
            standard.append(BenchRow("lsr", label, "inference", seconds, "frame", _peak_mib(), gflop, notes, where))
    if not args.skip_train:
        rate, train_gflop = bench_train(args.resolution, args.batch_size, args.iters)
        rows.append((f"train step (batch {args.batch_size}, K=4)", f"{rate:9.3f} steps/s"))
        print(f"{rows[-1][0]:<36s} {rows[-1][1]}", flush=True)
        standard.append(
            BenchRow("lsr", rows[-1][0], "training", 1 / rate, "step", _peak_mib(), train_gflop, device=where)
        )
    peak = _peak_mib()
    rows.append(("peak resident memory", f"{peak:9.0f} MiB"))
    if args.json:
        write_rows_json(args.json, standard, header)
    print("\n| measurement | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value.strip()} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
