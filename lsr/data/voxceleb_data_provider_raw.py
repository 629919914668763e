"""Few-shot pipeline over processed-subject PNG folders: one example (K inputs + a target)
per folder. Inference uses it for the K source frames (`max_sequence_frames=K`)."""

from __future__ import annotations

import glob

import numpy as np
import tensorflow as tf

from common.errors import InputError
from lsr.data import frames as F

SHUFFLE_BUFFER_SIZE = 256


def frame_spec(k, frame_shape=F.FRAME_SIZE) -> dict:
    """tf.TensorSpec of each key of a few-shot example (K inputs and one target)."""
    h, w = frame_shape
    string = tf.TensorSpec((), tf.string)
    return {
        F.PERSON_ID_KEY: string,
        F.VIDEO_ID_KEY: string,
        F.VIDEO_PART_ID_KEY: string,
        F.FRAMES_KEY: tf.TensorSpec((k, h, w, 3), tf.float32),
        F.TARGET_FRAME_KEY: tf.TensorSpec((h, w, 3), tf.float32),
        F.CONTOURS_KEY: tf.TensorSpec((k, h, w, 3), tf.float32),
        F.TARGET_CONTOUR_KEY: tf.TensorSpec((h, w, 3), tf.float32),
        F.SEGMAPS_KEY: tf.TensorSpec((k, h, w), tf.uint8),
        F.TARGET_SEGMAP_KEY: tf.TensorSpec((h, w), tf.uint8),
    }


def read_frames(files, indices, frame_shape=F.FRAME_SIZE):
    """(rgbs, contours, segmaps) of the frames at `indices` of `list_frames` output; images
    in [-1, 1], label maps uint8 (zeros without segmap files)."""
    rgbs = np.stack([F.read_rgb(files[0][i], frame_shape) for i in indices])
    contours = np.stack([F.read_rgb(files[1][i], frame_shape) for i in indices])
    if len(files) > 2:
        segmaps = np.stack([F.read_label_map(files[2][i], frame_shape) for i in indices])
    else:
        segmaps = np.zeros(rgbs.shape[:3], np.uint8)
    return F.to_model_range(rgbs), F.to_model_range(contours), segmaps


def example_from_frames(part_dir, shots, target):
    """Dictionary of one example from (rgbs, contours, segmaps) stacks of inputs and target."""
    person_id, video_id, video_part_id = F.subject_ids(part_dir)
    return {
        F.PERSON_ID_KEY: person_id,
        F.VIDEO_ID_KEY: video_id,
        F.VIDEO_PART_ID_KEY: video_part_id,
        F.FRAMES_KEY: shots[0],
        F.TARGET_FRAME_KEY: target[0],
        F.CONTOURS_KEY: shots[1],
        F.TARGET_CONTOUR_KEY: target[1],
        F.SEGMAPS_KEY: shots[2],
        F.TARGET_SEGMAP_KEY: target[2],
    }


def pick_frames(num_frames, k, randomize, max_sequence_frames, rng):
    """Indices of the K inputs followed by the target.

    `max_sequence_frames` first keeps that many evenly spaced frames (linspace, no endpoint).
    Random: K+1 distinct frames. Fixed: frames 0..K, or 0..K-1 and the last when only K remain.
    """
    candidates = np.arange(num_frames)
    if max_sequence_frames > 0:
        candidates = np.linspace(0, num_frames, max_sequence_frames, endpoint=False, dtype=int)
    if randomize:
        # With exactly K candidates the target repeats one of the inputs, as in the original.
        order = rng.permutation(candidates)[: k + 1]
        return order[:k], order[-1]
    return candidates[:k], candidates[k] if len(candidates) > k else candidates[-1]


def _folders(pattern):
    folders = sorted(glob.glob(pattern))
    if not folders:
        raise InputError(f"{pattern}: subject folder not found")
    return folders


def provide_subject_folders(
    data_source_pattern,
    use_segmaps,
    batch_size,
    k_frames=8,
    is_training=False,
    repeat=1,
    max_examples=-1,
    max_sequence_frames=-1,
    shuffle=False,
    seed=None,
    frame_shape=F.FRAME_SIZE,
):
    """Batched few-shot examples, one per folder matching `data_source_pattern`.

    Folders are checked up front (frame counts, paired files), so bad input fails here with
    a one-line error instead of inside the pipeline.
    """
    if repeat != 1 and max_examples != -1:
        raise InputError("set only one of repeat and max_examples")
    if 0 < max_sequence_frames < k_frames:
        raise InputError(f"max_sequence_frames={max_sequence_frames} is smaller than K={k_frames}")
    listed = []
    for folder in _folders(data_source_pattern):
        files = F.list_frames(folder, use_segmaps)
        F.check_frame_size(files, frame_shape)
        needed = max(k_frames, max_sequence_frames)
        if len(files[0]) < needed:
            raise InputError(
                f"{folder}: {len(files[0])} frames, fewer than the {needed} needed "
                f"(K={k_frames}, max_sequence_frames={max_sequence_frames})"
            )
        listed.append((folder, files))
    rng = np.random.RandomState(seed)

    def examples():
        for folder, files in listed:
            shots, target = pick_frames(len(files[0]), k_frames, is_training, max_sequence_frames, rng)
            yield example_from_frames(
                folder,
                read_frames(files, shots, frame_shape),
                [x[0] for x in read_frames(files, [target], frame_shape)],
            )

    dataset = tf.data.Dataset.from_generator(examples, output_signature=frame_spec(k_frames, frame_shape))
    return finish(dataset, batch_size, is_training or shuffle, repeat, max_examples, seed)


def finish(dataset, batch_size, shuffle, repeat, max_examples, seed, buffer_size=SHUFFLE_BUFFER_SIZE):
    """Shuffle, repeat (-1: forever) or take, batch (dropping a partial batch) and prefetch."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    dataset = dataset.with_options(options)
    if shuffle:
        dataset = dataset.shuffle(buffer_size, seed=seed)
    # Only one of the two is set (checked above); take(-1) keeps every example.
    dataset = dataset.repeat(repeat) if repeat != 1 else dataset.take(max_examples)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
