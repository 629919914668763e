"""Every absl flag of the original `options.py`: same names, types and defaults.

Flags marked "(unused)" are read by no code path of the original either; they are kept so
that its scripts and run_config.txt files still parse. The few flags that are not the
original's (`NOT_IN_ORIGINAL`: early stopping, two opt-in fixes, the local VGG weight files,
the inference precision) are defined last, here too, so that `default_config()` holds every flag
`python -m lsr.main` accepts; `run_config.txt` lists the original's only (`original_flags`).

Library code (`lsr.run`) takes any `config` object with these attributes:
`default_config(**overrides)`, or `config_from_flags()` after the CLI parsed `FLAGS`.
"""

from __future__ import annotations

import types

from absl import flags

from common.config import closest
from common.errors import InputError
from common.precision import PRECISIONS

FLAGS = flags.FLAGS

# Experiment.
flags.DEFINE_string("train_dir", "./_train/sanity_test", "Directory for checkpoints, summaries and outputs.")
flags.DEFINE_string("experiment_description", "", "Free text, only printed (unused).")
flags.DEFINE_string("run_mode", "train", "One of {train, eval, infer}.")
flags.DEFINE_integer("batch_size", 4, "Batch size per replica.")
flags.DEFINE_string("warmup_checkpoint", "", "Directory whose latest checkpoint initialises the networks and counters.")

# Dataset.
flags.DEFINE_string("dataset_name", "voxceleb2", "Name of the dataset.")
flags.DEFINE_string(
    "dataset_parent_dir", "./datasets/preprocessed_voxceleb2/tfrecords", "Directory of the training tfrecords."
)
flags.DEFINE_string(
    "eval_dataset_parent_dir",
    "./_datasets/voxceleb2_processed/tfrecords",
    "Directory of the evaluation tfrecords (unused).",
)
flags.DEFINE_string(
    "trainset_pattern", "vox2_dev*.tfrecords", "Glob of the training tfrecords inside --dataset_parent_dir."
)
flags.DEFINE_string(
    "evalset_pattern", "vox2b_test*.tfrecords", 'Glob of the evaluation tfrecords (unused; "vox2b" as in the original).'
)
flags.DEFINE_integer("trainset_size", 1090194, "Examples per epoch of the training set.")

# Training configuration.
flags.DEFINE_string("model_type", "two_step_syn", "One of {pretrain_layout, two_step_syn}.")
flags.DEFINE_boolean(
    "multi_task_training", True, "The layout generator also reconstructs the RGB frame (3 extra channels)."
)
flags.DEFINE_integer("train_resolution", 224, "Frame size; must be divisible by 2**G_num_upsamples.")
flags.DEFINE_integer("K", 4, "Number of few-shot source frames.")
flags.DEFINE_integer("num_frame_concatenations", 10, "Frames stored in each tfrecord example.")
flags.DEFINE_boolean("use_segmaps", True, "Read the segmentation maps in the input pipeline.")
flags.DEFINE_boolean("data_augmentation", False, "Augment training data (must stay false).")
flags.DEFINE_integer("total_k_examples", 16350, "Training length in thousands of examples.")
flags.DEFINE_integer(
    "num_lr_decay_k_examples", 0, "Thousands of final examples over which the learning rate decays; 0 = none."
)
flags.DEFINE_integer("decay_num_intervals", 100, "The final learning rate is the initial one divided by this.")
flags.DEFINE_integer("lr_warmstart_steps", 500, "Steps of linear learning-rate warm-up; 0 = none.")
flags.DEFINE_boolean("separate_layout_optimizer", True, "Optimise the segmentation loss with its own Adam optimizer.")
flags.DEFINE_float("adam_beta1", 0.0, "Adam beta1.")
flags.DEFINE_float("adam_beta2", 0.999, "Adam beta2.")
flags.DEFINE_float("d_lr", 0.001, "Discriminator learning rate.")
flags.DEFINE_float("g_lr", 0.001, "Generator (and encoder) learning rate.")
flags.DEFINE_float("e_lr", 0.001, "Encoder learning rate (unused: encoders use --g_lr).")
flags.DEFINE_boolean("scale_lr_with_num_gpus", False, "Multiply the learning rates by the number of replicas.")
flags.DEFINE_boolean("alternate_G_D_training", False, "Run the generator and discriminator steps as separate calls.")
flags.DEFINE_integer("disc_steps_per_g", 1, "Discriminator steps per generator step.")
flags.DEFINE_float("grad_clip_abs_val", 1, "Clip every gradient element to +-this value; -1 disables clipping.")

# Loss weights.
flags.DEFINE_string("lpips_net_type", "vgg_lin", "LPIPS network for training: one of {alex, alex_lin, vgg, vgg_lin}.")
flags.DEFINE_float("w_loss_vgg", 0.1, "VGG19 perceptual loss weight.")
flags.DEFINE_float("w_loss_lpips", 0, "Weight of the LPIPS loss.")
flags.DEFINE_float("w_loss_segmentation", 0.0, "Segmentation cross-entropy loss weight.")
flags.DEFINE_float("w_loss_z_l2", 1.0, "L2 regulariser weight of the style latent.")
flags.DEFINE_float("w_loss_z_layout_l2", 1.0, "L2 regulariser weight of the layout latent.")
flags.DEFINE_float("w_loss_z_cyclic", 0, "Cyclic latent reconstruction weight (unused).")
flags.DEFINE_float("w_loss_identity", 1, "VGGFace identity (fc8) loss weight.")
flags.DEFINE_float("w_loss_vgg_face_recon", 0.002, "VGGFace perceptual loss weight per layer.")
flags.DEFINE_float("w_loss_feat", 0, "Discriminator feature-matching loss weight.")
flags.DEFINE_float("w_loss_l1", 1.0, "Pixel L1 loss weight.")
flags.DEFINE_float("w_loss_gan", 1.0, "Weight of the adversarial loss.")
flags.DEFINE_float("w_loss_z_gan", 1.0, "Latent adversarial loss weight (unused).")
flags.DEFINE_float("w_loss_kl", 0, "KL divergence weight (unused).")
flags.DEFINE_float("r1_gamma", 10.0, "Gradient penalty weight on real images.")
flags.DEFINE_float("r2_gamma", 10.0, "Gradient penalty weight on fake images.")

# Checkpoints and logging.
flags.DEFINE_integer("log_info_every_n_steps", 1 << 7, "Print losses every n steps.")
flags.DEFINE_integer("save_summaries_every_n_steps", 1 << 8, "Write TensorBoard summaries every n steps.")
flags.DEFINE_integer("save_checkpoint_every_n_steps", 1 << 11, "Save a checkpoint every n steps.")
flags.DEFINE_integer("keep_checkpoint_every_n_hours", 6, "Also keep one checkpoint per n hours.")
flags.DEFINE_integer("max_checkpoints_to_keep", 3, "Number of recent checkpoints to keep.")

# Generators.
flags.DEFINE_integer("output_nc", 3, "Channels of the generated image.")
flags.DEFINE_string("output_nonlinearity", "None", "Activation of the generated image: None (none) or tanh.")
flags.DEFINE_integer("num_segmentation_classes", 19, "Classes of the segmentation map.")
flags.DEFINE_integer("spade_proj_filters", 64, "Hidden filters of each SPADE block (paper: 128).")
flags.DEFINE_boolean("synthesize_background", True, "Synthesise the background instead of masking it out.")
flags.DEFINE_integer("g_nf", 32, "Filters of the last layer of the image generator.")
flags.DEFINE_integer("segmap_g_nf", 32, "Filters of the first/last layers of the layout generator.")
flags.DEFINE_integer("g_nf_max", 512, "Maximum filters in both generators.")
flags.DEFINE_integer("G_num_downsamples", 5, "Generator downsampling blocks (unused).")
flags.DEFINE_integer("G_num_upsamples", 5, "Upsampling blocks of the image generator and levels of the layout U-Net.")
flags.DEFINE_integer("G_num_bottleneck_blocks", 0, "Residual blocks at the U-Net bottleneck.")
flags.DEFINE_string("G_arch", "spade_gen", "Image generator: spade_gen or unet_resnet.")
flags.DEFINE_string("segmap_G_arch", "unet_resnet", "Layout generator: unet_resnet or spade_gen.")
flags.DEFINE_boolean(
    "concat_contours_to_layout", False, "Feed the landmark image together with the layout to the image generator."
)
flags.DEFINE_string(
    "generator_norm_type",
    "instance_norm",
    "Generator normalisation: {instance_norm, layer_norm, batch_norm, sync_batch_norm, none}.",
)
flags.DEFINE_string("upsampling_mode", "bilinear", "Upsampling: bilinear or nearest.")
flags.DEFINE_boolean(
    "use_parametric_norm_in_unet_encoder", False, "Learn scale and offset of the normalisation in the U-Net encoder."
)
flags.DEFINE_string("conv_type", "scaled", "Generator convolutions: {scaled, spectral_norm, weight_norm, regular}.")
flags.DEFINE_boolean("use_self_attn", False, "Self-attention in the U-Net.")
flags.DEFINE_boolean("use_skip_connections", True, "U-Net skip connections.")

# Encoders.
flags.DEFINE_boolean("separate_layout_encoder", True, "Use a second encoder for the layout latent.")
flags.DEFINE_integer("style_nc", 512, "Size of each latent vector.")
flags.DEFINE_integer("num_latent_embeddings", 1, "Latent vectors produced by one encoder.")
flags.DEFINE_integer("e_nf", 32, "Filters of the first layer of the style encoder.")
flags.DEFINE_integer("segmap_e_nf", 32, "Filters of the first layer of the layout encoder.")
flags.DEFINE_integer("E_num_downsamples", 6, "Downsampling blocks of the encoders.")
flags.DEFINE_boolean("use_vae", False, "Variational encoder (must stay false).")
flags.DEFINE_string(
    "encoder_norm_type",
    "none",
    "Encoder normalisation: {instance_norm, layer_norm, batch_norm, sync_batch_norm, none}.",
)
flags.DEFINE_boolean("encoder_global_avg_pool", False, "Global average pooling after the encoder blocks.")
flags.DEFINE_boolean("add_fc_to_encoder", True, "Fully connected layer at the end of the encoders.")
flags.DEFINE_boolean("normalize_latent", False, "Normalise latents to unit RMS.")
flags.DEFINE_string("E_arch", "resnet", "Style encoder architecture.")
flags.DEFINE_string("segmap_E_arch", "resnet", "Layout encoder architecture.")
flags.DEFINE_boolean(
    "concat_conditional_inputs_to_encoder", True, "Encoders see each frame together with its landmark image."
)
flags.DEFINE_string("e_conv_type", "scaled", "Encoder convolutions: {scaled, spectral_norm, weight_norm, regular}.")

# Discriminator.
flags.DEFINE_integer("d_nf", 32, "Filters of the first discriminator layer.")
flags.DEFINE_integer("num_disc_scales", 1, "Scales of the multi-scale discriminator.")
flags.DEFINE_integer("D_num_downsamples", 6, "Downsampling blocks of the discriminator.")
flags.DEFINE_string(
    "discriminator_norm_type",
    "none",
    "Discriminator normalisation: {instance_norm, layer_norm, batch_norm, sync_batch_norm, none}.",
)
flags.DEFINE_string("D_arch", "resnet_stylegan2", "Discriminator architecture.")
flags.DEFINE_string(
    "d_conv_type", "scaled", "Discriminator convolutions: {scaled, spectral_norm, weight_norm, regular}."
)
flags.DEFINE_boolean("use_conditional_disc", True, "The discriminator also sees the target landmark image.")
flags.DEFINE_string(
    "d_loss_type",
    "logistic_nonsaturating",
    "GAN loss: {logistic_nonsaturating, logistic_saturating, lsgan, hinge_gan}.",
)

# Inference and subject fine-tuning.
flags.DEFINE_string(
    "source_subject_dir",
    "./_datasets/sample_fsth_eval_subset_processed/train/id00017/OLguY5ofUrY/combined",
    "Frames of the source identity (few-shot inputs and fine-tuning set).",
)
flags.DEFINE_string(
    "driver_subject_dir",
    "./_datasets/sample_fsth_eval_subset_processed/test/id00017/OLguY5ofUrY/combined",
    "Frames of the driving sequence.",
)
flags.DEFINE_string(
    "std_eval_subset_dir",
    "./_datasets/sample_fsth_eval_subset_processed",
    "Root of the processed few-shot evaluation subset (--run_mode=eval).",
)
flags.DEFINE_integer("max_finetune_steps", -1, "Fine-tuning steps at inference (the default -1 runs none).")
flags.DEFINE_boolean("few_shot_finetuning", False, "Fine-tune on the source subject at inference.")
flags.DEFINE_string(
    "eval_subset_parent_dir",
    "./datasets/eval_subset_reorg",
    "Parent directory of per-subject evaluation sets (unused).",
)
flags.DEFINE_string("finetune_subset", "train", "Subset name for fine-tuning (unused).")
flags.DEFINE_string("test_subset", "test", "Subset name for evaluation (unused).")
flags.DEFINE_string("subject_pattern", "*", "Subjects to fine-tune and evaluate (unused).")
flags.DEFINE_string("video_pattern", "*", "Videos to fine-tune and evaluate (unused).")
flags.DEFINE_boolean("finetune_d", True, "Fine-tune the discriminator.")
flags.DEFINE_boolean("finetune_g", True, "Fine-tune the image generator.")
flags.DEFINE_boolean("finetune_e", False, "Fine-tune the style encoder.")
flags.DEFINE_boolean("finetune_g_layout", True, "Fine-tune the layout generator.")
flags.DEFINE_boolean("finetune_e_layout", False, "Fine-tune the layout encoder.")
flags.DEFINE_boolean("finetune_latent", False, "Fine-tune the latents (unused).")
flags.DEFINE_boolean("decay_lr", True, "Decay the learning rates during fine-tuning.")
flags.DEFINE_integer("evaluate_every_n_steps", -1, "Evaluate every n fine-tuning steps; -1 = never (unused).")
flags.DEFINE_boolean("evaluate_dense", False, "Evaluate the dense subset after fine-tuning (unused).")
flags.DEFINE_boolean(
    "save_subject_checkpoint", False, "Save the fine-tuned weights into the inference output directory."
)
flags.DEFINE_string("target_subject_id", None, "Target subject for cross-subject reenactment (unused).")
flags.DEFINE_string("target_video_id", None, "Target video for cross-subject reenactment (unused).")

# Other.
flags.DEFINE_boolean(
    "faithful_spade_hacks",
    False,
    "Mimic the SPADE authors' code: Glorot-initialised regular convolutions in "
    "SPADE normalisation and no bias before instance norm in the encoders "
    "(changes the variables; keep false for the released checkpoint).",
)

# Not in the original (kept out of run_config.txt, which the original's scripts re-read).
flags.DEFINE_integer(
    "max_train_steps",
    -1,
    "Stop training at this global step (-1: run to --total_k_examples). "
    "Not in the original; for smoke tests and short runs.",
)
flags.DEFINE_boolean(
    "fix_lr_starting_step",
    False,
    "Fix: the original passes the LR multiplier (1) as the warm-up starting step, "
    "so the first step has a slightly negative learning rate.",
)
flags.DEFINE_boolean(
    "auto_max_finetune_steps",
    False,
    "Fix: with --max_finetune_steps<=0 pick the step count from K (24, 60, 100, "
    "200, 400 for K<4, <8, <16, <32, else), as the original meant to.",
)
# The original reads VGG19 from Keras' download cache and VGG-Face from a hard-coded path.
flags.DEFINE_string(
    "vgg19_weights_path",
    "./third_party/pretrained_weights/vgg19_notop.h5",
    "Keras VGG19 (no top) weights for the VGG loss, written by "
    "`python -m tools.convert_vgg --arch vgg19 --format keras`.",
)
flags.DEFINE_string(
    "vgg_face_weights_path",
    "./third_party/pretrained_weights/vgg_face_weights.h5",
    "VGG-Face weights for the VGG-Face losses, written by `python -m tools.convert_vgg --arch vggface --format keras`.",
)
flags.DEFINE_enum(
    "precision",
    "fp32",
    list(PRECISIONS),
    "Arithmetic of the networks in --run_mode=infer: fp32 (exact), bf16 (bfloat16 compute, float32 "
    "variables: the same checkpoints) or fp16 (float16 compute, GPUs only).",
)
NOT_IN_ORIGINAL = (
    "precision",
    "max_train_steps",
    "fix_lr_starting_step",
    "auto_max_finetune_steps",
    "vgg19_weights_path",
    "vgg_face_weights_path",
)

_NORM_TYPES = ("instance_norm", "layer_norm", "batch_norm", "sync_batch_norm", "none")
_CONV_TYPES = ("scaled", "regular")
_CHOICES = {
    "model_type": ("two_step_syn", "pretrain_layout"),
    "output_nonlinearity": (None, "None", "none", "tanh"),
    "G_arch": ("spade_gen", "unet_resnet"),
    "segmap_G_arch": ("spade_gen", "unet_resnet"),
    "E_arch": ("resnet",),
    "segmap_E_arch": ("resnet",),
    "D_arch": ("resnet_stylegan2",),
    "upsampling_mode": ("bilinear", "nearest"),
    "conv_type": _CONV_TYPES,
    "e_conv_type": _CONV_TYPES,
    "d_conv_type": _CONV_TYPES,
}
# Settings the original accepts but cannot run; each fails there with the reason given.
_BROKEN_IN_ORIGINAL = {
    "use_vae": (True, "the original asserts it is false"),
    "data_augmentation": (True, "the original asserts it is false"),
    "use_self_attn": (True, "its self-attention calls tf.dimension_value, which TF 2 lacks"),
    "synthesize_background": (False, "its foreground mask uses an undefined BACKGROUND_IDX"),
}


def defined_flags() -> list:
    """Every flag defined here (all that `python -m lsr.main` accepts), in definition order."""
    return FLAGS.get_flags_for_module(__name__)


def original_flags() -> list:
    """The original's flags (`defined_flags` without `NOT_IN_ORIGINAL`), in definition order."""
    return [flag for flag in defined_flags() if flag.name not in NOT_IN_ORIGINAL]


def default_config(**overrides) -> types.SimpleNamespace:
    """All flag defaults as a namespace, with `overrides` applied (unknown names are errors)."""
    config = {flag.name: flag.default for flag in defined_flags()}
    for name, value in overrides.items():
        if name not in config:
            raise InputError(f"unknown LSR option '{name}'{closest(name, config)}")
        config[name] = value
    return types.SimpleNamespace(**config)


def config_from_flags(flag_values=FLAGS) -> types.SimpleNamespace:
    """The parsed values of every flag defined here, as a namespace like `default_config`'s."""
    return types.SimpleNamespace(**{flag.name: flag_values[flag.name].value for flag in defined_flags()})


def _base_norm(norm_type: str) -> str:
    return norm_type[len("param_free_") :] if norm_type.startswith("param_free_") else norm_type


def validate_options(config) -> None:
    """Raise `InputError` naming the first option the original cannot build or run with."""
    for name in ("conv_type", "e_conv_type", "d_conv_type"):
        if getattr(config, name) in ("spectral_norm", "weight_norm"):
            raise InputError(
                f"--{name}={getattr(config, name)} is not available: the original "
                "references layer classes it never defines"
            )
    for name, choices in _CHOICES.items():
        if getattr(config, name) not in choices:
            raise InputError(f"--{name}={getattr(config, name)} is not one of {', '.join(str(c) for c in choices)}")
    for name in ("generator_norm_type", "encoder_norm_type", "discriminator_norm_type"):
        if _base_norm(getattr(config, name)) not in _NORM_TYPES:
            raise InputError(
                f"--{name}={getattr(config, name)} is not one of "
                f"{', '.join(_NORM_TYPES)} (optionally prefixed by param_free_)"
            )
    for name, (value, reason) in _BROKEN_IN_ORIGINAL.items():
        if getattr(config, name) == value:
            raise InputError(f"--{name}={str(value).lower()} is not supported: {reason}")
    levels = 2**config.G_num_upsamples
    if config.train_resolution % levels:
        raise InputError(
            f"--train_resolution={config.train_resolution} is not divisible by 2**G_num_upsamples={levels}"
        )
    if config.separate_layout_encoder != (config.num_latent_embeddings == 1):
        raise InputError(
            "--num_latent_embeddings must be 1 with a separate layout encoder and 2 "
            f"without one (got {config.num_latent_embeddings})"
        )
    if not (config.add_fc_to_encoder or config.encoder_global_avg_pool):
        raise InputError("--add_fc_to_encoder=false needs --encoder_global_avg_pool=true")
    if config.model_type == "pretrain_layout" and not config.separate_layout_encoder and config.K > 1:
        raise InputError(
            "--model_type=pretrain_layout without a separate layout encoder fails "
            "in the original for --K>1 (its latent reshape assumes --style_nc)"
        )


def list_configs(config) -> str:
    """`key=value` lines of every original flag, as appended to <train_dir>/run_config.txt.

    Same value format as the original (strings quoted, booleans lower case, floats %f), which
    its `evaluate.py` re-reads; lines starting with '#' are comments.
    """
    lines = ["# Run flags/options from lsr/options.py:"]
    for flag in original_flags():
        value = getattr(config, flag.name)
        if isinstance(flag, flags.BooleanFlag) or isinstance(value, bool):
            text = str(value).lower()
        elif isinstance(value, float):
            text = f"{value:f}"
        elif isinstance(value, int):
            text = f"{value:d}"
        else:
            text = f'"{value}"'
        lines.append(f"{flag.name}={text}")
    return "\n".join(lines) + "\n"
