"""Pixel metrics on HxWx3 uint8 RGB images: L1, PSNR, SSIM and MS-SSIM.

SSIM follows Wang et al. 2004 ("Image quality assessment: from error visibility to structural
similarity"): scikit-image's `structural_similarity` with its Gaussian 11x11 window (sigma 1.5),
population covariances, K1 = 0.01, K2 = 0.03, data range 255, averaged over the three channels.
MS-SSIM follows Wang, Simoncelli and Bovik 2003 ("Multi-scale structural similarity for image quality
assessment") with the same window: five scales weighted (0.0448, 0.2856, 0.3001, 0.2363, 0.1333),
contrast-structure terms at the finer scales and the full SSIM at the coarsest, each scale halved by
2x2 averaging (an odd last row or column dropped). Negative terms are clipped to 0 before the
fractional powers, per channel, then the channels are averaged (as TensorFlow's `ssim_multiscale`).
"""

from __future__ import annotations

import numpy as np

from common.errors import InputError

PEAK = 255.0
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scikit-image's Gaussian truncation: an 11-pixel window for sigma 1.5
SSIM_WINDOW = 2 * int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5) + 1
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def as_float_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 after checking they are equal-size HxWx3 uint8 arrays."""
    a, b = np.asarray(a), np.asarray(b)
    for name, image in (("first", a), ("second", b)):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InputError(f"{name} image: expected HxWx3 uint8 RGB, got {image.dtype} {image.shape}")
    if a.shape != b.shape:
        raise InputError(f"images differ in size: {a.shape} vs {b.shape}")
    return a.astype(np.float64), b.astype(np.float64)


def l1(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference in [0, 1] units (0 for equal images, 1 for black against white)."""
    a, b = as_float_pair(a, b)
    return float(np.mean(np.abs(a - b)) / PEAK)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB with peak 255: 10 log10(255^2 / MSE); inf for equal images."""
    a, b = as_float_pair(a, b)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(PEAK**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM with the Wang et al. settings (see the module docstring), in [-1, 1]."""
    from skimage.metrics import structural_similarity

    a, b = as_float_pair(a, b)
    value = structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=SSIM_SIGMA,
        use_sample_covariance=False,
        data_range=PEAK,
        channel_axis=-1,
    )
    return float(value)


def ssim_terms(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel means of SSIM's luminance x contrast-structure map and of its contrast-structure
    map alone, over the pixels `structural_similarity` averages (the window's half-width cropped)."""
    from scipy.ndimage import gaussian_filter

    c1, c2 = (0.01 * PEAK) ** 2, (0.03 * PEAK) ** 2
    crop = (SSIM_WINDOW - 1) // 2
    full, structure = [], []
    for channel in range(a.shape[2]):
        x, y = a[..., channel], b[..., channel]
        blur = lambda image: gaussian_filter(image, sigma=SSIM_SIGMA, truncate=SSIM_TRUNCATE, mode="reflect")
        mean_x, mean_y = blur(x), blur(y)
        var_x = blur(x * x) - mean_x**2
        var_y = blur(y * y) - mean_y**2
        cov = blur(x * y) - mean_x * mean_y
        luminance = (2 * mean_x * mean_y + c1) / (mean_x**2 + mean_y**2 + c1)
        contrast_structure = (2 * cov + c2) / (var_x + var_y + c2)
        inner = (slice(crop, -crop), slice(crop, -crop))
        full.append(np.mean((luminance * contrast_structure)[inner]))
        structure.append(np.mean(contrast_structure[inner]))
    return np.array(full), np.array(structure)


def _halve(image: np.ndarray) -> np.ndarray:
    """2x2 average pooling of an HxWxC array (an odd last row or column is dropped)."""
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    image = image[:h, :w]
    return 0.25 * (image[0::2, 0::2] + image[1::2, 0::2] + image[0::2, 1::2] + image[1::2, 1::2])


def ms_ssim_scales(height: int, width: int) -> int:
    """How many of the five scales fit: the coarsest must still hold the 11-pixel SSIM window."""
    side = min(height, width)
    if side < SSIM_WINDOW:
        raise InputError(f"images of {height}x{width} are smaller than the {SSIM_WINDOW}-pixel SSIM window")
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and side // 2**scales >= SSIM_WINDOW:
        scales += 1
    return scales


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Multi-scale SSIM (Wang et al. 2003, see the module docstring), in [0, 1].

    Images smaller than 176 pixels (16 x the 11-pixel window) cannot be halved four times: they use
    the first `ms_ssim_scales(h, w)` scales with those weights renormalised to sum to 1 (at 128 px
    four, at 64 px three); a single scale is plain SSIM.
    """
    a, b = as_float_pair(a, b)
    scales = ms_ssim_scales(a.shape[0], a.shape[1])
    weights = np.array(MS_SSIM_WEIGHTS[:scales])
    weights /= weights.sum()
    terms = []  # per scale, per channel
    for scale in range(scales):
        full, structure = ssim_terms(a, b)
        terms.append(full if scale == scales - 1 else structure)
        a, b = _halve(a), _halve(b)
    per_channel = np.prod(np.maximum(np.array(terms), 0.0) ** weights[:, None], axis=0)
    return float(np.mean(per_channel))
