"""LSR data: processed-subject PNG folders, their tfrecord export and the input pipelines.

- `frames`: folder layout, image readers, example keys.
- `export_voxceleb_to_tfrecords`: the training tfrecords (CLI); `validate_shards`: checks them.
- `voxceleb_data_provider`: training/eval pipeline over the tfrecords.
- `voxceleb_data_provider_raw` / `voxceleb_data_provider_std`: PNG-folder pipelines for the
  K few-shot inputs and for (source, driver) folder pairs.
"""
