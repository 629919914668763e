"""lsr.bench: the GFLOP of a traced forward, counted from TensorFlow's per-op statistics, equals the
hand count of its convolutions and matrix products (2 x multiply-adds, element-wise work left out);
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


def test_the_bench_does_not_import_torch():
    check = "import sys, lsr.bench; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", check], check=True, capture_output=True)
