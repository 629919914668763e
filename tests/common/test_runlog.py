"""common.runlog: CSV rows and TensorBoard events, with TensorFlow never imported."""

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Writes two logs into the same run folder (a resumed run), reads the event files back with
# TensorBoard's protobuf classes and reports whether TensorFlow was imported.
SCRIPT = """
import struct, sys
from pathlib import Path
from common.runlog import RunLog
run = Path(sys.argv[1])
with RunLog(run) as log:
    log.scalars('train', 0, {'it': 0, 'loss': 1.5, 'lr': 1e-4})
with RunLog(run) as log:
    log.scalars('val', 10, {'psnr': 21.0})
from tensorboard.compat.proto.event_pb2 import Event
tags = []
for path in sorted((run / 'tensorboard').glob('events.out.tfevents.*')):
    data = path.read_bytes()
    while data:
        length = struct.unpack('<Q', data[:8])[0]
        event = Event.FromString(data[12:12 + length])
        tags += [(v.tag, event.step, round(v.simple_value, 6)) for v in event.summary.value]
        data = data[16 + length:]
print(sorted(tags))
print('tensorflow' in sys.modules)
"""


def test_csv_and_tensorboard_events_without_tensorflow(tmp_path):
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    tags, tensorflow_loaded = result.stdout.strip().splitlines()
    assert tags == "[('train/loss', 0, 1.5), ('train/lr', 0, 0.0001), ('val/psnr', 10, 21.0)]"
    assert tensorflow_loaded == "False"
    with (tmp_path / "log.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["split", "it", "name", "value"],
        ["train", "0", "loss", "1.5"],
        ["train", "0", "lr", "0.0001"],
        ["val", "10", "psnr", "21.0"],
    ]
