"""Training logs: a CSV file a script can read and TensorBoard event files, without TensorFlow."""

from __future__ import annotations

import csv
import sys
import types
from collections.abc import Mapping
from pathlib import Path


class RunLog:
    """`<run>/<csv_name>` (appended on resume; columns split, it, name, value) and TensorBoard
    events in `<run>/tensorboard/`, one scalar per value, tagged `<split>/<name>`."""

    def __init__(self, run_dir: str | Path, csv_name: str = "log.csv"):
        # TensorBoard's own switch to its TensorFlow-free stub, which writes the same event files;
        # without it the writer imports TensorFlow whenever it is installed (seconds, and it cannot
        # share a process with the `tfrecord` package).
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
        from torch.utils.tensorboard import SummaryWriter

        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = run_dir / csv_name
        self.tensorboard = SummaryWriter(str(run_dir / "tensorboard"))

    def scalars(self, split: str, it: int, values: Mapping[str, float]) -> None:
        """Log every entry of `values` (an `it` entry among them is the step, not a value)."""
        new = not self.csv_path.exists()
        with self.csv_path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["split", "it", "name", "value"])
            for name, value in values.items():
                if name != "it":
                    writer.writerow([split, it, name, value])
                    self.tensorboard.add_scalar(f"{split}/{name}", value, it)

    def close(self) -> None:
        self.tensorboard.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
