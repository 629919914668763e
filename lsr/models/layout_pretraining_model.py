"""--model_type=pretrain_layout: the layout branch alone, trained against oracle parsings."""

from __future__ import annotations

import tensorflow as tf

from lsr import networks
from lsr.models.base_model import BaseHeadSynthesisModel, encode_few_shots, learning_rate_schedule, network_variables


class LayoutPretrainingModel(BaseHeadSynthesisModel):
    """Layout encoder and layout generator; the auxiliary RGB channels are the 'output'."""

    def __init__(self, config):
        super().__init__(config)
        # Without a separate layout encoder the shared encoder (saved as 'encoder') is used.
        self.layout_encoder = networks.build_encoder(config, layout=config.separate_layout_encoder)
        self.g_layout_optimizer = None

    def compute_latents(self, encoder_inputs, training):
        """(z_style, z_layout); z_style is None with a separate layout encoder."""
        z = encode_few_shots(self.layout_encoder, encoder_inputs, training)
        if self.config.separate_layout_encoder:
            return None, z
        return tuple(tf.split(z, 2, axis=-1))

    def process(self, encoder_inputs, conditional_inputs, training, precomputed_latents=None):
        """Forward pass: latents and the layout of the target landmarks."""
        if precomputed_latents is None:
            precomputed_latents = self.compute_latents(encoder_inputs, training)
        outputs = self.compute_layout(conditional_inputs, precomputed_latents[1], training)
        outputs["output"] = outputs["aux_frame_recon"]
        outputs["latents"] = precomputed_latents
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
        """One Adam ('Adam_opt_G_layout') over the layout generator and encoder."""
        steps = (lr_warmstart_steps, decay_start_step, decay_end_step, decay_num_intervals, starting_step)
        lr = learning_rate_schedule(global_step, lr_mul_factor * self.config.g_lr, *steps)
        self.g_layout_optimizer = self._adam(lr, "Adam_opt_G_layout")
        return self.get_optimizers()

    def trainable_variables_by_optimizer(self) -> dict:
        """Variables each optimizer updates during training."""
        if self.g_layout_optimizer is None:
            return {}
        return {"g_layout_optimizer": network_variables(self.layout_generator, self.layout_encoder)}

    def get_networks(self) -> dict:
        """Networks by checkpoint name."""
        name = "layout_encoder" if self.config.separate_layout_encoder else "encoder"
        return {"layout_generator": self.layout_generator, name: self.layout_encoder}
