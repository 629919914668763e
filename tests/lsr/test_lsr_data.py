"""lsr.data: tfrecord export -> provider round trip, shard validation, PNG providers, the
`lsr.data.provide` entry point, errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tensorflow as tf

from common.errors import InputError
from common.image import write_image
from lsr import data as lsr_data
from lsr.data import export_voxceleb_to_tfrecords as export
from lsr.data import validate_shards, voxceleb_data_provider, voxceleb_data_provider_raw, voxceleb_data_provider_std

SIZE = 224


def _frames(astronaut, count, shift):
    """`count` real 224 px face crops, their 'landmark drawings' and 0..18 label maps."""
    rgbs = [
        astronaut[10 + 4 * i + shift : 10 + 4 * i + shift + SIZE, 140 + 3 * i : 140 + 3 * i + SIZE]
        for i in range(count)
    ]
    contours = [255 - rgb[:, ::-1] for rgb in rgbs]
    segmaps = [(rgb.mean(-1) // 14).astype(np.uint8) for rgb in rgbs]
    return rgbs, contours, segmaps


def _write_part(folder, astronaut, count, shift=0, kinds=("rgb", "contour", "segmap_merged")):
    rgbs, contours, segmaps = _frames(astronaut, count, shift)
    for i in range(count):
        images = (rgbs[i], contours[i], segmaps[i])
        for kind, image in zip(("rgb", "contour", "segmap_merged"), images):
            if kind in kinds:
                write_image(folder / f"{i:05d}_{kind}.png", image)
    return rgbs, contours, segmaps


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, astronaut):
    """dev/<person>/<video>/<part> folders: two with 11 frames, one with 4 (skipped)."""
    root = tmp_path_factory.mktemp("vox")
    parts = {
        "a": _write_part(root / "dev/id00017/OLguY5ofUrY/00039", astronaut, 11),
        "b": _write_part(root / "dev/id00061/mMOd25Ag7XY/00239", astronaut, 11, shift=30),
    }
    _write_part(root / "dev/id00081/vvLu_7TpP8c/00202", astronaut, 4)
    return root, parts


@pytest.fixture(scope="module")
def shards(dataset):
    root, _ = dataset
    export.main(
        [
            "export",
            f"--dataset_parent_dir={root}",
            f"--output_parent_dir={root / 'tfr'}",
            "--subset=dev",
            "--num_shards=2",
        ]
    )
    return root / "tfr"


def _to_uint8(x):
    """Back to the stored bytes: x·2/255 − 1 is off by float32 rounding only (< 1e-4 on the 0..255
    scale), far below the 0.5 that rint needs, so the comparisons after it are exact."""
    return np.rint((np.asarray(x) + 1) * 127.5).astype(np.uint8)


def test_export_writes_the_originals_features_round_robin(shards, dataset):
    _, parts = dataset
    names = sorted(p.name for p in shards.iterdir())
    assert names == ["vox2_dev-part-000-of-002.tfrecords", "vox2_dev-part-001-of-002.tfrecords"]
    for name, (key, person, video, part) in zip(
        names, (("a", "id00017", "OLguY5ofUrY", "00039"), ("b", "id00061", "mMOd25Ag7XY", "00239"))
    ):
        records = list(tf.data.TFRecordDataset(str(shards / name)))
        assert len(records) == 1  # the 4-frame folder is skipped
        example = tf.train.Example.FromString(records[0].numpy())
        assert sorted(example.features.feature) == sorted(voxceleb_data_provider.STRING_FEATURES)
        record = voxceleb_data_provider.read_tfrecord(records[0])
        rgbs, contours, segmaps = parts[key]
        np.testing.assert_array_equal(record["rgbs"], np.concatenate(rgbs[:10], axis=1))
        np.testing.assert_array_equal(record["contours"], np.concatenate(contours[:10], axis=1))
        np.testing.assert_array_equal(record["segmaps"], np.concatenate(segmaps[:10], axis=1))
        assert record["rgbs"].dtype == tf.uint8 and record["segmaps"].shape == (SIZE, 10 * SIZE)
        assert [record[k].numpy().decode() for k in ("person_id", "video_id", "video_part_id")] == [person, video, part]
        assert record["frame_ids"].numpy().tolist() == [b"segmap"] * 10  # as the original writes


def test_provider_reads_the_export_back_bit_exact(shards, dataset):
    _, parts = dataset
    batches = list(
        voxceleb_data_provider.provide_tfrecords(
            str(shards / "vox2_dev*.tfrecords"), use_segmaps=True, batch_size=1, k_frames=4
        )
    )
    assert len(batches) == 2
    for batch, key in zip(batches, ("a", "b")):
        rgbs, contours, segmaps = parts[key]
        assert batch["frames_in"].dtype == tf.float32
        assert batch["frames_in"].shape == (1, 4, SIZE, SIZE, 3)
        np.testing.assert_array_equal(_to_uint8(batch["frames_in"][0]), np.stack(rgbs[:4]))
        np.testing.assert_array_equal(_to_uint8(batch["frame_gt"][0]), rgbs[9])
        np.testing.assert_array_equal(_to_uint8(batch["contours_in"][0]), np.stack(contours[:4]))
        np.testing.assert_array_equal(_to_uint8(batch["contour_gt"][0]), contours[9])
        np.testing.assert_array_equal(batch["segmaps_in"][0], np.stack(segmaps[:4]))
        np.testing.assert_array_equal(batch["segmap_gt"][0], segmaps[9])


def test_training_draws_distinct_frames_consistently_across_kinds(shards, dataset):
    _, parts = dataset
    batch = next(
        iter(
            voxceleb_data_provider.provide_tfrecords(
                str(shards / "vox2_dev-part-000*"), use_segmaps=True, batch_size=1, k_frames=4, is_training=True, seed=7
            )
        )
    )
    rgbs, contours, segmaps = parts["a"]
    picked = []
    for rgb, contour, segmap in zip(
        [*batch["frames_in"][0], batch["frame_gt"][0]],
        [*batch["contours_in"][0], batch["contour_gt"][0]],
        [*batch["segmaps_in"][0], batch["segmap_gt"][0]],
    ):
        index = next(i for i in range(10) if np.array_equal(_to_uint8(rgb), rgbs[i]))
        np.testing.assert_array_equal(_to_uint8(contour), contours[index])
        np.testing.assert_array_equal(segmap, segmaps[index])
        picked.append(index)
    assert len(set(picked)) == 5


def test_validator_reports_corrupt_and_missing_shards_by_name(shards, tmp_path, capsys):
    for path in shards.iterdir():
        shutil.copy(path, tmp_path / path.name)
    assert validate_shards.main(["v", f"--dataset_parent_dir={tmp_path}"]) == 0
    broken = tmp_path / "vox2_dev-part-001-of-002.tfrecords"
    data = bytearray(broken.read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken.write_bytes(bytes(data))
    (tmp_path / "vox2_dev-part-000-of-002.tfrecords").rename(tmp_path / "vox2_dev-part-002-of-003.tfrecords")
    assert validate_shards.main(["v", f"--dataset_parent_dir={tmp_path}"]) == 1
    out = capsys.readouterr().out
    assert "corrupt: vox2_dev-part-001-of-002.tfrecords:" in out
    assert "missing: shard #0" in out and "1/2 shards valid" in out


def test_raw_provider_takes_evenly_spaced_few_shots(dataset):
    root, parts = dataset
    rgbs, _, segmaps = parts["a"]
    batch = next(
        iter(
            voxceleb_data_provider_raw.provide_subject_folders(
                str(root / "dev/id00017/*/*"), use_segmaps=True, batch_size=1, k_frames=4, max_sequence_frames=4
            )
        )
    )
    # linspace(0, 11, 4, endpoint=False) -> 0, 2, 5, 8; with only K left the target is the last.
    np.testing.assert_array_equal(_to_uint8(batch["frames_in"][0]), np.stack([rgbs[i] for i in (0, 2, 5, 8)]))
    np.testing.assert_array_equal(_to_uint8(batch["frame_gt"][0]), rgbs[8])
    np.testing.assert_array_equal(batch["segmaps_in"][0], np.stack([segmaps[i] for i in (0, 2, 5, 8)]))
    assert batch["person_id"][0].numpy() == b"id00017"
    assert batch["video_part_id"][0].numpy() == b"00039"
    fixed = next(
        iter(
            voxceleb_data_provider_raw.provide_subject_folders(
                str(root / "dev/id00017/*/*"), use_segmaps=False, batch_size=1, k_frames=2
            )
        )
    )
    np.testing.assert_array_equal(_to_uint8(fixed["frame_gt"][0]), rgbs[2])
    assert not fixed["segmap_gt"].numpy().any()


def test_std_provider_pairs_source_shots_with_every_driver_frame(dataset):
    root, parts = dataset
    source, driver = root / "dev/id00017/OLguY5ofUrY/00039", root / "dev/id00061/mMOd25Ag7XY/00239"
    batches = list(
        voxceleb_data_provider_std.provide_folder_pairs(
            str(source), str(driver), use_segmaps=True, batch_size=2, k_frames=2, same_video_eval=False
        )
    )
    assert len(batches) == 5  # 11 driver frames, the last partial batch dropped
    src_rgbs, drv_rgbs = parts["a"][0], parts["b"][0]
    for b, batch in enumerate(batches):
        for j in range(2):
            # linspace(0, 11, 2, endpoint=False) -> frames 0 and 5
            np.testing.assert_array_equal(_to_uint8(batch["frames_in"][j]), np.stack([src_rgbs[0], src_rgbs[5]]))
            np.testing.assert_array_equal(_to_uint8(batch["frame_gt"][j]), drv_rgbs[2 * b + j])
        assert batch["person_id"][0].numpy() == b"id00061"
    with pytest.raises(InputError, match="not the same person and video"):
        voxceleb_data_provider_std.provide_folder_pairs(str(source), str(driver), True, 1)


def test_bad_inputs_give_one_line_errors(dataset, tmp_path, astronaut, capsys):
    root, _ = dataset
    with pytest.raises(SystemExit) as exit_info:
        export.main(["export", f"--dataset_parent_dir={tmp_path}", "--subset=test"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path}/test: subset folder not found"
    with pytest.raises(InputError, match="nobody/.*subject folder not found"):
        voxceleb_data_provider_raw.provide_subject_folders(str(root / "nobody/x/y"), True, 1, k_frames=1)
    with pytest.raises(InputError, match=r"00202: 4 frames, fewer than the 8 needed"):
        voxceleb_data_provider_raw.provide_subject_folders(str(root / "dev/id00081/*/*"), True, 1, k_frames=8)
    no_contours = tmp_path / "p/v/part"
    _write_part(no_contours, astronaut, 3, kinds=("rgb", "segmap_merged"))
    with pytest.raises(InputError, match=r"part: 3 \*_rgb\* frames but 0 \*_contour\* files"):
        voxceleb_data_provider_raw.provide_subject_folders(str(no_contours), True, 1, k_frames=1)
    with pytest.raises(InputError, match=r"part: 3 \*_rgb\* frames but 0 \*_contour\* files"):
        voxceleb_data_provider_std.provide_folder_pairs(str(no_contours), str(no_contours), True, 1, 1)
    small = tmp_path / "q/v/part"
    write_image(small / "00000_rgb.png", astronaut[:100, :100])
    write_image(small / "00000_contour.png", astronaut[:100, :100])
    with pytest.raises(InputError, match="00000_rgb.png: frame is 100x100, expected 224x224"):
        voxceleb_data_provider_raw.provide_subject_folders(str(small), False, 1, k_frames=1)


def test_provide_picks_each_pipeline_by_kind(shards, dataset):
    """`lsr.data.provide(kind, ...)`, the entry point lsr.run uses, is the named pipeline."""
    root, _ = dataset
    assert lsr_data.provider("tfrecords") is voxceleb_data_provider.provide_tfrecords
    assert lsr_data.provider("subject_folders") is voxceleb_data_provider_raw.provide_subject_folders
    assert lsr_data.provider("folder_pairs") is voxceleb_data_provider_std.provide_folder_pairs
    records = lsr_data.provide("tfrecords", str(shards / "vox2_dev*.tfrecords"), True, 1, k_frames=4)
    assert len(list(records)) == 2
    part = str(root / "dev/id00017/OLguY5ofUrY/00039")
    batch = next(iter(lsr_data.provide("folder_pairs", part, part, True, 1, k_frames=1)))
    assert batch["frames_in"].shape == (1, 1, SIZE, SIZE, 3)
    with pytest.raises(
        InputError, match="unknown LSR data provider 'raw'; choose one of tfrecords, subject_folders, folder_pairs"
    ):
        lsr_data.provide("raw", part, True, 1)
