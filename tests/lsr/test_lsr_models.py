"""lsr.models: K-shot latents, the shared-encoder variant, optimizers and their schedule."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from numerics import FORWARD, assert_close

from common.errors import InputError
from lsr import checkpoint, options
from lsr.models import create_model
from lsr.models.base_model import learning_rate_schedule


def test_shared_encoder_splits_one_latent_into_style_and_layout(build_model, small_options):
    model = build_model(**small_options, separate_layout_encoder=False, num_latent_embeddings=2)
    assert sorted(model.get_networks()) == ["discriminator", "encoder", "generator", "layout_generator"]
    frames = np.random.RandomState(5).uniform(-1, 1, (2, 2, 32, 32, 6)).astype(np.float32)
    z_style, z_layout = model.compute_latents(frames, training=False)
    z = tf.reduce_mean(tf.stack([model.encoder(frames[:, i]) for i in range(2)]), 0)
    # One batch of B*K frames against K batches of B: the whole encoder, possibly on other
    # kernels for the other batch size, hence FORWARD; one frame instead of the mean is O(1) off.
    assert_close(tf.concat([z_style, z_layout], -1), z, FORWARD)


def test_pretraining_outputs_the_auxiliary_frame(build_model, small_options):
    model = build_model(**small_options, model_type="pretrain_layout")
    assert sorted(model.get_networks()) == ["layout_encoder", "layout_generator"]
    frames = np.zeros((1, 2, 32, 32, 6), np.float32)
    out = model.process(frames, np.zeros((1, 32, 32, 3), np.float32), training=False)
    assert out["latents"][0] is None and out["latents"][1].shape == (1, 16)
    assert out["output"] is out["aux_frame_recon"] and out["output"].shape == (1, 32, 32, 3)


def test_models_validate_their_options():
    with pytest.raises(InputError, match="--use_self_attn=true"):
        create_model(options.default_config(use_self_attn=True))


def test_learning_rate_warms_up_holds_then_decays_as_one_over_t():
    step = tf.Variable(0, dtype=tf.int64)
    lr = learning_rate_schedule(step, 1e-3, 500, 1000, 2000, 100)
    values = {}
    for s in (0, 250, 499, 500, 1000, 1005, 1500, 2000):
        step.assign(s)
        values[s] = float(lr())
    assert values[0] == pytest.approx(1e-3 * 1e-8 / 500, rel=1e-3)
    assert values[250] == pytest.approx(5e-4) and values[499] == pytest.approx(0.998e-3)
    assert values[500] == values[1000] == values[1005] == pytest.approx(1e-3)
    assert values[1500] == pytest.approx(1e-3 / 50) and values[2000] == pytest.approx(1e-5)
    # The warm-up counts from starting_step (before it the rate is negative, as in the original).
    shifted = learning_rate_schedule(step, 1e-3, 500, 1000, 2000, 100, starting_step=1)
    step.assign(0)
    assert float(shifted()) == pytest.approx(-2e-6)


def test_optimizers_are_legacy_adam_over_the_originals_variable_groups(build_model, small_options):
    model = build_model(**small_options, w_loss_segmentation=1.0, d_lr=0.004)
    counters = checkpoint.make_counters()
    optimizers = model.create_optimizers(counters["global_step"], 0, 10, 20, 100)
    assert sorted(optimizers) == ["d_optimizer", "g_layout_optimizer", "g_optimizer"]
    for optimizer in optimizers.values():
        assert isinstance(optimizer, tf.keras.optimizers.legacy.Adam)
        assert optimizer.get_config()["beta_1"] == 0.0
        assert optimizer.get_config()["beta_2"] == 0.999
        assert optimizer.epsilon == 1e-7
    assert optimizers["d_optimizer"]._get_hyper("learning_rate").numpy() == pytest.approx(0.004)
    var_lists = model.trainable_variables_by_optimizer()
    nets = model.get_networks()
    count = lambda *names: sum(len(nets[n].trainable_variables) for n in names)  # noqa: E731
    assert len(var_lists["g_optimizer"]) == count("layout_generator", "layout_encoder", "generator", "encoder")
    assert len(var_lists["g_layout_optimizer"]) == count("layout_generator", "layout_encoder")
    assert len(var_lists["d_optimizer"]) == count("discriminator")
