"""lsr.bench: the GFLOP of a traced forward, counted from TensorFlow's per-op statistics, equals the
hand count of its convolutions and matrix products (2 x multiply-adds, element-wise work left out),
gradients included in a traced training step;
the bench never loads torch."""

from __future__ import annotations

import subprocess
import sys

import tensorflow as tf

from lsr.bench import graph_gflop


def test_graph_gflop_counts_convolutions_and_products():
    conv = tf.keras.layers.Conv2D(4, 3, strides=2, padding="same")
    depthwise = tf.keras.layers.DepthwiseConv2D(3, padding="same")
    dense = tf.keras.layers.Dense(5)
    forward = tf.function(lambda x: dense(tf.nn.relu(depthwise(conv(x)) + 1.0)))
    batch = tf.zeros([2, 9, 9, 3])
    positions = 2 * 5 * 5  # batch x 5 x 5 outputs of the stride-2 convolution
    expected = 2 * positions * (4 * 3 * 3 * 3 + 4 * 3 * 3 + 5 * 4)
    assert graph_gflop(forward.get_concrete_function(batch)) == expected / 1e9


def test_a_training_step_graph_counts_both_gradients_of_a_convolution():
    """What the step runs: the first convolution, both filter gradients and the second one's input
    gradient. The graph also holds the second forward (the gradient of a sum does not read it) and
    the first one's input gradient (its input is data), which TensorFlow prunes: not counted."""
    first, second = tf.keras.layers.Conv2D(4, 3, padding="same"), tf.keras.layers.Conv2D(4, 3, padding="same")
    batch = tf.zeros([1, 6, 6, 4])
    first(batch), second(batch)  # variables built before the traced step lists them

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(second(first(x)))
        return tape.gradient(loss, [first.kernel, second.kernel])

    one_convolution = 2 * 6 * 6 * 4 * (4 * 3 * 3)
    assert graph_gflop(step.get_concrete_function(batch)) == 4 * one_convolution / 1e9


def test_the_bench_does_not_import_torch():
    check = "import sys, lsr.bench; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", check], check=True, capture_output=True)
