"""--model_type=two_step_syn: landmarks -> layout (U-Net) -> image (SPADE), the full LSR."""

from __future__ import annotations

import tensorflow as tf

from lsr import networks
from lsr.models.base_model import BaseHeadSynthesisModel, encode_few_shots, learning_rate_schedule, network_variables


class TwoStepSynthesisModel(BaseHeadSynthesisModel):
    """Style and layout encoders, layout generator, SPADE image generator and, once
    `init_extra_train_and_eval_networks()` ran, the discriminator."""

    def __init__(self, config):
        super().__init__(config)
        self.generator = networks.build_image_generator(config)
        self.encoder = networks.build_encoder(config, layout=False)
        self.layout_encoder = networks.build_encoder(config, layout=True) if config.separate_layout_encoder else None
        self.discriminator = None
        self.g_optimizer = self.d_optimizer = self.g_layout_optimizer = None

    def init_extra_train_and_eval_networks(self):
        """Build the discriminator if an adversarial or feature-matching loss is weighted."""
        if self.discriminator is None and (self.config.w_loss_gan or self.config.w_loss_feat):
            self.discriminator = networks.build_discriminator(self.config)

    def compute_latents(self, encoder_inputs, training):
        """(z_style, z_layout) from the few-shot frames ⊕ landmark images [B, K, H, W, 6]."""
        z = encode_few_shots(self.encoder, encoder_inputs, training)
        if self.layout_encoder is None:
            return tuple(tf.split(z, 2, axis=-1))
        return z, encode_few_shots(self.layout_encoder, encoder_inputs, training)

    def process(self, encoder_inputs, conditional_inputs, training, precomputed_latents=None):
        """Forward pass: latents, layout of the target landmarks, then the image ('output')."""
        if precomputed_latents is None:
            precomputed_latents = self.compute_latents(encoder_inputs, training)
        z_style, z_layout = precomputed_latents
        outputs = self.compute_layout(conditional_inputs, z_layout, training)
        spatial_input = outputs["segmap_prob_map"]
        if self.config.concat_contours_to_layout:
            spatial_input = tf.concat([conditional_inputs, spatial_input], axis=-1)
        outputs["output"] = self.generator(spatial_input, z_style, training=training)
        outputs["latents"] = (z_style, z_layout)
        return outputs

    def create_optimizers(
        self,
        global_step,
        lr_warmstart_steps,
        decay_start_step,
        decay_end_step,
        decay_num_intervals,
        starting_step=0,
        lr_mul_factor=1.0,
    ):
        """Adam for G (both generators and encoders), for D (if built) and, when the
        segmentation loss has its own optimizer and weight, for the layout branch."""

        steps = (lr_warmstart_steps, decay_start_step, decay_end_step, decay_num_intervals, starting_step)

        def schedule(lr):
            return learning_rate_schedule(global_step, lr_mul_factor * lr, *steps)

        g_lr = schedule(self.config.g_lr)
        self.g_optimizer = self._adam(g_lr, "Adam_opt_G")
        if self.config.separate_layout_optimizer and self.config.w_loss_segmentation > 0:
            self.g_layout_optimizer = self._adam(g_lr, "Adam_opt_G_layout")
        if self.discriminator is not None:
            self.d_optimizer = self._adam(schedule(self.config.d_lr), "Adam_opt_D")
        return self.get_optimizers()

    def trainable_variables_by_optimizer(self) -> dict:
        """Variables each optimizer updates during (meta-)training."""
        g_nets = [self.layout_generator, self.generator, self.encoder]
        layout_nets = [self.layout_generator, self.encoder]
        if self.layout_encoder is not None:
            g_nets.insert(1, self.layout_encoder)
            layout_nets[1] = self.layout_encoder
        var_lists = {"g_optimizer": network_variables(*g_nets), "g_layout_optimizer": network_variables(*layout_nets)}
        if self.discriminator is not None:
            var_lists["d_optimizer"] = network_variables(self.discriminator)
        return {name: var_lists[name] for name in self.get_optimizers()}

    def get_networks(self) -> dict:
        """Networks by checkpoint name."""
        nets = {"layout_generator": self.layout_generator, "generator": self.generator, "encoder": self.encoder}
        if self.layout_encoder is not None:
            nets["layout_encoder"] = self.layout_encoder
        if self.discriminator is not None:
            nets["discriminator"] = self.discriminator
        return nets
