"""Test-suite wiring.

`tensorflow` and the `tfrecord` package cannot be imported in one process, so the suite runs
twice (see the Makefile): FR_TEST_SIDE=torch collects everything except TensorFlow-side test
files, FR_TEST_SIDE=tf collects only those. TensorFlow-side files are listed by glob in
pyproject.toml (`tf_test_files`): a TensorFlow package adds its test folder there. The choice is
made per file, before it is imported, since importing it would already load the framework.
Unset, both sides are collected (fine for a single file or directory).
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest

_SIDE = os.environ.get("FR_TEST_SIDE", "")


def pytest_addoption(parser):
    parser.addini(
        "tf_test_files",
        type="linelist",
        help="fnmatch patterns (a * also crosses folders) of the TensorFlow-side test files, "
        "relative to the root folder",
    )


def _is_tf_file(path: Path, config) -> bool:
    relative = path.relative_to(config.rootpath).as_posix()
    return any(fnmatch.fnmatchcase(relative, pattern) for pattern in config.getini("tf_test_files"))


def pytest_ignore_collect(collection_path: Path, config):
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    if _SIDE == "torch" and _is_tf_file(collection_path, config):
        return True
    if _SIDE == "tf" and not _is_tf_file(collection_path, config):
        return True
    return None


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow; set RUN_SLOW=1 to run")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "slow" in item.keywords and os.environ.get("RUN_SLOW") != "1":
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not _has_cuda():
            item.add_marker(skip_gpu)


def _has_cuda() -> bool:
    """Asked only when a gpu-marked test is collected (torch side), so TensorFlow runs never import torch."""
    import torch

    return torch.cuda.is_available()


@pytest.fixture(scope="session")
def make_small_sample(tmp_path_factory):
    """`make_small_sample(frames, size)`: the `tools.make_sample_data` sample with `frames` driving
    frames at `size` px, built once per (frames, size) in the session. Tests only read it."""
    from tools.make_sample_data import Motion, make_sample

    built = {}

    def build(frames: int, size: int) -> Path:
        if (frames, size) not in built:
            out = tmp_path_factory.mktemp(f"sample_{frames}x{size}")
            make_sample(out, size, Motion(frames=frames))
            built[frames, size] = out
        return built[frames, size]

    return build


@pytest.fixture(scope="session")
def astronaut():
    """512x512 RGB uint8 real face photo that ships with scikit-image."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def tiny_vgg():
    """A VGG-Face-shaped network with few channels, for fast conversion tests."""
    from common.vgg.layouts import VGGArch

    return VGGArch(
        "tiny", (2, 2, 3, 3, 3), 7, (93.5940, 104.7624, 129.1863), "test", widths=(4, 6, 8, 8, 8), fc_width=16
    )


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Tests that lower torch's thread count (tiny networks run faster on one) must not leave it low
    for the rest of the session: numbers and speed of later tests would depend on the order."""
    import sys

    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    yield
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
