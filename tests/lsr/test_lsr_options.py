"""lsr.options: every flag of the original with its default, the flags added here, validation,
run_config text."""

from __future__ import annotations

import pytest

from common.errors import InputError
from lsr import options

_FLAG_TYPE = {bool: "bool", int: "int", float: "float", str: "string", type(None): "string"}


def test_flags_are_exactly_the_originals_with_the_same_defaults(manifest):
    original = manifest["flags"]
    ours = {flag.name: flag for flag in options.original_flags()}
    assert sorted(ours) == sorted(original)
    for name, default in original.items():
        assert ours[name].default == default, name
        assert type(ours[name].default) is type(default), name
        assert ours[name].flag_type() == _FLAG_TYPE[type(default)], name


def test_default_config_has_every_flag_lsr_main_accepts():
    """Every flag an lsr module defines for `python -m lsr.main` (the run modes' imports
    included) is an option of `default_config()`, and the CLI's config is that namespace."""
    from absl import flags

    from lsr import main as lsr_main

    accepted = {
        flag.name
        for module, defined in flags.FLAGS.flags_by_module_dict().items()
        if module.split(".")[0] == "lsr"
        for flag in defined
    }
    config = vars(options.default_config())
    assert accepted == set(config) == {flag.name for flag in options.defined_flags()}
    assert set(options.NOT_IN_ORIGINAL) == {
        "max_train_steps",
        "fix_lr_starting_step",
        "auto_max_finetune_steps",
        "vgg19_weights_path",
        "vgg_face_weights_path",
        "precision",
    }
    assert (config["max_train_steps"], config["fix_lr_starting_step"], config["auto_max_finetune_steps"]) == (
        -1,
        False,
        False,
    )
    lsr_main.FLAGS.unparse_flags()  # as lsr.main.main: other tests may have parsed flags
    try:
        lsr_main.FLAGS(["lsr.main", "--max_train_steps=3", "--auto_max_finetune_steps", "--K=1"])
        parsed = options.config_from_flags()
    finally:
        lsr_main.FLAGS.unparse_flags()
    assert vars(parsed) == {**config, "max_train_steps": 3, "auto_max_finetune_steps": True, "K": 1}


@pytest.mark.parametrize(
    "name, default",
    [
        ("train_dir", "./_train/sanity_test"),
        ("K", 4),
        ("batch_size", 4),
        ("train_resolution", 224),
        ("total_k_examples", 16350),
        ("lr_warmstart_steps", 500),
        ("adam_beta1", 0.0),
        ("grad_clip_abs_val", 1.0),
        ("w_loss_vgg", 0.1),
        ("w_loss_vgg_face_recon", 0.002),
        ("w_loss_identity", 1.0),
        ("r1_gamma", 10.0),
        ("output_nonlinearity", "None"),
        ("spade_proj_filters", 64),
        ("g_nf", 32),
        ("G_num_upsamples", 5),
        ("E_num_downsamples", 6),
        ("D_num_downsamples", 6),
        ("generator_norm_type", "instance_norm"),
        ("encoder_norm_type", "none"),
        ("evalset_pattern", "vox2b_test*.tfrecords"),
        ("max_finetune_steps", -1),
        ("few_shot_finetuning", False),
        ("finetune_e", False),
        ("target_subject_id", None),
        ("dataset_parent_dir", "./datasets/preprocessed_voxceleb2/tfrecords"),
        ("log_info_every_n_steps", 128),
        ("save_checkpoint_every_n_steps", 2048),
    ],
)
def test_spot_checked_defaults_from_the_fact_sheet(name, default):
    assert getattr(options.default_config(), name) == default


def test_default_config_applies_overrides_and_rejects_unknown_names():
    config = options.default_config(K=1, model_type="pretrain_layout")
    assert (config.K, config.model_type, config.g_nf) == (1, "pretrain_layout", 32)
    with pytest.raises(InputError, match="unknown LSR option 'KK'.*did you mean 'K'"):
        options.default_config(KK=1)


def test_defaults_validate():
    options.validate_options(options.default_config())
    options.validate_options(options.default_config(model_type="pretrain_layout", K=1))


@pytest.mark.parametrize(
    "overrides, names",
    [
        (dict(model_type="two_step"), "--model_type=two_step"),
        (dict(conv_type="spectral_norm"), "--conv_type=spectral_norm is not available"),
        (dict(e_conv_type="weight_norm"), "--e_conv_type=weight_norm"),
        (dict(encoder_norm_type="pixel_norm"), "--encoder_norm_type=pixel_norm"),
        (dict(use_self_attn=True), "--use_self_attn=true"),
        (dict(synthesize_background=False), "--synthesize_background=false"),
        (dict(use_vae=True), "--use_vae=true"),
        (dict(train_resolution=200), "--train_resolution=200"),
        (dict(separate_layout_encoder=False), "--num_latent_embeddings"),
        (dict(add_fc_to_encoder=False), "--add_fc_to_encoder=false"),
        (dict(model_type="pretrain_layout", separate_layout_encoder=False, num_latent_embeddings=2), "--K>1"),
    ],
)
def test_options_the_original_cannot_run_are_one_line_errors(overrides, names):
    with pytest.raises(InputError) as error:
        options.validate_options(options.default_config(**overrides))
    assert names in str(error.value) and "\n" not in str(error.value)


def test_list_configs_writes_key_value_lines_in_the_original_format():
    lines = options.list_configs(options.default_config(K=1)).splitlines()
    assert lines[0].startswith("#")
    entries = dict(line.split("=", 1) for line in lines[1:])
    assert len(entries) == len(options.original_flags())
    assert not set(entries) & set(options.NOT_IN_ORIGINAL)  # run_config.txt: the original's only
    assert entries["K"] == "1"
    assert entries["train_dir"] == '"./_train/sanity_test"'
    assert entries["multi_task_training"] == "true"
    assert entries["w_loss_vgg"] == "0.100000"
    assert entries["grad_clip_abs_val"] == "1.000000"
    assert entries["target_subject_id"] == '"None"'
