"""The vox training data: videos (mp4 or frame folders) plus 68-point landmark files.

Layout: `data_path/train/<id>#<video>#....mp4` (or a folder of frames with that name) and
`data_path/val/...`; `kp_path/<name up to the first '.'>.npy` holds float [T, 68, 2] landmarks
in 256-pixel units (x, y), as written by `fsrt.extract_keypoints`. Landmarks only steer the crop
augmentations; the model's keypoints come from the KPDetector at training time.

Every sample is a pure function of (seed, sample number): its random draws come from a
generator seeded with both. `StepSampler` makes the sample numbers a pure function of (seed,
step, process, number of processes), so a resumed run sees the same stream of data.
"""

from __future__ import annotations

import os
from itertools import islice
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common.errors import InputError
from common.video import iter_frames
from fsrt.augmentation import color_jitter, jitter_factors
from fsrt.model import pixel_grid

_VIDEO_SUFFIXES = (".mp4", ".mov", ".gif")
_SHUFFLE = 0x5EED  # seed entry of the epoch permutations


def _list_videos(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{folder}: dataset folder not found (expected data_path/train and data_path/val)")
    videos = sorted(p for p in folder.iterdir() if p.is_dir() or p.suffix.lower() in _VIDEO_SUFFIXES)
    if not videos:
        raise InputError(f"{folder}: no videos (.mp4) or frame folders")
    return videos


def _resize(images: torch.Tensor, size: int, box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """Crop [N, 3, H, W] to box = (top, bottom, left, right) pixels removed, then bilinear to size²."""
    if box is not None:
        top, bottom, left, right = box
        images = images[..., top : images.shape[-2] - bottom, left : images.shape[-1] - right]
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


class VoxDataset(torch.utils.data.Dataset):
    """Training or validation samples with the original's keys (fact sheet §9.6).

    `mode='val'` reads `data_path/val` (the original read the val names under `train/`, a bug),
    uses no augmentation and takes every video once; training items are identities (the name
    before the first '#'), each repeated 10000 times per epoch.
    """

    def __init__(
        self,
        data_path,
        kp_path,
        mode: str = "train",
        num_src: int = 1,
        num_pixels: int = 16384,
        num_pixels_phase1: int = 4096,
        image_subsampling: bool = True,
        simulate_out_of_frame_motion: bool = True,
        augmentation_params: dict | None = None,
        phase1: bool = True,
        frame_size: int = 256,
        seed: int = 0,
        **_unused,
    ):
        self.is_train = mode == "train"
        self.root = Path(data_path) / ("train" if self.is_train else "val")
        self.kp_path = Path(kp_path)
        self.num_src, self.phase1, self.size, self.seed = num_src, phase1, frame_size, seed
        self.num_pixels, self.num_pixels_phase1 = num_pixels, num_pixels_phase1
        self.image_subsampling = image_subsampling
        self.simulate_out_of_frame_motion = simulate_out_of_frame_motion  # validation crops too, as the original
        params = augmentation_params or {}
        self.flip = self.is_train and params.get("flip_param", {}).get("horizontal_flip", False)
        self.jitter = params.get("jitter_param") if self.is_train else None
        if image_subsampling:
            side = int(round(num_pixels**0.5))
            if side * side != num_pixels or frame_size % side:
                raise InputError(
                    f"image_subsampling needs num_pixels = n² with {frame_size} a multiple of n, "
                    f"got num_pixels {num_pixels}"
                )
            self.stride = frame_size // side
        videos = _list_videos(self.root)
        if self.is_train:
            groups: dict[str, list[Path]] = {}
            for video in videos:
                groups.setdefault(video.name.split("#")[0], []).append(video)
            self.items = list(groups.values())
        else:
            self.items = [[video] for video in videos]
        landmarks = set(os.listdir(self.kp_path)) if self.kp_path.is_dir() else set()
        missing = [v for v in videos if v.name.split(".")[0] + ".npy" not in landmarks]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise InputError(
                f"{self._landmark_path(missing[0])}: landmark file of {missing[0]} not found{more} "
                "(run fsrt.extract_keypoints)"
            )
        self.grid = pixel_grid(frame_size, frame_size)

    def __len__(self) -> int:
        return len(self.items) * (10000 if self.is_train else 1)

    def _landmark_path(self, video: Path) -> Path:
        return self.kp_path / (video.name.split(".")[0] + ".npy")

    def _landmarks(self, video: Path) -> np.ndarray:
        return np.load(self._landmark_path(video)).astype(np.float32)

    def _pick(self, index: int, rng: np.random.Generator):
        """Video frames [S+1, 3, H, W] and landmarks [S+1, 68, 2]; skips frames without a face."""
        item = self.items[index % len(self.items)]
        for attempt in range(len(self.items) * 4):
            group = self.items[(index + attempt) % len(self.items)] if attempt else item
            video = group[rng.integers(len(group))] if self.is_train else group[0]
            landmarks = self._landmarks(video)
            picks = rng.integers(len(landmarks), size=self.num_src + 1)
            if (landmarks[picks].mean(axis=(1, 2)) != 0).all():
                wanted = sorted(set(picks.tolist()))  # decoding stops after the last one
                frames = [f for i, f in enumerate(islice(iter_frames(video), wanted[-1] + 1)) if i in wanted]
                by_index = dict(zip(wanted, frames))
                clip = np.stack([by_index[i] for i in picks.tolist()])
                return torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255, landmarks[picks]
        raise InputError(f"{self.root}: no frames with landmarks found")

    def _out_of_frame_crop(self, landmarks: np.ndarray, rng: np.random.Generator):
        """Crop (top, bottom, left, right) in frame pixels leaving the enlarged source face box
        inside, with the keypoint map (shift, scale) from uncropped to cropped coordinates."""
        lm = landmarks[: self.num_src]
        width, height = np.ptp(lm[..., 0]), np.ptp(lm[..., 1])
        min_x = np.rint(max(0, lm[..., 0].min() - np.rint(0.2 * width)))
        max_x = np.rint(min(255, lm[..., 0].max() + np.rint(0.2 * width)))
        min_y = np.rint(max(0, lm[..., 1].min() - np.rint(0.5 * height)))
        max_y = np.rint(min(255, lm[..., 1].max() + np.rint(0.15 * height)))

        def draw(limit) -> int:
            return int(rng.integers(limit)) if limit > 0 else 0

        factor = self.size / 256  # landmarks are in 256-px units
        while True:
            amounts = [draw(int(min_y)), draw(256 - int(max_y) - 1), draw(int(min_x)), draw(256 - int(max_x) - 1)]
            top, bottom, left, right = (int(np.rint(a * factor)) for a in amounts)
            shift = np.array([(right - left) / self.size, (bottom - top) / self.size], np.float32)
            scale = np.array(
                [self.size / (self.size - left - right), self.size / (self.size - top - bottom)], np.float32
            )
            # Image corners must land inside [-2, 2] after the keypoint map.
            if (np.abs(np.stack([(-1 + shift) * scale, (1 + shift) * scale])) <= 2).all():
                return (top, bottom, left, right), shift, scale

    def _expression_crop(self, landmarks: np.ndarray, rng: np.random.Generator):
        """Random crop around the driving face box (25 % extra height above, 5 % below)."""
        lm, side = landmarks[self.num_src], 256
        height = np.ptp(lm[..., 1])
        top = max(lm[..., 1].min() - np.rint(0.25 * height), 0)
        bottom = min(lm[..., 1].max() + np.rint(0.05 * height), side - 1)
        left, right = max(lm[..., 0].min(), 0), min(lm[..., 0].max(), side - 1)
        amounts = [
            int(rng.integers(int(top))) if int(top) > 0 else 0,
            int(rng.integers(side - int(bottom))) if int(bottom) < side else 0,
            int(rng.integers(int(left))) if int(left) > 0 else 0,
            int(rng.integers(side - int(right))) if int(right) < side else 0,
        ]
        box = tuple(int(np.rint(a * self.size / side)) for a in amounts)
        if box[0] + box[1] >= self.size or box[2] + box[3] >= self.size:
            return None  # degenerate landmarks: keep the whole frame
        return box

    def _targets(self, rng: np.random.Generator) -> dict:
        """Target pixel sets: random pixels (phase 1), a stride sub-grid with gradients plus
        the other sub-grids (later phases and validation), or random pixels plus the rest."""
        count = self.size * self.size
        grid = self.grid.reshape(count, 2)
        if self.phase1 and self.is_train:
            sampled = rng.choice(count, size=self.num_pixels_phase1, replace=count < self.num_pixels_phase1)
            remaining = np.zeros(0, np.int64)
        elif self.image_subsampling:
            index = np.arange(count).reshape(self.size, self.size)
            offset_y, offset_x = rng.integers(self.stride, size=2)
            sampled = index[offset_y :: self.stride, offset_x :: self.stride].reshape(-1)
            others = [
                index[y :: self.stride, x :: self.stride].reshape(-1)
                for x in range(self.stride)
                for y in range(self.stride)
                if (x, y) != (offset_x, offset_y)
            ]
            remaining = np.concatenate(others)
        else:
            order = rng.permutation(count)
            sampled, remaining = order[: self.num_pixels], order[self.num_pixels :]
        sampled, remaining = torch.from_numpy(sampled).long(), torch.from_numpy(remaining).long()
        return {
            "target_pos": grid[sampled],
            "remaining_pos": grid[remaining],
            "sampled_idxs": sampled,
            "remaining_idxs": remaining,
        }

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, index])
        clip, landmarks = self._pick(index, rng)
        clip = _resize(clip, self.size)
        if self.flip and rng.random() < 0.5:
            clip = clip.flip(-1)
            landmarks = landmarks.copy()
            landmarks[..., 0] = 255.0 - landmarks[..., 0]
        if self.jitter:
            augm, augm2, augm3 = (color_jitter(clip, *jitter_factors(rng, **self.jitter)) for _ in range(3))
        else:
            augm = augm2 = augm3 = clip
        box, shift, scale = None, np.zeros(2, np.float32), np.ones(2, np.float32)
        if self.simulate_out_of_frame_motion and rng.random() < 0.5:
            box, shift, scale = self._out_of_frame_crop(landmarks, rng)
        uncropped = augm2
        augm, augm2 = _resize(augm, self.size, box), _resize(augm2, self.size, box)
        crop = self._expression_crop(landmarks, rng)
        driving_crop = _resize(augm3[self.num_src :], self.size, crop)[0]
        s = self.num_src
        target = augm[s]
        sample = {
            "input_images_augm": augm[:s],
            "input_images_augm2": augm2[:s],
            "input_images_augm2_uncropped": uncropped[:s],
            "kp_scale": torch.from_numpy(scale),
            "kp_shift": torch.from_numpy(shift),
            "input_pos": self.grid.expand(s, -1, -1, -1),
            "target_image_augm": target,
            "target_image_augm2": augm2[s],
            "target_image_augm2_uncropped": uncropped[s],
            "target_image_augm3_crop": driving_crop,
            "sceneid": index % len(self.items),
        }
        sample.update(self._targets(rng))
        pixels = target.permute(1, 2, 0).reshape(-1, 3)
        sample["target_pixels_augm"] = pixels[sample["sampled_idxs"]] if self.phase1 and self.is_train else pixels
        return sample


class StepSampler(torch.utils.data.Sampler):
    """Sample numbers for one process from training step `start` on, shuffled like the original's
    `DistributedSampler(shuffle=True, drop_last=False)`.

    Epoch e is a permutation of all sample numbers seeded with (seed, e); it is padded with its
    own first entries to a multiple of the number of processes W, and process r takes every W-th
    entry from r on. Each process reads its shares of epochs 0, 1, ... as one stream, B per step
    (B = per-process batch), so step t takes stream positions t·B ... t·B + B − 1: the data are a
    function of (seed, step, process, W), and a resume continues them exactly. Unlike a
    DataLoader epoch, a batch may span the end of an epoch (every batch has B samples).
    """

    def __init__(self, length: int, batch_size: int, start: int = 0, rank: int = 0, world_size: int = 1, seed: int = 0):
        self.length, self.batch, self.start, self.rank, self.world = length, batch_size, start, rank, world_size
        self.seed = seed
        self.share = -(-length // world_size)  # samples per process and epoch

    def epoch(self, epoch: int) -> np.ndarray:
        """This process's sample numbers of `epoch`, in order."""
        # The third entry keeps these seeds apart from the per-sample ones (seed, sample number).
        order = np.random.default_rng([self.seed, epoch, _SHUFFLE]).permutation(self.length)
        return np.resize(order, self.share * self.world)[self.rank :: self.world]

    def __iter__(self):
        epoch, offset = divmod(self.start * self.batch, self.share)
        while True:
            yield from map(int, self.epoch(epoch)[offset:])
            epoch, offset = epoch + 1, 0


def get_dataset(mode: str, data_cfg: dict, **kwargs) -> VoxDataset:
    """The dataset named by `data.dataset` (only 'vox')."""
    if data_cfg["dataset"] != "vox":
        raise InputError(f"data.dataset: unknown dataset {data_cfg['dataset']!r} (only 'vox')")
    if not data_cfg["data_path"] or not data_cfg["kp_path"]:
        raise InputError("data.data_path and data.kp_path must be set in the config")
    if not os.path.isdir(data_cfg["kp_path"]):
        raise InputError(f"{data_cfg['kp_path']}: keypoint folder not found")
    return VoxDataset(mode=mode, **{**data_cfg, **kwargs})
