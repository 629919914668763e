"""Export processed VoxCeleb2 folders to the training tfrecords.

  python -m lsr.data.export_voxceleb_to_tfrecords \
      --dataset_parent_dir=_datasets/preprocessed_voxceleb2 \
      --output_parent_dir=_datasets/preprocessed_voxceleb2/tfrecords --subset=dev --num_shards=1000

One example per <subset>/<person>/<video>/<part> folder holding at least --num_frames_per_video
frames (others are skipped): the first that many sorted frames of each kind side by side.
Features (bytes, one value each): rgbs / contours = serialised uint8 [224, 224·n, 3], segmaps =
serialised uint8 [224, 224·n], person_id / video_id / video_part_id = UTF-8, frame_ids =
serialised string [n]. Examples go round-robin to vox2_<subset>-part-%03d-of-%03d.tfrecords.
"""

from __future__ import annotations

import glob
import os
import sys

import numpy as np
import tensorflow as tf
from absl import flags

from common.errors import InputError, cli_main
from common.progress import get_logger, progress
from lsr.data.frames import FRAME_SIZE, list_frames, read_label_map, read_rgb, subject_ids

# The exporter's own flag set: its --video_pattern would clash with lsr.options' one.
FLAGS = flags.FlagValues()
flags.DEFINE_string(
    "dataset_parent_dir",
    "_datasets/preprocessed_voxceleb2",
    "Parent of the <subset> folders of processed subjects.",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "output_parent_dir",
    "_datasets/preprocessed_voxceleb2/tfrecords",
    "Directory for the tfrecord shards.",
    flag_values=FLAGS,
)
flags.DEFINE_string("person_pattern", "*", "Glob of the person folders.", flag_values=FLAGS)
flags.DEFINE_string("video_pattern", "*", "Glob of the video folders.", flag_values=FLAGS)
flags.DEFINE_string("video_part_pattern", "*", "Glob of the video part folders.", flag_values=FLAGS)
flags.DEFINE_integer("num_frames_per_video", 10, "Frames concatenated into each example.", flag_values=FLAGS)
flags.DEFINE_string("subset", "dev", "Subset folder and file name part: dev or test.", flag_values=FLAGS)
flags.DEFINE_integer("num_shards", 1000, "Output shards (the authors: 1000 for dev, 10 for test).", flag_values=FLAGS)

EXPORT_GLOBS = ("*_rgb.png", "*_contour.png", "*_segmap_merged.png")
log = get_logger("export_voxceleb_to_tfrecords")


def shard_path(output_parent_dir, subset, index, num_shards) -> str:
    return os.path.join(output_parent_dir, f"vox2_{subset}-part-%03d-of-%03d.tfrecords" % (index, num_shards))


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _serialize(array) -> bytes:
    return tf.io.serialize_tensor(array).numpy()


def build_example(part_dir, num_frames, frame_size=FRAME_SIZE) -> bytes:
    """The serialised tf.train.Example of one folder's first `num_frames` frames.

    Frames are checked against `frame_size` (LSR's 224 x 224 unless asked otherwise).
    """
    rgbs, contours, segmaps = (files[:num_frames] for files in list_frames(part_dir, globs=EXPORT_GLOBS))
    person_id, video_id, video_part_id = subject_ids(part_dir)
    # The original takes the token before the last '_' of the segmap names, which is the
    # literal 'segmap' for NNNNN_segmap_merged.png; kept so the records match its files.
    frame_ids = [os.path.basename(path).split("_")[-2] for path in segmaps]
    features = {
        "rgbs": _serialize(np.concatenate([read_rgb(p, frame_size) for p in rgbs], axis=1)),
        "contours": _serialize(np.concatenate([read_rgb(p, frame_size) for p in contours], axis=1)),
        "segmaps": _serialize(np.concatenate([read_label_map(p, frame_size) for p in segmaps], axis=1)),
        "person_id": person_id.encode(),
        "video_id": video_id.encode(),
        "video_part_id": video_part_id.encode(),
        "frame_ids": _serialize(tf.constant(frame_ids, tf.string)),
    }
    example = tf.train.Example(
        features=tf.train.Features(feature={key: _bytes_feature(value) for key, value in features.items()})
    )
    return example.SerializeToString()


def exportable_folders(pattern, num_frames) -> list[str]:
    """Sorted folders matching `pattern` with at least `num_frames` frames; the rest are logged."""
    folders = sorted(p for p in glob.glob(pattern) if os.path.isdir(p))
    if not folders:
        raise InputError(f"{pattern}: matches no processed-subject folders")
    kept = []
    for folder in folders:
        count = len(list_frames(folder, globs=EXPORT_GLOBS)[0])
        if count < num_frames:
            log.info("skipping %s: %d frames, fewer than %d", folder, count, num_frames)
        else:
            kept.append(folder)
    return kept


def export_voxceleb_to_tfrecords(
    raw_data_source, output_parent_dir, subset, num_shards, num_frames_per_video=10, frame_size=FRAME_SIZE
) -> list[str]:
    """Write every shard (example i to shard i mod num_shards); returns the shard paths."""
    if num_shards < 1:
        raise InputError(f"--num_shards={num_shards} must be positive")
    folders = exportable_folders(raw_data_source, num_frames_per_video)
    os.makedirs(output_parent_dir, exist_ok=True)
    paths = []
    for index in progress(range(num_shards), desc="shards"):
        path = shard_path(output_parent_dir, subset, index, num_shards)
        # Renamed when complete: an interrupted export leaves no valid-looking shard.
        tmp = f"{path}.tmp"
        with tf.io.TFRecordWriter(tmp) as writer:
            for folder in folders[index::num_shards]:
                writer.write(build_example(folder, num_frames_per_video, frame_size))
        os.replace(tmp, path)
        paths.append(path)
    log.info("wrote %d examples to %d shards in %s", len(folders), num_shards, output_parent_dir)
    return paths


@cli_main
def main(argv=None):
    try:
        FLAGS(sys.argv if argv is None else argv)
    except flags.Error as exc:
        raise InputError(str(exc)) from None
    subset_dir = os.path.join(FLAGS.dataset_parent_dir, FLAGS.subset)
    if not os.path.isdir(subset_dir):
        raise InputError(f"{subset_dir}: subset folder not found")
    pattern = os.path.join(subset_dir, FLAGS.person_pattern, FLAGS.video_pattern, FLAGS.video_part_pattern)
    export_voxceleb_to_tfrecords(
        pattern, FLAGS.output_parent_dir, FLAGS.subset, FLAGS.num_shards, FLAGS.num_frames_per_video
    )


if __name__ == "__main__":
    main()
