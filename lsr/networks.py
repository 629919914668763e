"""The LSR networks: ResNet encoders, layout U-Net, SPADE image generator, discriminator.

Every class keeps the original's attribute names and `blocks` list positions (layers without
variables included), because those form the checkpoint keys. `build_*(config)` map the absl
flags (see `lsr.options`) to constructor arguments the way the original's factories do.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from lsr import layers

LAYOUT_GENERATOR_NAME = "layout_gen"
GENERATOR_NAME = "image_gen"
ENCODER_NAME = "image_enc"
LAYOUT_ENCODER_NAME = "layout_enc"
DISCRIMINATOR_NAME = "discriminator"


def _factories(conv_type: str, faithful_spade_hacks: bool):
    conv = functools.partial(layers.conv_layer, conv_type, glorot_normal=faithful_spade_hacks)
    dense = functools.partial(layers.dense_layer, conv_type, glorot_normal=faithful_spade_hacks)
    return conv, dense


class EncoderResnet(tf.keras.Model):
    """Frame (+ landmark image) -> latent: 7x7 conv + ReLU, `num_downsamples` x (2x2 average
    pool, ResBlock doubling the width up to nf_max), ReLU, flatten, dense."""

    def __init__(
        self,
        nf_start=32,
        num_downsamples=6,
        conv_type="scaled",
        norm_type="none",
        style_nc=512,
        nf_max=512,
        global_avg_pool=False,
        add_fc=True,
        normalize_latent=False,
        faithful_spade_hacks=False,
        name=None,
    ):
        super().__init__(name=name)
        conv, dense = _factories(conv_type, faithful_spade_hacks)
        norm = layers.norm_factory(norm_type)
        act = tf.keras.layers.ReLU
        # The hacks drop the bias before an instance norm; only `from_rgb` is affected since
        # the residual blocks set their biases explicitly.
        from_rgb_bias = not (faithful_spade_hacks and "instance_norm" in norm_type)
        nf = nf_start
        blocks = [conv(nf, 7, use_bias=from_rgb_bias, activation=act(), name="from_rgb")]
        for i in reversed(range(num_downsamples)):
            next_nf = style_nc if i == 0 and not add_fc else min(2 * nf, nf_max)
            blocks.append(tf.keras.layers.AveragePooling2D(2))
            blocks.append(layers.ResBlock(nf, next_nf, conv, act, norm, name=f"downsample_resblock_{i}"))
            nf = next_nf
        blocks.append(act())
        if global_avg_pool:
            blocks.append(tf.keras.layers.GlobalAveragePooling2D())
        if add_fc:
            blocks.append(tf.keras.layers.Flatten())
        self.blocks = blocks
        self.fc_z = dense(style_nc, name="dense") if add_fc else None
        self.normalize_latent = normalize_latent

    def call(self, x, training=None):
        for block in self.blocks:
            x = block(x)
        if self.fc_z is not None:
            x = self.fc_z(x)
        if self.normalize_latent:
            # In float32: under mixed precision a bfloat16 mean of style_nc squares drifts.
            latent = tf.cast(x, tf.float32)
            latent = latent * tf.math.rsqrt(tf.reduce_mean(tf.square(latent), axis=1, keepdims=True) + 1e-8)
            x = tf.cast(latent, x.dtype)
        return x


class GeneratorSPADE(tf.keras.Model):
    """Latent -> image, conditioned on a spatial map (the layout) through SPADE.

    dense to starting_res^2 x nf_max (no activation), reshape, SPADE ResBlock, then
    `num_upsamples` x (2x upsampling, SPADE ResBlock halving the width), LReLU, to_rgb.
    """

    def __init__(
        self,
        nf=32,
        num_upsamples=5,
        conv_type="scaled",
        norm_type="instance_norm",
        interpolation="bilinear",
        starting_res=7,
        nf_max=512,
        output_nc=3,
        num_projection_filters=64,
        output_activation=None,
        faithful_spade_hacks=False,
        name=None,
    ):
        super().__init__(name=name)
        conv, dense = _factories(conv_type, faithful_spade_hacks)
        if faithful_spade_hacks:
            spade_conv = functools.partial(layers.conv_layer, "regular", glorot_normal=True)
        else:
            spade_conv = conv
        block_args = dict(
            conv=conv,
            spade_conv=spade_conv,
            norm=layers.norm_factory(norm_type, param_free=True),
            act=layers.lrelu,
            projection_filters=num_projection_filters,
        )

        def width(level):
            return min(nf * 2 ** (num_upsamples - level - 1), nf_max)

        nf0 = width(-1)
        blocks = [
            dense(starting_res * starting_res * nf0),
            tf.keras.layers.Reshape((starting_res, starting_res, nf0)),
            layers.SPADEResBlock(nf0, nf0, **block_args),
        ]
        for i in range(num_upsamples):
            blocks.append(tf.keras.layers.UpSampling2D(2, interpolation=interpolation))
            blocks.append(layers.SPADEResBlock(width(i - 1), width(i), **block_args, name=f"spade_upsample_block_{i}"))
        blocks.append(layers.lrelu())
        self.blocks = blocks
        self.to_rgb = conv(output_nc, 3, gain=1.0, activation=output_activation)

    def call(self, x_in, z_style, training=None):
        x = z_style
        for block in self.blocks:
            x = block(x, x_in) if isinstance(block, layers.SPADEResBlock) else block(x)
        return self.to_rgb(x)


class UNetEncoderBlock(tf.keras.layers.Layer):
    """One U-Net downsampling level; `blocks` is a list because the checkpoint path is
    `encoder_blocks/<i>/blocks/0` (the original could prepend self-attention)."""

    def __init__(self, resblock, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [resblock]

    def call(self, x):
        return self.blocks[0](x)


class UNetDecoderBlock(tf.keras.layers.Layer):
    """One U-Net upsampling level, followed by concatenating the skip (after x) if any."""

    def __init__(self, resblock, **kwargs):
        super().__init__(**kwargs)
        self.resblock_up_fn = resblock

    def call(self, x, z, skip=None):
        x = self.resblock_up_fn(x, z)
        return x if skip is None else tf.concat([x, skip], axis=-1)


class UNetResnet(tf.keras.Model):
    """Residual U-Net whose decoder is modulated by a latent (the layout generator).

    Encoder: `num_unet_blocks` ResBlockDowns (blur pooling, parameter-free norm) doubling
    the width from nf_start up to nf_max; optional bottleneck ResBlocks; decoder: ResBlockUps
    with StyleModulation, mirroring the encoder widths, each but the last followed by the
    encoder output of the same resolution; then a 3x3 `output_conv` (gain 1).
    """

    def __init__(
        self,
        num_unet_blocks=5,
        num_bottleneck_blocks=0,
        nf_start=32,
        nf_max=512,
        output_nc=22,
        conv_type="scaled",
        norm_type="instance_norm",
        parametric_encoder_norm=False,
        interpolation="bilinear",
        output_activation=None,
        use_skips=True,
        faithful_spade_hacks=False,
        name=None,
    ):
        super().__init__(name=name)
        conv, dense = _factories(conv_type, faithful_spade_hacks)
        act = layers.lrelu
        encoder_norm = layers.norm_factory(norm_type, param_free=not parametric_encoder_norm)
        decoder_norm = functools.partial(
            layers.StyleModulation, dense, layers.norm_factory(norm_type, param_free=True), name="style_mod"
        )
        widths, nf = [], nf_start
        self.encoder_blocks = []
        for i in reversed(range(num_unet_blocks)):
            widths.append(nf)
            nf = min(2 * nf, nf_max)
            resblock = layers.ResBlockDown(nf, conv, act, encoder_norm, pool_type="blur", name=f"Resblock_down_{i}")
            self.encoder_blocks.append(UNetEncoderBlock(resblock, name=f"Downsample_block_{i}"))
        self.bottleneck_blocks = [
            layers.ResBlock(nf, nf, conv, act, encoder_norm, name=f"Bottleneck_block_{i}")
            for i in range(num_bottleneck_blocks)
        ]
        self.decoder_blocks = []
        for i, fout in enumerate(reversed(widths)):
            resblock = layers.ResBlockUp(fout, conv, act, decoder_norm, interpolation, name=f"Resblock_up_{i}")
            self.decoder_blocks.append(UNetDecoderBlock(resblock, name=f"Upsample_block_{i}"))
        self.output_conv = conv(output_nc, 3, gain=1.0, activation=output_activation, name="output_conv")
        self.use_skips = use_skips

    def call(self, x, z_style, training=None):
        skips = []
        for block in self.encoder_blocks:
            x = block(x)
            skips.append(x)
        for block in self.bottleneck_blocks:
            x = block(x)
        last = len(self.decoder_blocks) - 1
        for i, block in enumerate(self.decoder_blocks):
            # Decoder i reaches the resolution of encoder output last-1-i.
            skip = skips[last - 1 - i] if self.use_skips and i < last else None
            x = block(x, z_style, skip)
        return self.output_conv(x)


class DiscriminatorStyleGAN2(tf.keras.Model):
    """StyleGAN2-like residual discriminator returning its feature maps and logits.

    1x1 from_rgb + LReLU, `num_downsamples` ResBlockDowns (blur, x1/sqrt(2)), LReLU, 3x3
    'conv_4x4' + LReLU, flatten, dense + LReLU, reshape to 1x1, 1x1 conv to one logit.
    """

    def __init__(
        self,
        nf_start=32,
        num_downsamples=6,
        conv_type="scaled",
        norm_type="none",
        nf_max=512,
        faithful_spade_hacks=False,
        name=None,
    ):
        super().__init__(name=name)
        conv, dense = _factories(conv_type, faithful_spade_hacks)
        act = layers.lrelu
        norm = layers.norm_factory(norm_type)
        nf = nf_start
        # (layer, whether its output is one of the returned feature maps)
        stages = [(conv(nf, 1, activation=act(), name="from_rgb"), True)]
        for i in reversed(range(num_downsamples)):
            nf_next = min(2 * nf, nf_max)
            stages.append(
                (
                    layers.ResBlockDown(
                        nf_next,
                        conv,
                        act,
                        norm,
                        pool_type="blur",
                        mul_factor=1.0 / np.sqrt(2.0),
                        name=f"Downsample_resblock_{i}",
                    ),
                    True,
                )
            )
            nf = nf_next
        stages += [
            (act(), False),
            (conv(nf, 3, activation=act(), name="conv_4x4"), True),
            (tf.keras.layers.Flatten(), False),
            (dense(nf, activation=act(), name="dense"), False),
            (tf.keras.layers.Reshape((1, 1, nf)), True),
        ]
        self.blocks = [layer for layer, _ in stages]
        self._feature_map_indices = frozenset(i for i, (_, keep) in enumerate(stages) if keep)
        self.compute_logits = tf.keras.Sequential([conv(1, 1, name="conv2d_logits")], name="Disc_logits")

    def call(self, x, training=None):
        feature_maps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self._feature_map_indices:
                feature_maps.append(x)
        return feature_maps + [self.compute_logits(x)]


class MultiScaleDiscriminator(tf.keras.Model):
    """Discriminators on the input (image + conditioning map) at successive 2x box-downscales.

    Returns one list per scale: its feature maps followed by its logits.
    """

    def __init__(self, num_scales=1, name=DISCRIMINATOR_NAME, **kwargs):
        super().__init__(name=name)
        self.discriminators = [DiscriminatorStyleGAN2(name=f"D_scale{i}", **kwargs) for i in range(num_scales)]

    def call(self, x, x_cond=None, training=None):
        inputs = x if x_cond is None else tf.concat([x, x_cond], axis=-1)
        outputs = []
        for scale, discriminator in enumerate(self.discriminators):
            if scale:
                inputs = layers.downscale2d(inputs, 2)
            outputs.append(discriminator(inputs))
        return outputs


def output_activation(config):
    """The image activation --output_nonlinearity names (None or tanh)."""
    return tf.nn.tanh if config.output_nonlinearity == "tanh" else None


def build_generator(config, arch: str, nf: int, output_nc: int, activation, name: str):
    """Image or layout generator of architecture `arch` (--G_arch / --segmap_G_arch)."""
    common = dict(
        conv_type=config.conv_type,
        norm_type=config.generator_norm_type,
        interpolation=config.upsampling_mode,
        nf_max=config.g_nf_max,
        output_nc=output_nc,
        output_activation=activation,
        faithful_spade_hacks=config.faithful_spade_hacks,
        name=name,
    )
    if arch == "spade_gen":
        return GeneratorSPADE(
            nf=nf,
            num_upsamples=config.G_num_upsamples,
            starting_res=config.train_resolution // 2**config.G_num_upsamples,
            num_projection_filters=config.spade_proj_filters,
            **common,
        )
    if arch == "unet_resnet":
        return UNetResnet(
            num_unet_blocks=config.G_num_upsamples,
            num_bottleneck_blocks=config.G_num_bottleneck_blocks,
            nf_start=nf,
            parametric_encoder_norm=config.use_parametric_norm_in_unet_encoder,
            use_skips=config.use_skip_connections,
            **common,
        )
    raise ValueError(f"unsupported generator architecture '{arch}'")


def build_layout_generator(config):
    """U-Net from the target landmark image to segmentation logits (+3 RGB channels)."""
    output_nc = config.num_segmentation_classes + (config.output_nc if config.multi_task_training else 0)
    return build_generator(config, config.segmap_G_arch, config.segmap_g_nf, output_nc, None, LAYOUT_GENERATOR_NAME)


def build_image_generator(config):
    """SPADE generator from the style latent and the layout probabilities to the image."""
    return build_generator(
        config, config.G_arch, config.g_nf, config.output_nc, output_activation(config), GENERATOR_NAME
    )


def build_encoder(config, layout: bool):
    """The layout encoder (`layout=True`) or the style encoder, which with a shared encoder
    (--separate_layout_encoder=false) emits num_latent_embeddings latents."""
    if layout:
        nf, latent_size, name = config.segmap_e_nf, config.style_nc, LAYOUT_ENCODER_NAME
    else:
        nf, name = config.e_nf, ENCODER_NAME
        latent_size = config.num_latent_embeddings * config.style_nc
    return EncoderResnet(
        nf_start=nf,
        num_downsamples=config.E_num_downsamples,
        conv_type=config.e_conv_type,
        norm_type=config.encoder_norm_type,
        style_nc=latent_size,
        global_avg_pool=config.encoder_global_avg_pool,
        add_fc=config.add_fc_to_encoder,
        normalize_latent=config.normalize_latent,
        faithful_spade_hacks=config.faithful_spade_hacks,
        name=name,
    )


def build_discriminator(config):
    """Multi-scale conditional discriminator (--D_arch=resnet_stylegan2)."""
    return MultiScaleDiscriminator(
        num_scales=config.num_disc_scales,
        nf_start=config.d_nf,
        num_downsamples=config.D_num_downsamples,
        conv_type=config.d_conv_type,
        norm_type=config.discriminator_norm_type,
        nf_max=512,
        faithful_spade_hacks=config.faithful_spade_hacks,
    )
