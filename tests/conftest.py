"""Test-suite wiring.

`tensorflow` and the `tfrecord` package cannot be imported in one process, so the suite runs
twice (see the Makefile): FR_TEST_SIDE=torch collects everything except TensorFlow-side test
files, FR_TEST_SIDE=tf collects only those. TensorFlow-side files are `tests/lsr/**` and any
`test_*_tf.py`. Unset, both sides are collected (fine for a single file or directory).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

_SIDE = os.environ.get("FR_TEST_SIDE", "")


def _is_tf_file(path: Path) -> bool:
    return path.name.endswith("_tf.py") or "lsr" in path.relative_to(Path(__file__).parent).parts


def pytest_ignore_collect(collection_path: Path, config):
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    if _SIDE == "torch" and _is_tf_file(collection_path):
        return True
    if _SIDE == "tf" and not _is_tf_file(collection_path):
        return True
    return None


def pytest_collection_modifyitems(config, items):
    if os.environ.get("RUN_SLOW") == "1":
        return
    skip_slow = pytest.mark.skip(reason="slow; set RUN_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def astronaut():
    """512x512 RGB uint8 real face photo that ships with scikit-image."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def tiny_vgg():
    """A VGG-Face-shaped network with few channels, for fast conversion tests."""
    from common.vgg.layouts import VGGArch

    return VGGArch("tiny", (2, 2, 3, 3, 3), 7, (93.5940, 104.7624, 129.1863), "test",
                   widths=(4, 6, 8, 8, 8), fc_width=16)
