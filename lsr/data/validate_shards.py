"""Check exported tfrecord shards: reads every record of every shard, then reports corrupt
shards by name, and missing or duplicated shard indices.

  python -m lsr.data.validate_shards \
      --dataset_parent_dir=_datasets/preprocessed_voxceleb2/tfrecords \
      --shards_pattern='vox2_dev*.tfrecords'

Exits with status 1 when a shard is corrupt or missing. (The original's tools/validate_shards.py
only summarised cluster log files from hard-coded paths.)
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import sys

import tensorflow as tf
from absl import flags

from common.errors import InputError, cli_main
from common.progress import progress
from lsr.data.voxceleb_data_provider import read_tfrecord

FLAGS = flags.FlagValues()
flags.DEFINE_string(
    "dataset_parent_dir",
    "_datasets/preprocessed_voxceleb2/tfrecords",
    "Directory of the tfrecord shards.",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "shards_pattern", "vox2_dev*.tfrecords", "Glob of the shards inside --dataset_parent_dir.", flag_values=FLAGS
)

_SHARD_NAME = re.compile(r"-part-(\d+)-of-(\d+)\.tfrecords$")


@dataclasses.dataclass
class ShardReport:
    num_examples: int = 0
    corrupt: dict = dataclasses.field(default_factory=dict)  # file name -> reason
    missing: list = dataclasses.field(default_factory=list)  # shard indices
    duplicated: list = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.corrupt or self.missing)


def check_shard(path) -> int:
    """Number of records of a shard; raises tf.errors.OpError if a record cannot be read."""
    count = 0
    for serialized in tf.data.TFRecordDataset(path):
        record = read_tfrecord(serialized)
        if record["rgbs"].shape.rank != 3 or record["segmaps"].shape.rank != 2:
            raise tf.errors.InvalidArgumentError(None, None, "unexpected tensor ranks")
        count += 1
    return count


def validate_shards(paths) -> ShardReport:
    report, seen = ShardReport(), {}
    for path in progress(sorted(paths), desc="shards"):
        name = os.path.basename(path)
        try:
            report.num_examples += check_shard(path)
        except tf.errors.OpError as exc:
            report.corrupt[name] = (exc.message or type(exc).__name__).splitlines()[0]
        match = _SHARD_NAME.search(name)
        if match:
            index, total = int(match.group(1)), int(match.group(2))
            seen.setdefault(total, []).append(index)
    for total, indices in seen.items():
        report.missing += sorted(set(range(total)) - set(indices))
        report.duplicated += sorted({i for i in indices if indices.count(i) > 1})
    return report


@cli_main
def main(argv=None) -> int:
    try:
        FLAGS(sys.argv if argv is None else argv)
    except flags.Error as exc:
        raise InputError(str(exc)) from None
    pattern = os.path.join(FLAGS.dataset_parent_dir, FLAGS.shards_pattern)
    paths = glob.glob(pattern)
    if not paths:
        raise InputError(f"{pattern}: matches no shards")
    report = validate_shards(paths)
    for name, reason in sorted(report.corrupt.items()):
        print(f"corrupt: {name}: {reason}")
    for index in report.missing:
        print(f"missing: shard #{index}")
    for index in report.duplicated:
        print(f"duplicated: shard #{index}")
    print(f"{len(paths) - len(report.corrupt)}/{len(paths)} shards valid, {report.num_examples} examples in them")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
