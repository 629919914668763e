"""lsr.losses: every term against values computed by hand (NumPy) on tiny tensors."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from numerics import FORWARD, ROUNDING, assert_close

from common.errors import InputError
from common.vgg.keras_vgg import VGGFaceModel
from common.vgg.layouts import VGGArch
from lsr import options
from lsr.losses import ModelLosses, average_losses, losses
from lsr.losses.vgg_loss import VGGFaceCSIM, VGGFaceLoss, VGGLoss

RNG = np.random.RandomState(0)
IMAGENET_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
TINY_VGGFACE = VGGArch(
    "tiny_vggface", (2, 2, 3, 3, 3), 5, (0.0, 0.0, 0.0), "test blobs", widths=(2, 2, 2, 2, 2), fc_width=4
)


def softplus(x):
    return np.log1p(np.exp(x))


def caffe_numpy(x):
    """[-1, 1] RGB -> BGR 0-255 minus the ImageNet mean, written out by hand."""
    return ((x + 1) / 2 * 255)[..., ::-1] - IMAGENET_MEAN_BGR


@pytest.mark.parametrize(
    "loss_type, real, fake, gen",
    [
        ("logistic_nonsaturating", lambda d: softplus(-d), softplus, lambda d: softplus(-d)),
        ("logistic_saturating", lambda d: -softplus(d), softplus, lambda d: -softplus(d)),
        ("lsgan", lambda d: (d - 1) ** 2, lambda d: d**2, lambda d: (d - 1) ** 2),
        ("hinge_gan", lambda d: np.maximum(0, 1 - d), lambda d: np.maximum(0, 1 + d), lambda d: -d),
    ],
)
def test_gan_losses_average_each_scale_logits_then_the_scales(loss_type, real, fake, gen):
    logits = [RNG.normal(size=(3, 2, 2, 1)).astype(np.float32) for _ in range(2)]
    outputs = [[np.zeros((3, 4, 4, 2), np.float32), d] for d in logits]
    # float64 references; a hinge mean of -d may be near 0, hence a tolerance of the largest.
    expect = lambda fn: np.mean(
        [
            fn(d.astype(np.float64)).mean(axis=(1, 2, 3))  # noqa: E731
            for d in logits
        ],
        axis=0,
    )
    assert_close(losses.multiscale_gan_loss(outputs, True, loss_type), expect(real), ROUNDING, "real")
    assert_close(losses.multiscale_gan_loss(outputs, False, loss_type), expect(fake), ROUNDING, "fake")
    assert_close(
        losses.multiscale_gan_loss(outputs, True, loss_type, allow_negative_g_loss=loss_type == "hinge_gan"),
        expect(gen),
        ROUNDING,
        "generator",
    )


def test_pixel_latent_feature_and_segmentation_losses():
    x, y = RNG.normal(size=(2, 3, 3, 3)), RNG.normal(size=(2, 3, 3, 3))
    assert_close(losses.l1_loss(x, y), np.abs(x - y).mean(axis=(1, 2, 3)), ROUNDING, "l1")
    z = RNG.normal(size=(2, 8))
    assert_close(losses.l2_regularize(z), (z**2).mean(axis=1), ROUNDING, "l2")
    real = [[x, x[..., :1]], [y, y[..., :1]]]
    fake = [[y, y[..., :1]], [x, x[..., :1]]]
    per_scale = np.abs(x - y).mean(axis=(1, 2, 3)) + np.abs(x - y)[..., :1].mean(axis=(1, 2, 3))
    assert_close(losses.multiscale_feature_matching_loss(real, fake), per_scale, ROUNDING, "feature matching")
    logits = RNG.normal(size=(2, 3, 3, 19)).astype(np.float32)
    labels = RNG.randint(0, 19, (2, 3, 3)).astype(np.uint8)
    logits64 = logits.astype(np.float64)
    log_softmax = logits64 - np.log(np.exp(logits64).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_softmax, labels[..., None].astype(int), -1)[..., 0]
    assert_close(losses.segmentation_loss(labels, logits), -picked.mean(axis=(1, 2)), ROUNDING, "segmentation")


def test_gradient_penalty_of_a_linear_critic_is_half_gamma_squared_weights():
    w = RNG.normal(size=(1, 2, 2, 3)).astype(np.float32)
    x = tf.constant(RNG.normal(size=(2, 2, 2, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        d = tf.reduce_sum(x * w, axis=(1, 2, 3))
    w64 = w.astype(np.float64)
    assert_close(losses.gradient_penalty(tape.gradient(d, x), 10.0), [5.0 * (w64**2).sum()] * 2, ROUNDING)


@pytest.fixture(scope="module")
def vgg19_h5(tmp_path_factory):
    tf.keras.utils.set_random_seed(1)
    path = tmp_path_factory.mktemp("vgg") / "vgg19_notop.h5"
    tf.keras.applications.VGG19(include_top=False, weights=None).save_weights(str(path))
    return path


def test_vgg19_loss_weights_conv1_of_each_block_after_caffe_preprocessing(vgg19_h5):
    loss = VGGLoss(vgg19_h5)
    x = RNG.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    y = RNG.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    vgg = tf.keras.applications.VGG19(include_top=False, weights=str(vgg19_h5))
    expect = 0
    for name, weight in zip(
        ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"),
        (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1),
    ):
        layer = tf.keras.Model(vgg.input, vgg.get_layer(name).output)
        fx, fy = layer(caffe_numpy(x)).numpy(), layer(caffe_numpy(y)).numpy()
        assert fx.min() >= 0  # post-ReLU, as Keras convolutions carry the activation
        expect = expect + weight * np.abs(fx - fy).mean(axis=(1, 2, 3))
    # The loss preprocesses in TF and runs the multi-output model; the reference preprocesses in
    # NumPy and runs one truncated model per layer: whole-network rounding, hence FORWARD.
    assert_close(loss(x, y), expect, FORWARD)
    # Equal images: 0 up to rounding, small against the loss of two different images.
    assert np.abs(loss(x, x).numpy()).max() <= ROUNDING * np.abs(expect).max()


def test_missing_vgg_weights_tell_how_to_convert_them(tmp_path):
    with pytest.raises(InputError, match=r"python -m tools\.convert_vgg .*--arch vgg19"):
        VGGLoss(tmp_path / "nope.h5")
    face = VGGFaceLoss(tmp_path / "face.h5")
    with pytest.raises(InputError, match=r"face\.h5.*python -m tools\.convert_vgg"):
        face.load_pretrained_weights()


@pytest.fixture(scope="module")
def tiny_vggface_h5(tmp_path_factory):
    tf.keras.utils.set_random_seed(2)
    model = VGGFaceModel(arch=TINY_VGGFACE)
    model.build((None, 224, 224, 3))
    path = tmp_path_factory.mktemp("vggface") / "vgg_face_weights.h5"
    model.save_weights(str(path), save_format="h5")
    return path, model


def test_vggface_recon_and_identity_losses(tiny_vggface_h5):
    path, reference = tiny_vggface_h5
    loss = VGGFaceLoss(path, arch=TINY_VGGFACE)
    loss.load_pretrained_weights()
    x = RNG.uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
    y = RNG.uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
    _, mx = reference(caffe_numpy(x))
    _, my = reference(caffe_numpy(y))
    l1 = lambda i: np.abs(mx[i].numpy() - my[i].numpy()).reshape(2, -1).mean(1)  # noqa: E731
    assert [mx[i].shape[1] for i in (1, 6, 11, 18, 25)] == [224, 112, 56, 28, 14]
    assert mx[-3].shape == (2, 1, 1, 5)  # fc8 logits before flattening
    recon = sum(l1(i) for i in (1, 6, 11, 18, 25))
    # A second model restored from the .h5, TF against NumPy preprocessing: FORWARD.
    assert_close(loss(x, y, 0.002, 1.0), 0.002 * recon + l1(-3), FORWARD, "recon + identity")
    assert_close(loss(x, y, 0.0, 20.0), 20 * l1(-3), FORWARD, "identity")
    csim = VGGFaceCSIM(path, arch=TINY_VGGFACE)
    csim.load_pretrained_weights()
    a, b = mx[-2].numpy(), my[-2].numpy()
    a, b = a.astype(np.float64), b.astype(np.float64)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert_close(csim(x, y), cos, FORWARD, "cosine")
    assert_close(csim(x, x), [1, 1], ROUNDING, "cosine of equal images")


def _batch(size, batch_size=2, seed=3):
    rng = np.random.RandomState(seed)
    return {
        "frames_in": rng.uniform(-1, 1, (batch_size, 2, size, size, 6)).astype(np.float32),
        "frame_gt": rng.uniform(-1, 1, (batch_size, size, size, 3)).astype(np.float32),
        "contour_gt": rng.uniform(-1, 1, (batch_size, size, size, 3)).astype(np.float32),
        "segmap_gt": rng.randint(0, 19, (batch_size, size, size)).astype(np.uint8),
    }


def test_meta_learning_losses_combine_with_the_flag_weights(build_model, small_options):
    overrides = dict(
        small_options,
        w_loss_vgg=0,
        w_loss_vgg_face_recon=0,
        w_loss_identity=0,
        w_loss_feat=0.5,
        w_loss_segmentation=2.0,
        w_loss_l1=3.0,
        r2_gamma=4.0,
    )
    config = options.default_config(**overrides)
    model = build_model(**overrides)
    batch = _batch(32)
    model_losses = ModelLosses(config)
    with tf.GradientTape() as tape:
        outputs = model.process(batch["frames_in"], batch["contour_gt"], training=True)
        per_example = model_losses.compute_losses(model, outputs, batch, training=True)
        averaged = average_losses(per_example, global_batch_size=8)
    assert sorted(per_example) == sorted(
        [
            "loss_d_real",
            "loss_d_fake",
            "loss_d",
            "real_gp",
            "fake_gp",
            "loss_g_gan",
            "loss_g_feat",
            "loss_g_l1",
            "loss_z_l2",
            "loss_z_layout_l2",
            "loss_g_segmentation",
            "loss_g",
        ]
    )
    # References from the same outputs, in float64: the reductions' rounding only.
    fake, real = outputs["output"].numpy().astype(np.float64), batch["frame_gt"].astype(np.float64)
    assert_close(per_example["loss_g_l1"], 3 * np.abs(fake - real).mean(axis=(1, 2, 3)), ROUNDING, "loss_g_l1")
    z_style, z_layout = (z.numpy().astype(np.float64) for z in outputs["latents"])
    assert_close(per_example["loss_z_l2"], (z_style**2).mean(1), ROUNDING, "loss_z_l2")
    assert_close(per_example["loss_z_layout_l2"], (z_layout**2).mean(1), ROUNDING, "loss_z_layout_l2")
    # The segmentation loss has its own optimizer by default: not part of loss_g.
    g_terms = ("loss_g_gan", "loss_g_feat", "loss_g_l1", "loss_z_l2", "loss_z_layout_l2")
    assert_close(per_example["loss_g"], sum(per_example[k] for k in g_terms), ROUNDING, "loss_g")
    assert_close(
        per_example["loss_d"],
        sum(per_example[k] for k in ("loss_d_real", "loss_d_fake", "real_gp", "fake_gp")),
        ROUNDING,
        "loss_d",
    )
    # R1 recomputed independently: 0.5 * 10 * sum(d loss_d_real / d real)^2.
    real_t = tf.constant(real)
    with tf.GradientTape() as r1_tape:
        r1_tape.watch(real_t)
        d_real = losses.multiscale_gan_loss(
            model.discriminator(real_t, batch["contour_gt"], training=True), True, "logistic_nonsaturating"
        )
    grad = r1_tape.gradient(d_real, real_t).numpy().astype(np.float64)
    # The discriminator's backward pass run again: whole-network rounding, hence FORWARD.
    assert_close(per_example["real_gp"], 5 * (grad**2).sum(axis=(1, 2, 3)), FORWARD, "real_gp")
    for key, value in per_example.items():
        assert value.shape == (2,)
        assert_close(averaged[key], float(tf.reduce_sum(value)) / 8, ROUNDING, key)
    # The penalties are differentiable w.r.t. the discriminator through the caller's tape.
    grads = tape.gradient(per_example["real_gp"], model.discriminator.trainable_variables)
    assert all(g is not None for g in grads) and any(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


def test_pretraining_losses_use_the_aux_frame_and_add_segmentation(build_model, small_options):
    overrides = dict(
        small_options,
        model_type="pretrain_layout",
        w_loss_vgg=0,
        w_loss_gan=0,
        w_loss_vgg_face_recon=0,
        w_loss_identity=0,
        w_loss_segmentation=10.0,
    )
    config = options.default_config(**overrides)
    model = build_model(**overrides)
    batch = _batch(32)
    outputs = model.process(batch["frames_in"], batch["contour_gt"], training=False)
    per_example = ModelLosses(config).compute_losses(model, outputs, batch, training=False)
    assert sorted(per_example) == ["loss_g", "loss_g_l1", "loss_g_segmentation", "loss_z_layout_l2"]
    expect_seg = 10 * losses.segmentation_loss(batch["segmap_gt"], outputs["segmap_logits"])
    assert_close(per_example["loss_g_segmentation"], expect_seg, ROUNDING, "segmentation")
    assert_close(
        per_example["loss_g"],
        per_example["loss_g_l1"] + expect_seg + per_example["loss_z_layout_l2"],
        ROUNDING,
        "loss_g",
    )


def test_model_losses_build_the_vgg_networks_from_the_weight_flags(tmp_path, vgg19_h5):
    config = options.default_config(w_loss_vgg_face_recon=0, w_loss_identity=0)
    config.vgg19_weights_path = str(vgg19_h5)
    assert ModelLosses(config).vgg_loss is not None
    config.vgg19_weights_path = str(tmp_path / "missing.h5")
    with pytest.raises(InputError, match="missing.h5: VGG19 weights not found"):
        ModelLosses(config)
    with pytest.raises(InputError, match="--w_loss_lpips"):
        ModelLosses(options.default_config(w_loss_lpips=1.0))
