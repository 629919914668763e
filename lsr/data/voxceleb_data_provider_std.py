"""Source/driver pipeline over processed-subject PNG folders: for each pair of folders, K
frames of the source (train) folder are the inputs of every frame of the driver (test) folder.

Evaluation pairs sorted train and test folders by position; inference and fine-tuning pass
one folder as both or a source and a driver (`same_video_eval=False` allows other subjects).
"""

from __future__ import annotations

import glob

import numpy as np
import tensorflow as tf

from common.errors import InputError
from lsr.data import frames as F
from lsr.data.voxceleb_data_provider_raw import example_from_frames, finish, frame_spec, read_frames


def _pick(num_frames, count, randomize, rng):
    """`count` frame indices: random distinct ones, or evenly spaced (linspace, no endpoint)."""
    if count < 0:
        return np.arange(num_frames)
    if randomize:
        return rng.permutation(num_frames)[:count]
    return np.linspace(0, num_frames, count, endpoint=False, dtype=int)


def paired_folders(train_pattern, test_pattern) -> list[tuple[str, str]]:
    """Sorted train and test folders paired by position (the counts must match)."""
    train, test = sorted(glob.glob(train_pattern)), sorted(glob.glob(test_pattern))
    if not train or not test:
        missing = test_pattern if train else train_pattern
        raise InputError(f"{missing}: subject folder not found")
    if len(train) != len(test):
        raise InputError(
            f"{len(train)} source folders ({train_pattern}) but {len(test)} driver folders ({test_pattern})"
        )
    return list(zip(train, test))


def provide_folder_pairs(
    train_data_source_pattern,
    test_data_source_pattern,
    use_segmaps,
    batch_size,
    k_frames=4,
    max_frames=-1,
    is_training=False,
    repeat=1,
    max_examples=-1,
    same_video_eval=True,
    randomize_frames=False,
    shuffle=False,
    seed=None,
    frame_shape=F.FRAME_SIZE,
):
    """Batched examples: per folder pair, one per driver frame (or `max_frames` evenly spaced
    ones), all sharing the same K source frames (random ones with `randomize_frames`)."""
    if repeat != 1 and max_examples != -1:
        raise InputError("set only one of repeat and max_examples")
    pairs = []
    for source, driver in paired_folders(train_data_source_pattern, test_data_source_pattern):
        if same_video_eval and F.subject_ids(source)[:2] != F.subject_ids(driver)[:2]:
            raise InputError(f"{source} and {driver} are not the same person and video")
        source_files, driver_files = F.list_frames(source, use_segmaps), F.list_frames(driver, use_segmaps)
        for folder, files, needed in ((source, source_files, k_frames), (driver, driver_files, max_frames)):
            F.check_frame_size(files, frame_shape)
            if len(files[0]) < needed:
                raise InputError(f"{folder}: {len(files[0])} frames, fewer than {needed}")
        pairs.append((source_files, driver, driver_files))
    rng = np.random.RandomState(seed)

    def examples():
        for source_files, driver, driver_files in pairs:
            shots = read_frames(source_files, _pick(len(source_files[0]), k_frames, randomize_frames, rng), frame_shape)
            targets = read_frames(driver_files, _pick(len(driver_files[0]), max_frames, False, rng), frame_shape)
            for i in range(len(targets[0])):
                yield example_from_frames(driver, shots, [x[i] for x in targets])

    dataset = tf.data.Dataset.from_generator(examples, output_signature=frame_spec(k_frames, frame_shape))
    return finish(dataset, batch_size, is_training or shuffle, repeat, max_examples, seed)
