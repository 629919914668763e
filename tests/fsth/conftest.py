"""Fixtures of the fsth tests: the reference manifest, small layer configs, random state dicts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / 'data'

# Same block sequence as the original configs, narrow, for 32 x 32 inputs (4 x 4 final map in E/D).
# The recorded outputs in data/original_outputs.npz were produced with exactly these.
SMALL = {
    'G_config': (('D', 8, 9, 2), ('I',), ('D', 16, 3, 2), ('I',), ('A',), ('D', 16, 3, 2), ('I',),
                 ('BA', 16, 3), ('BA', 16, 3), ('U', 16, 3, 2), ('U', 8, 3, 2), ('A', 8), ('U', 3, 3, 2)),
    'E_config': (('D', 8, 3, 2), ('D', 16, 3, 2), ('A',), ('D', 16, 3, 2)),
    'V_config': (('D', 8, 3, 2), ('D', 16, 3, 2), ('A',), ('D', 16, 3, 2), ('B', 16, 3)),
    'embedding_dim': 16,
}


@pytest.fixture(scope='session')
def small() -> dict:
    return SMALL


@pytest.fixture(scope='session')
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope='session')
def manifest() -> dict:
    """Names and shapes of the original networks' state dicts (copied from the reference)."""
    return json.loads((DATA / 'fsth_state_dict.json').read_text())


def random_state(entries, seed: int) -> dict[str, torch.Tensor]:
    """Random tensors with the manifest's names and shapes, in its order."""
    gen = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=gen) for name, shape, _ in entries}


@pytest.fixture(scope='session')
def manifest_states(manifest) -> dict[str, dict[str, torch.Tensor]]:
    """Random, manifest-shaped state dicts of the meta-training G, E and D (N_videos = 2)."""
    return {name: random_state(manifest['networks'][name]['state_dict'], seed)
            for seed, name in enumerate(('G', 'E', 'D'))}


@pytest.fixture
def small_networks():
    """Small meta-training G, E, D (3 videos) with a fixed seed."""
    from fsth.network import Discriminator, Embedder, Generator

    torch.manual_seed(0)
    dim = SMALL['embedding_dim']
    return (Generator(SMALL['G_config'], dim), Embedder(SMALL['E_config'], dim),
            Discriminator(SMALL['V_config'], 3, dim))
