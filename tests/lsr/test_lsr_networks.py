"""lsr.networks and lsr.models: shapes, parameter counts and checkpoint keys of the original."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from numerics import FORWARD, ROUNDING, assert_close

from lsr import checkpoint

_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def _params(network) -> int:
    return sum(int(np.prod(v.shape)) for v in network.trainable_variables)


def test_network_outputs_at_a_small_resolution(build_model, small_options):
    model = build_model(**small_options)
    rng = np.random.RandomState(0)
    frames = rng.uniform(-1, 1, (3, 2, 32, 32, 6)).astype(np.float32)
    landmarks = rng.uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    z_style, z_layout = model.compute_latents(frames, training=False)
    assert z_style.shape == z_layout.shape == (3, 16)
    # K frames are averaged in latent space. One batch of B*K frames against two of B: the whole
    # encoder, possibly on other kernels for the other batch size, hence FORWARD.
    single = model.encoder(frames[:, 1], training=False)
    assert_close(z_style, (model.encoder(frames[:, 0]) + single) / 2, FORWARD)
    assert model.layout_generator(landmarks, z_layout).shape == (3, 32, 32, 22)
    out = model.process(frames, landmarks, training=False)
    assert out["segmap_logits"].shape == out["segmap_prob_map"].shape == (3, 32, 32, 19)
    assert_close(tf.reduce_sum(out["segmap_prob_map"], -1), np.ones((3, 32, 32)), ROUNDING)
    assert out["segmap_label_map"].dtype == tf.int32
    assert out["aux_frame_recon"].shape == out["output"].shape == (3, 32, 32, 3)
    scales = model.discriminator(out["output"], landmarks)
    assert len(scales) == 2
    # Feature maps of from_rgb, 4 residual blocks, conv_4x4 and the reshaped dense, then logits.
    assert [f.shape[1:] for f in scales[0]] == [
        (32, 32, 8),
        (16, 16, 16),
        (8, 8, 32),
        (4, 4, 64),
        (2, 2, 128),
        (2, 2, 128),
        (1, 1, 128),
        (1, 1, 1),
    ]
    assert scales[1][0].shape == (3, 16, 16, 8) and scales[1][-1].shape == (3, 1, 1, 1)


def test_parameter_totals_at_default_flags_match_the_original(default_model, pretrain_model, manifest):
    for model, model_type in ((default_model, "two_step_syn"), (pretrain_model, "pretrain_layout")):
        expected = manifest["models"][model_type]
        counts = {name: _params(net) for name, net in model.get_networks().items()}
        assert counts == expected["network_params"]
        assert sum(counts.values()) == expected["total_params"]
    assert sum(not v.trainable for n in default_model.get_networks().values() for v in n.variables) == 0
    names = {n: net.name for n, net in default_model.get_networks().items()}
    assert names == {
        "layout_generator": "layout_gen",
        "generator": "image_gen",
        "encoder": "image_enc",
        "layout_encoder": "layout_enc",
        "discriminator": "discriminator",
    }


@pytest.mark.parametrize("model_type", ["two_step_syn", "pretrain_layout"])
def test_checkpoint_keys_shapes_and_dtypes_equal_the_originals(model_type, default_model, pretrain_model, manifest):
    model = default_model if model_type == "two_step_syn" else pretrain_model
    expected = manifest["models"][model_type]
    counters = checkpoint.make_counters()
    model.create_optimizers(counters["global_step"], 500, 0, 1, 100)
    assert {n: o._name for n, o in model.get_optimizers().items()} == expected["optimizer_names"]
    slot_optimizer = {"discriminator": "d_optimizer"}
    default_optimizer = "g_optimizer" if model_type == "two_step_syn" else "g_layout_optimizer"
    want = {}
    for key, (shape, dtype) in expected["variables"].items():
        want[key] = (shape, dtype)
        root = key.split("/")[0]
        if root in model.get_networks():
            for slot in "mv":
                optimizer = slot_optimizer.get(root, default_optimizer)
                want[f"{key}/.OPTIMIZER_SLOT/{optimizer}/{slot}"] = (shape, dtype)
    roots = {"train": None, "infer": {"global_step", "train_examples_count"}, "eval": set()}
    for layout, extra_roots in roots.items():
        keys = checkpoint.checkpoint_keys(checkpoint.build_checkpoint(model, layout, counters))
        got = {k[: -len(_SUFFIX)]: (list(s.shape), s.dtype.name) for k, s in keys.items()}
        wanted = {
            k: v
            for k, v in want.items()
            if extra_roots is None or (k.split("/")[0] in set(model.get_networks()) | extra_roots and "SLOT" not in k)
        }
        assert got == wanted, layout
        assert len(got) == expected["layout_sizes"][layout]


def test_keras_variable_names_follow_the_original(default_model):
    model = default_model
    layout_generator, d_scale0 = model.layout_generator, model.discriminator.discriminators[0]
    pairs = [
        (
            layout_generator.encoder_blocks[0].blocks[0].conv_shortcut.kernel,
            "layout_gen/Downsample_block_4/Resblock_down_4/conv_shortcut/kernel:0",
        ),
        (
            layout_generator.decoder_blocks[1].resblock_up_fn.norm0.dense.kernel,
            "layout_gen/Upsample_block_1/Resblock_up_1/style_mod/dense/kernel:0",
        ),
        (layout_generator.output_conv.bias, "layout_gen/output_conv/bias:0"),
        (model.encoder.blocks[0].kernel, "image_enc/from_rgb/kernel:0"),
        (model.layout_encoder.fc_z.bias, "layout_enc/dense/bias:0"),
        (d_scale0.blocks[1].conv0.kernel, "discriminator/D_scale0/Downsample_resblock_5/Conv0/kernel:0"),
        (d_scale0.blocks[8].kernel, "discriminator/D_scale0/conv_4x4/kernel:0"),
        (d_scale0.blocks[10].kernel, "discriminator/D_scale0/dense/kernel:0"),
        (d_scale0.compute_logits.layers[0].kernel, "conv2d_logits/kernel:0"),
    ]
    assert [variable.name for variable, _ in pairs] == [name for _, name in pairs]
