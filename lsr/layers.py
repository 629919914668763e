"""Keras building blocks of the LSR networks (NHWC, float32).

Attribute names (`conv0`, `norm0`, `spade_norm`, `conv_block1`, `shortcut`, ...) are parts of
the checkpoint keys, so they follow the original even where a clearer name exists.
"""

from __future__ import annotations

import warnings

import numpy as np
import tensorflow as tf

with warnings.catch_warnings():
    # tfa prints an end-of-life notice on import; LSR needs only its InstanceNormalization.
    warnings.simplefilter("ignore", UserWarning)
    import tensorflow_addons as tfa

SQRT2 = float(np.sqrt(2.0))


def _runtime_coefficient(kernel_shape, gain: float) -> np.float32:
    """He scale times `gain` for a [..., fan_in..., out] kernel, rounded to float32 once."""
    fan_in = int(np.prod(list(kernel_shape)[:-1]))
    return np.float32(gain * (1.0 / np.sqrt(fan_in)))


class Conv2DScaled(tf.keras.layers.Conv2D):
    """'same' Conv2D with an equalised learning rate (ProGAN).

    The kernel is stored ~N(0, 1) and multiplied by gain/sqrt(fan_in) at every call, so a
    checkpoint holds the unscaled kernel.
    """

    def __init__(self, filters, kernel_size, gain: float = SQRT2, **kwargs):
        kwargs.setdefault("padding", "same")
        super().__init__(
            filters, kernel_size, kernel_initializer=tf.keras.initializers.RandomNormal(stddev=1.0), **kwargs
        )
        self.gain = gain

    def build(self, input_shape):
        super().build(input_shape)
        self.runtime_coeff = _runtime_coefficient(self.kernel.shape, self.gain)

    def call(self, inputs):
        outputs = self.convolution_op(inputs, self.kernel * self.runtime_coeff)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        return self.activation(outputs)


class DenseScaled(tf.keras.layers.Dense):
    """Dense layer with an equalised learning rate (see `Conv2DScaled`)."""

    def __init__(self, units, gain: float = SQRT2, **kwargs):
        super().__init__(units, kernel_initializer=tf.keras.initializers.RandomNormal(stddev=1.0), **kwargs)
        self.gain = gain

    def build(self, input_shape):
        super().build(input_shape)
        self.runtime_coeff = _runtime_coefficient(self.kernel.shape, self.gain)

    def call(self, inputs):
        outputs = tf.matmul(inputs, self.kernel * self.runtime_coeff)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        return self.activation(outputs)


def conv_layer(
    conv_type: str, filters: int, kernel_size: int, gain: float = SQRT2, glorot_normal: bool = False, **kwargs
) -> tf.keras.layers.Conv2D:
    """A 'same' convolution of a --*conv_type: 'scaled' (gain applies) or 'regular'.

    `glorot_normal` is the --faithful_spade_hacks initialiser of regular convolutions.
    """
    if conv_type == "scaled":
        return Conv2DScaled(filters, kernel_size, gain=gain, **kwargs)
    if conv_type == "regular":
        init = "glorot_normal" if glorot_normal else "glorot_uniform"
        return tf.keras.layers.Conv2D(filters, kernel_size, padding="same", kernel_initializer=init, **kwargs)
    raise ValueError(f"unsupported conv_type '{conv_type}' (use scaled or regular)")


def dense_layer(conv_type: str, units: int, glorot_normal: bool = False, **kwargs) -> tf.keras.layers.Dense:
    """A dense layer matching `conv_layer` (gain sqrt(2) when scaled)."""
    if conv_type == "scaled":
        return DenseScaled(units, **kwargs)
    if conv_type == "regular":
        init = "glorot_normal" if glorot_normal else "glorot_uniform"
        return tf.keras.layers.Dense(units, kernel_initializer=init, **kwargs)
    raise ValueError(f"unsupported conv_type '{conv_type}' (use scaled or regular)")


def lrelu():
    """The LeakyReLU(0.2) used everywhere except in the encoders."""
    return tf.keras.layers.LeakyReLU(alpha=0.2)


class LayerNormalization(tf.keras.layers.Layer):
    """The original's 'layer_norm': per-sample statistics over H, W and C, dividing by
    std + epsilon (not sqrt(var + epsilon)), with one scalar scale and offset."""

    def __init__(self, center=True, scale=True, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.center, self.scale, self.epsilon = center, scale, epsilon

    def build(self, input_shape):
        self.gamma = self.add_weight("gamma", (1,), initializer="ones") if self.scale else None
        self.beta = self.add_weight("beta", (1,), initializer="zeros") if self.center else None
        super().build(input_shape)

    def call(self, x):
        axes = list(range(1, x.shape.rank))
        mean = tf.reduce_mean(x, axes, keepdims=True)
        x = (x - mean) / (tf.math.reduce_std(x, axes, keepdims=True) + self.epsilon)
        if self.gamma is not None:
            x = x * self.gamma
        if self.beta is not None:
            x = x + self.beta
        return x


def norm_factory(norm_type: str, param_free: bool = False):
    """Zero-argument constructor of the layer a --*_norm_type names, or None for 'none'.

    A 'param_free_' prefix, like `param_free=True`, drops the learned scale and offset.
    """
    if norm_type.startswith("param_free_"):
        norm_type, param_free = norm_type[len("param_free_") :], True
    # Normalisations always compute in float32, also under a mixed-precision policy: bfloat16 sums
    # of a whole feature map lose the mean entirely (tf.nn.moments upcasts only float16).
    args = dict(center=not param_free, scale=not param_free, dtype="float32")
    if norm_type == "none":
        return None
    if norm_type == "instance_norm":
        # tfa's defaults (epsilon 1e-3, one group per channel) are part of the trained model.
        return lambda: tfa.layers.InstanceNormalization(**args, name="instance_normalization")
    if norm_type == "layer_norm":
        return lambda: LayerNormalization(**args, name="layer_normalization")
    if norm_type in ("batch_norm", "sync_batch_norm"):
        return lambda: tf.keras.layers.BatchNormalization(
            **args, synchronized=norm_type == "sync_batch_norm", name="batch_norm"
        )
    raise ValueError(f"unsupported norm_type '{norm_type}'")


def blur_downscale(x):
    """[1,2,1]x[1,2,1]/16 depthwise blur with stride 2 and zero 'SAME' padding (7 -> 4 px)."""
    taps = np.array([1.0, 2.0, 1.0])
    kernel = np.outer(taps, taps) / 16.0
    kernel = np.tile(kernel[:, :, None, None], [1, 1, x.shape[-1], 1])
    # The taps are exact in bfloat16 too, so the kernel follows x's dtype (mixed precision).
    return tf.nn.depthwise_conv2d(x, tf.constant(kernel, x.dtype), strides=[1, 2, 2, 1], padding="SAME")


def downscale2d(x, factor: int, pool_type: str = "average"):
    """Downscale by an integer factor.

    Even factors halve repeatedly (the first halving may blur, later ones box-average 2x2,
    VALID: 7 -> 3 px); an odd remainder is one box average. Pooling step by step rather than
    once keeps the original's float rounding.
    """
    if factor <= 1:
        return x
    if factor % 2:
        return tf.nn.avg_pool2d(x, factor, factor, "VALID")
    x = blur_downscale(x) if pool_type == "blur" else tf.nn.avg_pool2d(x, 2, 2, "VALID")
    return downscale2d(x, factor // 2)


class ResBlock(tf.keras.layers.Layer):
    """Pre-activation residual block at constant resolution (encoders, U-Net bottleneck).

    Two [norm, activation, 3x3 conv] branches, the first to min(fin, fout) channels, plus a
    1x1 bias-free projection shortcut when fin != fout. Each branch is a Keras Sequential
    because the checkpoint names its convolution `<branch>/layer_with_weights-<i>`.
    """

    def __init__(self, fin, fout, conv, act, norm=None, **kwargs):
        super().__init__(**kwargs)

        def branch(filters, kernel_size, name, preactivate=True, use_bias=True):
            stack = []
            if preactivate:
                stack += ([] if norm is None else [norm()]) + [act()]
            stack.append(conv(filters, kernel_size, use_bias=use_bias, name="conv2d"))
            return tf.keras.Sequential(stack, name=name)

        # 'Shortuct' is the original's (misspelt) Keras name.
        self.shortcut = branch(fout, 1, "Shortuct", preactivate=False, use_bias=False) if fin != fout else None
        self.conv_block0 = branch(min(fin, fout), 3, "Conv0")
        self.conv_block1 = branch(fout, 3, "Conv1")

    def call(self, x):
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return self.conv_block1(self.conv_block0(x)) + shortcut


class ResBlockDown(tf.keras.layers.Layer):
    """Residual block that halves the resolution (U-Net encoder, discriminator).

    main: norm0, act, 3x3 conv (fin), norm1, act, 3x3 conv (fout), downscale;
    shortcut: 1x1 bias-free conv, downscale; output (main + shortcut) * mul_factor.
    """

    def __init__(self, fout, conv, act, norm=None, pool_type="average", mul_factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.fout, self.pool_type, self.mul_factor = fout, pool_type, mul_factor
        self._conv, self._norm, self._act = conv, norm, act()

    def build(self, input_shape):
        self.conv_shortcut = self._conv(self.fout, 1, use_bias=False, name="conv_shortcut")
        self.norm0 = self._norm() if self._norm is not None else None
        self.conv0 = self._conv(input_shape[-1], 3, name="Conv0")
        self.norm1 = self._norm() if self._norm is not None else None
        self.conv1 = self._conv(self.fout, 3, name="Conv1")
        super().build(input_shape)

    def call(self, x):
        shortcut = downscale2d(self.conv_shortcut(x), 2, self.pool_type)
        y = self.conv0(self._act(x if self.norm0 is None else self.norm0(x)))
        y = self.conv1(self._act(y if self.norm1 is None else self.norm1(y)))
        return (downscale2d(y, 2, self.pool_type) + shortcut) * self.mul_factor


class FeatureModulation(tf.keras.layers.Layer):
    """norm(x) * (1 + gamma) + beta, with a parameter-free `norm` (or none)."""

    def __init__(self, norm=None, **kwargs):
        super().__init__(**kwargs)
        self.norm_layer = norm() if norm is not None else None

    def call(self, x, gamma, beta):
        if self.norm_layer is not None:
            x = tf.cast(self.norm_layer(x), gamma.dtype)  # a float32 norm under mixed precision
        return x * (1 + gamma) + beta


class StyleModulation(tf.keras.layers.Layer):
    """AdaIN-style modulation: a dense layer maps the latent to per-channel (gamma, beta)."""

    def __init__(self, dense, norm=None, **kwargs):
        super().__init__(**kwargs)
        self._dense = dense
        self.feature_mod = FeatureModulation(norm, name="feature_mod")

    def build(self, input_shape):
        self.channels = input_shape[-1]
        self.dense = self._dense(2 * self.channels, name="dense")
        super().build(input_shape)

    def call(self, x, z):
        gammas_and_betas = tf.reshape(self.dense(z), [-1, 2, 1, 1, self.channels])
        return self.feature_mod(x, gammas_and_betas[:, 0], gammas_and_betas[:, 1])


class ResBlockUp(tf.keras.layers.Layer):
    """Residual block that doubles the resolution, modulated by a latent (U-Net decoder).

    main: norm0(x, z), act, upsample, 3x3 conv, norm1(., z), act, 3x3 conv;
    shortcut: upsample, 1x1 bias-free conv; output main + shortcut.
    """

    def __init__(self, fout, conv, act, norm, interpolation="bilinear", **kwargs):
        super().__init__(**kwargs)
        self.fout, self._conv, self._norm, self._act = fout, conv, norm, act()
        self.upsample2d = tf.keras.layers.UpSampling2D(2, interpolation=interpolation)

    def build(self, input_shape):
        self.conv_shortcut = self._conv(self.fout, 1, use_bias=False, name="conv_shortcut")
        self.norm0 = self._norm()
        self.conv0 = self._conv(self.fout, 3, name="Conv0")
        self.norm1 = self._norm()
        self.conv1 = self._conv(self.fout, 3, name="Conv1")
        super().build(input_shape)

    def call(self, x, z):
        shortcut = self.conv_shortcut(self.upsample2d(x))
        y = self.conv0(self.upsample2d(self._act(self.norm0(x, z))))
        y = self.conv1(self._act(self.norm1(y, z)))
        return y + shortcut


class SPADENormalization(tf.keras.layers.Layer):
    """Spatially-adaptive normalisation (SPADE) of x by a conditioning map.

    The map is box-downscaled to x's resolution, projected by a 3x3 conv + ReLU (`conv0`),
    and two 3x3 convs give per-pixel gamma and beta for `FeatureModulation`.
    """

    def __init__(self, conv, norm, projection_filters, **kwargs):
        super().__init__(**kwargs)
        self._conv, self.projection_filters = conv, projection_filters
        self.feature_mod = FeatureModulation(norm, name="feature_mod")

    def build(self, input_shape):
        channels = input_shape[-1]
        self.conv0 = self._conv(self.projection_filters, 3, activation=tf.nn.relu, name="spade_projection_conv")
        self.gamma_conv = self._conv(channels, 3, name="gamma_conv")
        self.beta_conv = self._conv(channels, 3, name="beta_conv")
        super().build(input_shape)

    def call(self, x, cond):
        cond = self.conv0(downscale2d(cond, cond.shape[1] // x.shape[1]))
        return self.feature_mod(x, self.gamma_conv(cond), self.beta_conv(cond))


class SPADEConvBlock(tf.keras.layers.Layer):
    """SPADE normalisation, optional activation, then a convolution to `fout` channels."""

    def __init__(self, fout, conv, spade_conv, norm, act, projection_filters, kernel_size=3, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.spade_norm = SPADENormalization(spade_conv, norm, projection_filters)
        self.activation = act() if act else None
        self.conv = conv(fout, kernel_size, use_bias=use_bias)

    def call(self, x, cond):
        x = self.spade_norm(x, cond)
        if self.activation is not None:
            x = self.activation(x)
        return self.conv(x)


class SPADEResBlock(tf.keras.layers.Layer):
    """Residual block of SPADE conv blocks (to min(fin, fout), then to fout); the shortcut is
    a SPADE-normalised 1x1 bias-free conv without activation when fin != fout."""

    def __init__(self, fin, fout, conv, spade_conv, norm, act, projection_filters, **kwargs):
        super().__init__(**kwargs)
        block_args = dict(conv=conv, spade_conv=spade_conv, norm=norm, projection_filters=projection_filters)
        self.shortcut = (
            SPADEConvBlock(fout, act=None, kernel_size=1, use_bias=False, **block_args) if fin != fout else None
        )
        self.conv_block0 = SPADEConvBlock(min(fin, fout), act=act, **block_args)
        self.conv_block1 = SPADEConvBlock(fout, act=act, **block_args)

    def call(self, x, cond):
        shortcut = x if self.shortcut is None else self.shortcut(x, cond)
        return self.conv_block1(self.conv_block0(x, cond), cond) + shortcut
