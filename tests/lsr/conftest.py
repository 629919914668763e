"""Fixtures of the LSR tests (TensorFlow side)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"

# A small two_step_syn configuration; data/original_outputs.npz holds the original code's
# outputs for it (see test_lsr_parity.py).
SMALL_OPTIONS = dict(
    train_resolution=32,
    G_num_upsamples=3,
    g_nf=8,
    segmap_g_nf=8,
    g_nf_max=32,
    e_nf=8,
    segmap_e_nf=8,
    E_num_downsamples=4,
    style_nc=16,
    d_nf=8,
    D_num_downsamples=4,
    spade_proj_filters=8,
    num_disc_scales=2,
    K=2,
)


@pytest.fixture(scope="session")
def manifest():
    """What the original saves at default flags (condensed from the LSR fact sheet)."""
    return json.loads((DATA / "checkpoint_manifest.json").read_text())


def _keyed_value(key: str, shape, dtype="float32") -> np.ndarray:
    """A value that depends only on the checkpoint key: N(0, 1) kernels, N(0, 0.1) vectors.

    RandomState streams are frozen across NumPy versions, so the golden outputs stay valid.
    """
    rng = np.random.RandomState(zlib.crc32(key.encode()))
    if dtype == "int64":
        return np.int64(rng.randint(1, 10_000))
    return rng.normal(0.0, 1.0 if len(shape) >= 2 else 0.1, shape).astype(np.float32)


@pytest.fixture(scope="session")
def keyed_value():
    """`_keyed_value(key, shape, dtype)`: the deterministic weights of the golden test."""
    return _keyed_value


@pytest.fixture(scope="session")
def write_checkpoint():
    """Write {object-graph key: array} as a TF checkpoint of nested tf.Module objects.

    Keys are paths without the '/.ATTRIBUTES/VARIABLE_VALUE' suffix, e.g.
    'generator/blocks/0/kernel'; returns the checkpoint prefix.
    """
    import tensorflow as tf

    def to_trackable(node):
        if not isinstance(node, dict):
            return tf.Variable(node, trainable=False)
        module = tf.Module()
        for name, child in node.items():
            setattr(module, name, to_trackable(child))
        return module

    def write(prefix, values: dict) -> str:
        tree = {}
        for key, value in values.items():
            *parents, leaf = key.split("/")
            node = tree
            for name in parents:
                node = node.setdefault(name, {})
            node[leaf] = value
        roots = {name: to_trackable(child) for name, child in tree.items()}
        return tf.train.Checkpoint(**roots).write(str(prefix))

    return write


def _build_model(**overrides):
    """A built model of the given options, with its discriminator when it has one."""
    from lsr import options
    from lsr.models import create_model

    model = create_model(options.default_config(**overrides))
    if hasattr(model, "init_extra_train_and_eval_networks"):
        model.init_extra_train_and_eval_networks()
    model.build_networks()
    return model


@pytest.fixture(scope="session")
def build_model():
    """`_build_model(**options)`: a built model with its discriminator if it has one."""
    return _build_model


@pytest.fixture(scope="session")
def small_options():
    """Options of a small two_step_syn model, the one data/original_outputs.npz was made with."""
    return dict(SMALL_OPTIONS)


@pytest.fixture(scope="session")
def default_model():
    """two_step_syn at the default flags (224 px), discriminator included."""
    return _build_model()


@pytest.fixture(scope="session")
def pretrain_model():
    """pretrain_layout at the default flags."""
    return _build_model(model_type="pretrain_layout")
