"""Meta-training episodes: `VoxCeleb` (the original's preprocessed layout or frame folders with
per-frame .npy landmarks), `EpisodeSampler` (resumable, shardable order) and landmark lookup."""

from fsth.dataset.voxceleb import EpisodeSampler, VoxCeleb, find_landmarks, landmark_image

__all__ = ["EpisodeSampler", "VoxCeleb", "find_landmarks", "landmark_image"]
