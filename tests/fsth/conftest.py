"""Fixtures of the fsth tests: the reference manifest, small layer configs, random state dicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data"

# Same block sequence as the original configs, narrow, for 32 x 32 inputs (4 x 4 final map in E/D).
# The recorded outputs in data/original_outputs.npz were produced with exactly these.
SMALL = {
    "G_config": (
        ("D", 8, 9, 2),
        ("I",),
        ("D", 16, 3, 2),
        ("I",),
        ("A",),
        ("D", 16, 3, 2),
        ("I",),
        ("BA", 16, 3),
        ("BA", 16, 3),
        ("U", 16, 3, 2),
        ("U", 8, 3, 2),
        ("A", 8),
        ("U", 3, 3, 2),
    ),
    "E_config": (("D", 8, 3, 2), ("D", 16, 3, 2), ("A",), ("D", 16, 3, 2)),
    "V_config": (("D", 8, 3, 2), ("D", 16, 3, 2), ("A",), ("D", 16, 3, 2), ("B", 16, 3)),
    "embedding_dim": 16,
}


@pytest.fixture(scope="session")
def small() -> dict:
    return SMALL


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def manifest() -> dict:
    """Names and shapes of the original networks' state dicts (copied from the reference)."""
    return json.loads((DATA / "fsth_state_dict.json").read_text())


def random_state(entries, seed: int) -> dict[str, torch.Tensor]:
    """Random tensors with the manifest's names and shapes, in its order."""
    gen = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=gen) for name, shape, _ in entries}


@pytest.fixture(scope="session")
def manifest_states(manifest) -> dict[str, dict[str, torch.Tensor]]:
    """Random, manifest-shaped state dicts of the meta-training G, E and D (N_videos = 2)."""
    return {
        name: random_state(manifest["networks"][name]["state_dict"], seed) for seed, name in enumerate(("G", "E", "D"))
    }


@pytest.fixture
def small_networks():
    """Small meta-training G, E, D (3 videos) with a fixed seed."""
    from fsth.network import Discriminator, Embedder, Generator

    torch.manual_seed(0)
    dim = SMALL["embedding_dim"]
    return (
        Generator(SMALL["G_config"], dim),
        Embedder(SMALL["E_config"], dim),
        Discriminator(SMALL["V_config"], 3, dim),
    )


# Small Caffe-VGG look-alikes with the real block structure, so the original's layer indices apply.
TINY_VGG = {
    "vgg19": dict(blocks=(2, 2, 4, 4, 4), mean_bgr=(103.939, 116.779, 123.68)),
    "vggface": dict(blocks=(2, 2, 3, 3, 3), mean_bgr=(93.5940, 104.7624, 129.1863)),
}


@pytest.fixture(scope="session")
def tiny_vgg_files(tmp_path_factory) -> dict:
    """{'vgg19': (arch, file), 'vggface': (arch, file)}: random weights in FSTH's `conv_layers.*` layout."""
    from common.vgg.layouts import VGGArch
    from common.vgg.torch_vgg import VGGFeatures

    out, folder = {}, tmp_path_factory.mktemp("vgg")
    for seed, (name, spec) in enumerate(TINY_VGG.items()):
        arch = VGGArch(
            f"tiny_{name}", spec["blocks"], 10, spec["mean_bgr"], "test", widths=(4, 6, 8, 8, 8), fc_width=16
        )
        torch.manual_seed(seed)
        state = {k.replace("features.", "conv_layers."): v for k, v in VGGFeatures(arch).state_dict().items()}
        torch.save(state, folder / f"{name}.pth")
        out[name] = (arch, folder / f"{name}.pth")
    return out


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory) -> Path:
    """The shared sample (tools.make_sample_data), small: 6 driving frames at 128 px."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("sample")
    subprocess.run(
        [sys.executable, "-m", "tools.make_sample_data", "--out", str(out), "--frames", "6", "--size", "128"],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="session")
def episode_root(sample_data, tmp_path_factory) -> Path:
    """A training set in the frame-folder layout: person_a/clip (6 frames, .npy beside them) and
    person_b/photo (1 frame, .npy in landmarks/)."""
    import shutil

    root = tmp_path_factory.mktemp("episodes")
    clip = root / "person_a" / "clip"
    clip.mkdir(parents=True)
    for frame in sorted((sample_data / "driving").glob("*.png")):
        shutil.copy(frame, clip / frame.name)
        shutil.copy(sample_data / "landmarks" / "driving" / f"{frame.stem}.npy", clip / f"{frame.stem}.npy")
    photo = root / "person_b" / "photo"
    (photo / "landmarks").mkdir(parents=True)
    shutil.copy(sample_data / "source_2.png", photo / "source_2.png")
    shutil.copy(sample_data / "landmarks" / "source_2.npy", photo / "landmarks" / "source_2.npy")
    return root


@pytest.fixture(scope="session")
def tiny_config(episode_root, tiny_vgg_files) -> dict:
    """SMALL networks at 32 x 32, episodes of 1 + 2 frames, batch 2, no workers."""
    from fsth.config import load_config

    return load_config(
        None,
        **SMALL,
        train_dataset=str(episode_root),
        input_size=32,
        metatrain_T=2,
        metatrain_batch_size=2,
        num_worker=0,
        vgg19_weight_file=str(tiny_vgg_files["vgg19"][1]),
        vggface_weight_file=str(tiny_vgg_files["vggface"][1]),
        max_epoch=100,
        display_every=2,
        check_every=3,
        save_every=1000,
        lr_EG=1e-3,
    )


@pytest.fixture(scope="session")
def tiny_loss(tiny_config, tiny_vgg_files):
    from fsth.loss import Loss_EG_meta

    return Loss_EG_meta.from_config(
        tiny_config, vgg19_arch=tiny_vgg_files["vgg19"][0], vggface_arch=tiny_vgg_files["vggface"][0]
    )
