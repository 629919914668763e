"""lsr.checkpoint: main.py's layouts, restoring the original's keys, one-line mismatches and
one-line errors for unreadable files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from common.errors import CheckpointMismatchError, InputError
from lsr import checkpoint

_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def _distinct_values(variables: dict) -> dict:
    """A different, cheap value for every manifest variable (and every element of it)."""
    values = {}
    for i, (key, (shape, dtype)) in enumerate(sorted(variables.items())):
        if dtype == "bool":
            values[key] = np.bool_(True)
        elif dtype == "int64":
            values[key] = np.int64(1000 + i)
        else:
            size = int(np.prod(shape))
            values[key] = ((np.arange(size, dtype=np.float32) % 101) * 0.01 + i).reshape(shape)
    return values


def test_a_checkpoint_with_the_originals_keys_restores_fully(default_model, manifest, write_checkpoint, tmp_path):
    # Every non-slot variable the original writes when training: the networks and counters
    # inference restores, plus optimizer scalars and epoch/training_finished it leaves out.
    variables = manifest["models"]["two_step_syn"]["variables"]
    values = _distinct_values(variables)
    prefix = write_checkpoint(tmp_path / "ckpt-272500", values)
    counters = checkpoint.make_counters()
    checkpoint.load_model(default_model, tmp_path, "infer", counters)

    model = default_model
    spots = {
        "generator/blocks/0/kernel": model.generator.blocks[0].kernel,
        "generator/blocks/10/shortcut/spade_norm/gamma_conv/bias": model.generator.blocks[
            10
        ].shortcut.spade_norm.gamma_conv.bias,
        "generator/to_rgb/kernel": model.generator.to_rgb.kernel,
        "encoder/blocks/2/shortcut/layer_with_weights-0/kernel": model.encoder.blocks[2].shortcut.layers[0].kernel,
        "layout_encoder/blocks/12/conv_block1/layer_with_weights-0/bias": model.layout_encoder.blocks[12]
        .conv_block1.layers[-1]
        .bias,
        "encoder/fc_z/kernel": model.encoder.fc_z.kernel,
        "layout_generator/encoder_blocks/0/blocks/0/conv0/kernel": model.layout_generator.encoder_blocks[0]
        .blocks[0]
        .conv0.kernel,
        "layout_generator/decoder_blocks/1/resblock_up_fn/norm0/dense/kernel": model.layout_generator.decoder_blocks[
            1
        ].resblock_up_fn.norm0.dense.kernel,
        "layout_generator/output_conv/bias": model.layout_generator.output_conv.bias,
        "discriminator/discriminators/0/blocks/8/kernel": model.discriminator.discriminators[0].blocks[8].kernel,
        "discriminator/discriminators/0/compute_logits/layer_with_weights-0/bias": model.discriminator.discriminators[0]
        .compute_logits.layers[0]
        .bias,
    }
    for key, variable in spots.items():
        np.testing.assert_array_equal(variable.numpy(), values[key], err_msg=key)
    assert counters["global_step"].numpy() == values["global_step"]
    assert counters["train_examples_count"].numpy() == values["train_examples_count"]
    assert counters["epoch"].numpy() == 0  # not part of the infer layout
    assert prefix.endswith("ckpt-272500")


def test_train_layout_round_trips_optimizer_state_and_counters(build_model, small_options, tmp_path):
    def fresh():
        model = build_model(**small_options)
        counters = checkpoint.make_counters()
        model.create_optimizers(counters["global_step"], 500, 1000, 2000, 100)
        return model, counters

    model, counters = fresh()
    saved = checkpoint.build_checkpoint(model, "train", counters)
    counters["global_step"].assign(42)
    counters["epoch"].assign(2)
    kernel = model.generator.to_rgb.kernel
    model.g_optimizer.get_slot(kernel, "v").assign(tf.fill(kernel.shape, 0.25))
    model.d_optimizer.iterations.assign(7)
    manager = tf.train.CheckpointManager(saved, tmp_path, max_to_keep=3)
    manager.save(checkpoint_number=42)

    restored, restored_counters = fresh()
    checkpoint.load_model(restored, tmp_path, "train", restored_counters)
    assert restored_counters["global_step"].numpy() == 42
    assert restored_counters["epoch"].numpy() == 2
    assert restored.d_optimizer.iterations.numpy() == 7
    slot = restored.g_optimizer.get_slot(restored.generator.to_rgb.kernel, "v")
    np.testing.assert_array_equal(slot.numpy(), 0.25)
    np.testing.assert_array_equal(restored.generator.to_rgb.kernel.numpy(), kernel.numpy())

    # Resuming training from a checkpoint without optimizer state is refused.
    inference_only = build_model(**small_options)
    inference_counters = checkpoint.make_counters()
    infer = checkpoint.build_checkpoint(inference_only, "infer", inference_counters)
    prefix = infer.write(str(tmp_path / "infer" / "ckpt-1"))
    with pytest.raises(CheckpointMismatchError, match="missing: .*g_optimizer/iter"):
        checkpoint.load_model(restored, prefix, "train", restored_counters)


@pytest.fixture
def small_checkpoint(build_model, small_options, keyed_value):
    """A built small model and {key: value} of all its network variables."""
    model = build_model(**small_options)
    keys = checkpoint.checkpoint_keys(checkpoint.build_checkpoint(model, "eval"))
    values = {k[: -len(_SUFFIX)]: keyed_value(k, tuple(spec.shape)) for k, spec in keys.items()}
    return model, values


@pytest.mark.parametrize(
    "change, expected",
    [
        ("missing", "1 missing: generator/to_rgb/kernel"),
        ("unexpected", "1 unexpected: generator/blocks/2/conv_block0/conv/extra"),
        ("mis-shaped", "1 mis-shaped: encoder/fc_z/bias (17,) vs (16,)"),
    ],
)
def test_mismatches_are_one_line_errors_naming_the_variable(
    change, expected, small_checkpoint, write_checkpoint, tmp_path
):
    model, values = small_checkpoint
    if change == "missing":
        del values["generator/to_rgb/kernel"]
    elif change == "unexpected":
        values["generator/blocks/2/conv_block0/conv/extra"] = np.zeros(3, np.float32)
    else:
        values["encoder/fc_z/bias"] = np.zeros(17, np.float32)
    prefix = write_checkpoint(tmp_path / "ckpt-5", values)
    with pytest.raises(CheckpointMismatchError) as error:
        checkpoint.load_model(model, prefix, "eval")
    message = str(error.value)
    assert message.startswith(prefix) and expected in message and "\n" not in message


def test_partial_layouts_ignore_only_what_they_leave_out(small_checkpoint, write_checkpoint, tmp_path):
    model, values = small_checkpoint
    values.update({"epoch": np.int64(3), "g_optimizer/iter": np.int64(9), "g_optimizer/beta_1": np.float32(0.0)})
    prefix = write_checkpoint(tmp_path / "ckpt-8", values)
    checkpoint.load_model(model, prefix, "eval")
    np.testing.assert_array_equal(model.encoder.fc_z.bias.numpy(), values["encoder/fc_z/bias"])
    with pytest.raises(CheckpointMismatchError, match="missing: global_step"):
        checkpoint.load_model(model, prefix, "infer", checkpoint.make_counters())


def test_latest_checkpoint_finds_the_newest_or_explains(tmp_path, write_checkpoint):
    with pytest.raises(
        InputError, match=rf"{tmp_path}: TensorFlow checkpoint \(ckpt-N.index .*\) not found; .*MoustafaMeshry/lsr"
    ):
        checkpoint.latest_checkpoint(tmp_path)
    for step in (3, 12):
        write_checkpoint(tmp_path / f"ckpt-{step}", {"global_step": np.int64(step)})
    # Without a `checkpoint` state file the highest step wins.
    assert checkpoint.latest_checkpoint(tmp_path) == str(tmp_path / "ckpt-12")
    assert checkpoint.latest_checkpoint(tmp_path / "ckpt-3") == str(tmp_path / "ckpt-3")
    tf.compat.v1.train.update_checkpoint_state(str(tmp_path), str(tmp_path / "ckpt-3"))
    assert checkpoint.latest_checkpoint(tmp_path) == str(tmp_path / "ckpt-3")


def _damage(prefix: str, how: str) -> str:
    """Damage the checkpoint at `prefix` in place; return the file the error must name."""
    index = Path(prefix + ".index")
    (shard,) = Path(prefix).parent.glob(Path(prefix).name + ".data-*")
    if how == "random index":
        index.write_bytes(np.random.default_rng(0).bytes(300))
        return str(index)
    if how == "empty index":
        index.write_bytes(b"")
        return str(index)
    if how == "truncated data":
        shard.write_bytes(shard.read_bytes()[:200])
        return str(shard)
    if how == "corrupt data":
        data = bytearray(shard.read_bytes())
        data[100:-100] = bytes(255 - b for b in data[100:-100])
        shard.write_bytes(bytes(data))
        return str(shard)
    shard.unlink()
    return f"{prefix}.data-*"


@pytest.mark.parametrize("how", ["random index", "empty index", "truncated data", "corrupt data", "missing data"])
def test_unreadable_checkpoint_files_are_one_line_input_errors(how, small_checkpoint, write_checkpoint, tmp_path):
    model, values = small_checkpoint
    prefix = write_checkpoint(tmp_path / "ckpt-1", values)
    named = _damage(prefix, how)
    for load in (
        lambda: checkpoint.load_model(model, tmp_path, "eval"),
        lambda: checkpoint.read_tensor(prefix, "encoder/fc_z/bias/.ATTRIBUTES/VARIABLE_VALUE"),
    ):
        with pytest.raises(InputError) as error:
            load()
        message = str(error.value)
        assert message.startswith(f"{named}: ") and "\n" not in message, message
        assert ("index" in how) == ("not a readable TensorFlow checkpoint index" in message)


def test_a_missing_shard_of_several_is_named(tmp_path):
    prefix = str(tmp_path / "ckpt-4")
    for name in ("index", "data-00000-of-00002"):
        Path(f"{prefix}.{name}").write_bytes(b"")
    with pytest.raises(InputError, match=rf"^{prefix}\.data-00001-of-00002: checkpoint data shard not found"):
        checkpoint.data_files(prefix)
