"""What both LSR model types share: the layout branch, K-shot encoding, optimizers."""

from __future__ import annotations

import tensorflow as tf

from lsr import networks, options


def learning_rate_schedule(
    global_step, lr_init, lr_warmstart_steps, decay_start_step, decay_end_step, decay_num_intervals, starting_step=0
):
    """Zero-argument callable: the learning rate at the current value of `global_step`.

    Linear warm-up over `lr_warmstart_steps` from `starting_step`, constant up to
    `decay_start_step`, then lr_init / max(1, decay_num_intervals * progress) with progress
    running 0 -> 1 up to `decay_end_step` (so 1/t, not linear). float32 like the original.
    """
    lr_init = tf.constant(lr_init, tf.float32)
    warm = tf.constant(lr_warmstart_steps, tf.float32)
    start = tf.constant(decay_start_step, tf.float32)
    end = tf.constant(decay_end_step, tf.float32)
    intervals = tf.constant(decay_num_intervals, tf.float32)

    def learning_rate():
        step = tf.cast(global_step, tf.float32)
        # All three branches are evaluated; the unused ones may divide by zero harmlessly.
        warming_up = lr_init * ((step + 1e-8 - starting_step) / warm)
        decaying = lr_init / tf.maximum(1.0, (step - start) / (end - start) * intervals)
        return tf.where(step < starting_step + warm, warming_up, tf.where(step <= start, lr_init, decaying))

    return learning_rate


def network_variables(*nets) -> list:
    """Trainable variables of `nets`, in order."""
    return [v for net in nets for v in net.trainable_variables]


def encode_few_shots(encoder, frames, training):
    """Latent of each example from its K frames [B, K, H, W, C] (or one frame [B, H, W, C]):
    the frames go through the encoder as one batch and their latents are averaged."""
    frames = tf.convert_to_tensor(frames, tf.float32)
    if frames.shape.rank == 4:
        return encoder(frames, training=training)
    k = frames.shape[1]
    latents = encoder(tf.reshape(frames, [-1, *frames.shape[2:]]), training=training)
    return tf.reduce_mean(tf.reshape(latents, [-1, k, latents.shape[-1]]), axis=1)


class BaseHeadSynthesisModel:
    """Holds the layout generator; subclasses add their other networks and optimizers.

    Networks and optimizers live in attributes named like their checkpoint keys
    (`layout_generator`, `g_optimizer`, ...); `get_networks()` / `get_optimizers()` give the
    dictionaries `lsr.checkpoint` saves.
    """

    def __init__(self, config):
        options.validate_options(config)
        self.config = config
        self.layout_generator = networks.build_layout_generator(config)

    def compute_layout(self, conditional_inputs, z_layout, training):
        """Layout generator outputs: logits, softmax, argmax and the auxiliary RGB frame."""
        config = self.config
        segmap_logits = self.layout_generator(conditional_inputs, z_layout, training=training)
        aux_frame_recon = None
        if config.multi_task_training:
            segmap_logits, aux_frame_recon = tf.split(
                segmap_logits, [config.num_segmentation_classes, config.output_nc], axis=-1
            )
            if config.output_nonlinearity == "tanh":
                aux_frame_recon = tf.nn.tanh(aux_frame_recon)
        return {
            "segmap_logits": segmap_logits,
            "segmap_prob_map": tf.nn.softmax(segmap_logits, axis=-1),
            "segmap_label_map": tf.math.argmax(segmap_logits, axis=-1, output_type=tf.int32),
            "aux_frame_recon": aux_frame_recon,
        }

    def build_networks(self, batch_size: int = 1):
        """Create every variable by running the networks once on zeros at --train_resolution
        (checkpoints restore into existing variables only); a no-op once all are built."""
        if all(network.built for network in self.get_networks().values()):
            return
        size = self.config.train_resolution
        channels = 6 if self.config.concat_conditional_inputs_to_encoder else 3
        landmarks = tf.zeros([batch_size, size, size, 3])
        outputs = self.process(tf.zeros([batch_size, size, size, channels]), landmarks, training=False)
        discriminator = self.get_networks().get("discriminator")
        if discriminator is not None:
            discriminator(outputs["output"], landmarks, training=False)

    def _adam(self, learning_rate, name):
        # The release was trained with the Keras OptimizerV2 Adam; only its legacy class
        # writes the same checkpoint keys (iter, beta_1, beta_2, decay, m/v slots).
        return tf.keras.optimizers.legacy.Adam(
            learning_rate=learning_rate, beta_1=self.config.adam_beta1, beta_2=self.config.adam_beta2, name=name
        )

    def get_optimizers(self) -> dict:
        """Optimizers by checkpoint name (empty until `create_optimizers`)."""
        names = ("g_optimizer", "d_optimizer", "g_layout_optimizer")
        return {name: getattr(self, name) for name in names if getattr(self, name, None) is not None}
