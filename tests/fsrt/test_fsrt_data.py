"""FSRT training data: the shuffled step sampler, the validation crop and the start-up file checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import InputError
from common.image import write_image
from fsrt.data import StepSampler, VoxDataset, _resize

SIZE = 32


def stream(sampler: StepSampler, count: int) -> list[int]:
    it = iter(sampler)
    return [next(it) for _ in range(count)]


def test_each_epoch_is_a_new_permutation_of_all_samples():
    length = 50
    numbers = stream(StepSampler(length, batch_size=5, seed=3), 3 * length)
    epochs = [numbers[e * length : (e + 1) * length] for e in range(3)]
    for epoch in epochs:
        assert sorted(epoch) == list(range(length))  # every sample once per epoch
    assert epochs[0] != list(range(length))  # shuffled, not in order
    assert epochs[0] != epochs[1] != epochs[2] != epochs[0]  # a new order every epoch
    assert numbers == stream(StepSampler(length, batch_size=5, seed=3), 3 * length)  # a function of the seed
    assert numbers != stream(StepSampler(length, batch_size=5, seed=4), 3 * length)


@pytest.mark.parametrize("length", [12, 13])  # with and without padding
def test_processes_split_each_epoch_like_distributed_sampler(length):
    world, batch = 3, 2
    share = -(-length // world)
    per_rank = [stream(StepSampler(length, batch, rank=r, world_size=world), 2 * share) for r in range(world)]
    order = stream(StepSampler(length, 1, seed=0), length)  # the one-process epoch 0 permutation
    padded = order + order[: share * world - length]  # DistributedSampler pads with the first entries
    for epoch in range(2):
        shares = [numbers[epoch * share : (epoch + 1) * share] for numbers in per_rank]
        if epoch == 0:
            assert shares == [padded[r::world] for r in range(world)]
        together = sorted(sum(shares, []))
        assert sorted(set(together)) == list(range(length))  # all samples in each epoch
        assert len(together) - length == share * world - length  # disjoint up to the padding
    assert [p[:share] for p in per_rank] != [p[share:] for p in per_rank]  # epoch 1 is reshuffled


@pytest.mark.parametrize("start", [1, 3, 4, 7, 11])  # inside an epoch, at and across its end
def test_resume_at_any_step_continues_the_stream(start):
    length, batch = 13, 3  # 13 per epoch: batches span the epoch ends
    for rank, world in ((0, 1), (1, 2)):
        whole = stream(StepSampler(length, batch, rank=rank, world_size=world, seed=5), 20 * batch)
        resumed = stream(StepSampler(length, batch, start=start, rank=rank, world_size=world, seed=5), 5 * batch)
        assert resumed == whole[start * batch : (start + 5) * batch]


def make_split(base: Path, split: str, count: int) -> None:
    """`count` 3-frame folder videos of a textured square 'face' with landmarks on its outline."""
    rng = np.random.default_rng(0)
    landmarks = np.zeros((3, 68, 2), np.float32)
    ring = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    landmarks[..., 0] = 128 + 50 * np.cos(ring)  # 256-px units, box 78..178
    landmarks[..., 1] = 128 + 50 * np.sin(ring)
    for n in range(count):
        name = f"id{n:03d}#clip#0#3"
        folder = base / "data" / split / name
        folder.mkdir(parents=True)
        for t in range(3):
            write_image(folder / f"{t:04d}.png", rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
        (base / "kp").mkdir(exist_ok=True)
        np.save(base / "kp" / f"{name}.npy", landmarks)


def dataset(base: Path, mode: str) -> VoxDataset:
    return VoxDataset(base / "data", base / "kp", mode=mode, num_pixels=256, frame_size=SIZE, phase1=False, seed=7)


def test_validation_crops_half_the_samples_deterministically(tmp_path):
    make_split(tmp_path, "val", 24)
    val = dataset(tmp_path, "val")
    cropped = 0
    for index in range(len(val)):
        sample = val[index]
        scale, shift = sample["kp_scale"].numpy(), sample["kp_shift"].numpy()
        uncropped = torch.cat([sample["input_images_augm2_uncropped"], sample["target_image_augm2_uncropped"][None]])
        if (scale == 1).all():
            assert (shift == 0).all()
            assert torch.equal(sample["target_image_augm"], uncropped[1])  # validation has no jitter
            continue
        cropped += 1
        assert (scale > 1).any()
        # The crop box back from the keypoint map: left + right = S - S / scale, right - left = shift * S.
        total, diff = SIZE - SIZE / scale, shift * SIZE
        left, right = np.rint((total - diff) / 2).astype(int), np.rint((total + diff) / 2).astype(int)
        box = (left[1], right[1], left[0], right[0])  # (top, bottom, left, right)
        expected = _resize(uncropped, SIZE, box)
        assert torch.equal(torch.cat([sample["input_images_augm"], sample["target_image_augm"][None]]), expected)
        assert torch.equal(sample["input_images_augm2"][0], expected[0])
    assert 6 <= cropped <= 18  # about half of 24
    # Each sample is a function of (seed, index) only: the global RNGs neither steer nor see it.
    first = val[5]
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    torch.manual_seed(123)
    np.random.seed(123)
    again = val[5]
    assert all(torch.equal(first[k], again[k]) for k in first if torch.is_tensor(first[k]))
    torch.set_rng_state(torch_state)
    np.random.set_state(np_state)


def test_training_still_crops(tmp_path):
    make_split(tmp_path, "train", 1)
    train = dataset(tmp_path, "train")
    assert any((train[i]["kp_scale"] != 1).any() for i in range(8))


def test_missing_landmark_file_is_found_at_construction(tmp_path):
    make_split(tmp_path, "val", 3)
    (tmp_path / "kp" / "id001#clip#0#3.npy").unlink()
    with pytest.raises(InputError, match=r"id001#clip#0#3\.npy: landmark file .* not found"):
        dataset(tmp_path, "val")
    with pytest.raises(InputError, match="dataset folder not found"):
        dataset(tmp_path, "train")
