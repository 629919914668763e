"""LSR data: processed-subject PNG folders, their tfrecord export and the input pipelines.

- `frames`: folder layout, image readers, example keys.
- `export_voxceleb_to_tfrecords`: the training tfrecords (CLI); `validate_shards`: checks them.
- three input pipelines (the original's module names), each yielding batches of the same
  example dictionary (keys in `frames`); `provide(kind, ...)` is the one entry point `lsr.run`
  picks them with:

  - `'tfrecords'`: the exported tfrecords (training) ->
    `voxceleb_data_provider.provide_tfrecords`;
  - `'subject_folders'`: PNG subject folders, one example (K inputs + a target) each (the
    K-shot source of inference) -> `voxceleb_data_provider_raw.provide_subject_folders`;
  - `'folder_pairs'`: (source, driver) PNG folder pairs, one example per driver frame (eval,
    inference, subject fine-tuning) -> `voxceleb_data_provider_std.provide_folder_pairs`.

Importing this package does not import TensorFlow; `provide` loads the pipeline it runs.
"""

from __future__ import annotations

import importlib

from common.errors import InputError

PROVIDERS = {
    "tfrecords": ("voxceleb_data_provider", "provide_tfrecords"),
    "subject_folders": ("voxceleb_data_provider_raw", "provide_subject_folders"),
    "folder_pairs": ("voxceleb_data_provider_std", "provide_folder_pairs"),
}


def provider(kind: str):
    """The pipeline function of `kind` (a key of `PROVIDERS`)."""
    if kind not in PROVIDERS:
        raise InputError(f"unknown LSR data provider '{kind}'; choose one of {', '.join(PROVIDERS)}")
    module, name = PROVIDERS[kind]
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def provide(kind: str, *args, **kwargs):
    """The batched `tf.data.Dataset` of pipeline `kind`; the arguments are that function's."""
    return provider(kind)(*args, **kwargs)
