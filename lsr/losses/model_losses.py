"""The losses of both model types, weighted by the --w_loss_* flags: `ModelLosses`.

The original reads VGG19 from Keras' download cache and VGG-Face from a hard-coded cluster
path; here both are local .h5 files named by --vgg19_weights_path and --vgg_face_weights_path
(defined in `lsr.options` with the other flags that are not the original's).
"""

from __future__ import annotations

import tensorflow as tf

from common.errors import InputError
from lsr import options
from lsr.losses import losses
from lsr.losses.vgg_loss import VGGFaceLoss, VGGLoss


def _weights_path(config, name):
    # A config object lacking the path (or leaving it empty) gets the flag's default.
    return getattr(config, name, None) or options.FLAGS[name].default


def average_losses(per_example: dict, global_batch_size: int) -> dict:
    """Each per-example loss summed over the batch and divided by the global batch size."""
    return {
        key: tf.nn.compute_average_loss(value, global_batch_size=global_batch_size)
        for key, value in per_example.items()
    }


class ModelLosses:
    """Builds the networks the weighted losses need (VGG19, VGG-Face) and computes the losses.

    Keys match the original's summaries: loss_d_real, loss_d_fake, loss_d, real_gp, fake_gp,
    loss_g_gan, loss_g_feat, loss_g_vgg, loss_g_l1, loss_z_l2, loss_z_layout_l2,
    loss_g_vgg_face_recon_and_id, loss_g_segmentation, loss_g. LPIPS (--w_loss_lpips) needs
    the LPIPS frozen graphs, which are not supported here.
    """

    def __init__(self, config, vgg_face_arch=None):
        if config.w_loss_lpips:
            raise InputError(
                "--w_loss_lpips>0 is not supported: LPIPS frozen graphs are not loaded by this re-implementation"
            )
        self.config = config
        self.vgg_loss = VGGLoss(_weights_path(config, "vgg19_weights_path")) if config.w_loss_vgg else None
        self.vgg_face_loss = None
        if config.w_loss_vgg_face_recon or config.w_loss_identity:
            kwargs = {} if vgg_face_arch is None else {"arch": vgg_face_arch}
            self.vgg_face_loss = VGGFaceLoss(_weights_path(config, "vgg_face_weights_path"), **kwargs)

    def load_pretrained_weights(self):
        """Load VGG-Face (training and fine-tuning only, as in the original)."""
        if self.vgg_face_loss is not None:
            self.vgg_face_loss.load_pretrained_weights()

    def compute_losses(self, model, outputs, batch, training, global_batch_size=None):
        """Losses of one batch: per example ([B] each), or averaged over `global_batch_size`.

        `outputs` is `model.process(...)`; `batch` a provider batch (frame_gt, contour_gt,
        segmap_gt). With `training`, R1/R2 penalties are added to loss_d; call this inside
        the training GradientTape so that they are differentiated too.
        """
        config = self.config
        real = tf.convert_to_tensor(batch["frame_gt"], tf.float32)
        fake = outputs["output"]
        z_style, z_layout = outputs["latents"]
        per_example, loss_g = {}, 0.0

        def add(key, value, to_g=True):
            nonlocal loss_g
            per_example[key] = value
            if to_g:
                loss_g += value

        pretraining = config.model_type == "pretrain_layout"
        if not pretraining and (config.w_loss_gan or config.w_loss_feat):
            disc_real, disc_fake = self._discriminate(model, real, fake, batch, training, per_example)
            if config.w_loss_gan:
                add(
                    "loss_g_gan",
                    config.w_loss_gan
                    * losses.multiscale_gan_loss(
                        disc_fake, True, config.d_loss_type, allow_negative_g_loss=config.d_loss_type == "hinge_gan"
                    ),
                )
            if config.w_loss_feat:
                add("loss_g_feat", config.w_loss_feat * losses.multiscale_feature_matching_loss(disc_real, disc_fake))
        # Pre-training reconstructs the auxiliary RGB only with --multi_task_training.
        if fake is not None:
            if config.w_loss_vgg:
                add("loss_g_vgg", config.w_loss_vgg * self.vgg_loss(real, fake))
            if config.w_loss_l1:
                add("loss_g_l1", config.w_loss_l1 * losses.l1_loss(fake, real))
        if config.w_loss_z_l2 and not pretraining:
            add("loss_z_l2", config.w_loss_z_l2 * losses.l2_regularize(z_style))
        if config.w_loss_z_layout_l2:
            add("loss_z_layout_l2", config.w_loss_z_layout_l2 * losses.l2_regularize(z_layout))
        if self.vgg_face_loss is not None and fake is not None:
            add(
                "loss_g_vgg_face_recon_and_id",
                self.vgg_face_loss(real, fake, config.w_loss_vgg_face_recon, config.w_loss_identity),
            )
        if config.w_loss_segmentation:
            # Meta-learning optimises it separately (g_layout_optimizer) by default.
            add(
                "loss_g_segmentation",
                config.w_loss_segmentation * losses.segmentation_loss(batch["segmap_gt"], outputs["segmap_logits"]),
                to_g=pretraining or not config.separate_layout_optimizer,
            )
        per_example["loss_g"] = loss_g * tf.ones_like(real[:, 0, 0, 0])
        if global_batch_size is None:
            return per_example
        return average_losses(per_example, global_batch_size)

    def _discriminate(self, model, real, fake, batch, training, per_example):
        """D on real and fake (each with the target landmarks); fills the loss_d terms."""
        config = self.config
        cond = batch["contour_gt"] if config.use_conditional_disc else None
        penalties = training and config.w_loss_gan and (config.r1_gamma or config.r2_gamma)
        # A tape of its own: the penalties need d(loss_d)/d(image), and the caller's tape
        # records this gradient computation, so the penalties train D as in the original.
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([real, fake])
            disc_real = model.discriminator(real, cond, training=training)
            disc_fake = model.discriminator(fake, cond, training=training)
            if config.w_loss_gan:
                d_real = losses.multiscale_gan_loss(disc_real, True, config.d_loss_type)
                d_fake = losses.multiscale_gan_loss(disc_fake, False, config.d_loss_type)
        if config.w_loss_gan:
            per_example.update(loss_d_real=d_real, loss_d_fake=d_fake, loss_d=d_real + d_fake)
        if penalties:
            for key, gamma, loss, image in (
                ("real_gp", config.r1_gamma, d_real, real),
                ("fake_gp", config.r2_gamma, d_fake, fake),
            ):
                if gamma:
                    per_example[key] = losses.gradient_penalty(tape.gradient(loss, image), gamma)
                    per_example["loss_d"] += per_example[key]
        del tape
        return disc_real, disc_fake
