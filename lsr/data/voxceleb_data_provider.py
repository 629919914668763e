"""Training / evaluation pipeline over the exported tfrecords.

Each record holds n frames side by side. Training draws a random order of the n frames: the
first K are the few-shot inputs and the last one the target; evaluation takes frames 0..K-1
and frame n-1. Images come out as float32 in [-1, 1], label maps as uint8.
"""

from __future__ import annotations

import glob

import tensorflow as tf

from common.errors import InputError
from lsr.data.frames import (
    CONTOURS_KEY,
    FRAMES_KEY,
    PERSON_ID_KEY,
    SEGMAPS_KEY,
    TARGET_CONTOUR_KEY,
    TARGET_FRAME_KEY,
    TARGET_SEGMAP_KEY,
    VIDEO_ID_KEY,
    VIDEO_PART_ID_KEY,
)

SHUFFLE_BUFFER_SIZE = 2048
STRING_FEATURES = ("rgbs", "contours", "segmaps", "person_id", "video_id", "video_part_id", "frame_ids")


def read_tfrecord(serialized):
    """One record -> rgbs/contours uint8 [H, n·W, 3], segmaps uint8 [H, n·W], frame_ids
    string [n] and the three id strings."""
    parsed = tf.io.parse_single_example(
        serialized, {key: tf.io.FixedLenFeature((), tf.string) for key in STRING_FEATURES}
    )
    record = {key: parsed[key] for key in (PERSON_ID_KEY, VIDEO_ID_KEY, VIDEO_PART_ID_KEY)}
    for key in ("rgbs", "contours", "segmaps"):
        record[key] = tf.io.parse_tensor(parsed[key], tf.uint8)
    record["frame_ids"] = tf.io.parse_tensor(parsed["frame_ids"], tf.string)
    return record


def _split_frames(strip, num_frames):
    """[H, n·W, ...] -> [n, H, W, ...]."""
    return tf.stack(tf.split(strip, num_frames, axis=1))


def _to_model_range(images):
    return tf.cast(images, tf.float32) * 2.0 / 255.0 - 1.0


def few_shot_example(record, k, num_frames, use_segmaps, randomize, seed=None):
    """K input frames and one target from a record, keyed like every LSR provider."""
    if randomize:
        order = tf.random.shuffle(tf.range(num_frames), seed=seed)
    else:
        order = tf.range(num_frames)
    shots, target = order[:k], order[-1]
    example = {key: record[key] for key in (PERSON_ID_KEY, VIDEO_ID_KEY, VIDEO_PART_ID_KEY)}
    kinds = [("rgbs", FRAMES_KEY, TARGET_FRAME_KEY), ("contours", CONTOURS_KEY, TARGET_CONTOUR_KEY)]
    if use_segmaps:
        kinds.append(("segmaps", SEGMAPS_KEY, TARGET_SEGMAP_KEY))
    for source, shots_key, target_key in kinds:
        frames = _split_frames(record[source], num_frames)
        if source != "segmaps":
            frames = _to_model_range(frames)
        example[shots_key] = tf.gather(frames, shots)
        example[target_key] = frames[target]
    return example


def provide_tfrecords(
    data_source_pattern,
    use_segmaps,
    batch_size,
    k_frames=8,
    num_concatenations=10,
    is_training=False,
    repeat=1,
    max_examples=-1,
    shuffle=False,
    seed=None,
):
    """Batched few-shot examples from the tfrecords matching `data_source_pattern`.

    `is_training` shuffles the records and the frame order; `shuffle` shuffles records only;
    `repeat` (-1: forever) or `max_examples` (not both); incomplete final batches are dropped.
    """
    if repeat != 1 and max_examples != -1:
        raise InputError("set only one of repeat and max_examples")
    if not 0 < k_frames <= num_concatenations:
        raise InputError(
            f"K={k_frames} must be between 1 and {num_concatenations} (each record holds {num_concatenations} frames)"
        )
    paths = sorted(glob.glob(data_source_pattern))
    if not paths:
        raise InputError(f"{data_source_pattern}: matches no tfrecord files")
    options = tf.data.Options()
    # Every replica reads every file, as the original (the strategy splits batches instead).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    dataset = tf.data.TFRecordDataset(paths).with_options(options)
    if is_training or shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER_SIZE, seed=seed)
    # Only one of the two is set (checked above); take(-1) keeps every example.
    dataset = dataset.repeat(repeat) if repeat != 1 else dataset.take(max_examples)
    dataset = dataset.map(read_tfrecord, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(
        lambda record: few_shot_example(record, k_frames, num_concatenations, use_segmaps, is_training, seed),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
