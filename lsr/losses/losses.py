"""Per-example loss terms of LSR: each returns one value per example, shape [B].

`axis` arguments follow the original: images and feature maps are reduced over (1, 2, 3).
"""

from __future__ import annotations

import tensorflow as tf

IMAGE_AXES = (1, 2, 3)
GAN_LOSS_TYPES = ("logistic_nonsaturating", "logistic_saturating", "lsgan", "hinge_gan")


def l1_loss(x, y, axis=IMAGE_AXES):
    """mean |x - y|."""
    return tf.reduce_mean(tf.abs(x - y), axis=axis)


def l2_regularize(z, axis=1):
    """mean z² over the latent dimensions (a mean, not a norm, as in the original)."""
    return tf.reduce_mean(tf.square(z), axis=axis)


def _gan_term(logits, is_real, loss_type, allow_negative_g_loss):
    """One discriminator response -> per-example loss of labelling it real (or fake)."""
    if loss_type == "logistic_nonsaturating":
        value = tf.nn.softplus(-logits if is_real else logits)
    elif loss_type == "logistic_saturating":
        # What the original computes: log(1 - σ(D)) when labelling real, -log(1 - σ(D)) when
        # labelling fake (so minimising it as the generator loss is the saturating game).
        value = -tf.nn.softplus(logits) if is_real else tf.nn.softplus(logits)
    elif loss_type == "lsgan":
        value = tf.square(logits - (1.0 if is_real else 0.0))
    elif loss_type == "hinge_gan":
        if allow_negative_g_loss:
            value = -logits
        else:
            value = tf.nn.relu(1.0 - logits if is_real else 1.0 + logits)
    else:
        raise ValueError(f"--d_loss_type={loss_type} is not one of {', '.join(GAN_LOSS_TYPES)}")
    return tf.reduce_mean(value, axis=IMAGE_AXES)


def multiscale_gan_loss(disc_outputs, is_real, loss_type, allow_negative_g_loss=False):
    """GAN loss averaged over the discriminator scales; each scale's last output is its logits.

    `allow_negative_g_loss` (hinge only) is the generator's hinge loss, -mean(D(fake)).
    """
    total = 0.0
    for scale_outputs in disc_outputs:
        total += _gan_term(scale_outputs[-1], is_real, loss_type, allow_negative_g_loss)
    return total / len(disc_outputs)


def multiscale_feature_matching_loss(disc_real, disc_fake):
    """L1 between the real and fake discriminator outputs (logits included), summed over
    layers and averaged over scales."""
    total = 0.0
    for real_outputs, fake_outputs in zip(disc_real, disc_fake, strict=True):
        for real_map, fake_map in zip(real_outputs, fake_outputs, strict=True):
            total += l1_loss(real_map, fake_map)
    return total / len(disc_real)


def gradient_penalty(gradient, gamma):
    """R1/R2: 0.5·γ·Σ grad² per example."""
    return 0.5 * gamma * tf.reduce_sum(tf.square(gradient), axis=IMAGE_AXES)


def segmentation_loss(label_map, logits):
    """Per-pixel softmax cross-entropy against the oracle labels [B, H, W], mean over H, W."""
    labels = tf.cast(label_map, tf.int32)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits), axis=(1, 2))
