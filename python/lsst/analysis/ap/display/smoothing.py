"""Optional smoothing of a stamp before display (astropy.convolution).

Smoothing is a display choice: it brings out faint, extended residuals
without changing the saved pixels.  NaN (no-data) pixels are interpolated
over by the convolution and stay NaN in the result.
"""

from __future__ import annotations

__all__ = ("SMOOTHING_KERNELS", "make_kernel", "smooth_stamp")

import numpy as np
from astropy.convolution import Box2DKernel, Gaussian2DKernel, Kernel2D, convolve

SMOOTHING_KERNELS: tuple[str, ...] = ("none", "gauss", "box")
"""Kernel names accepted by `make_kernel` (``none`` means no smoothing)."""


def make_kernel(kind: str, width: float) -> Kernel2D | None:
    """A 2-D smoothing kernel from its configuration name.

    Parameters
    ----------
    kind : `str`
        ``"gauss"`` (`~astropy.convolution.Gaussian2DKernel` of standard
        deviation ``width`` pixels), ``"box"`` (`~astropy.convolution.Box2DKernel`
        ``width`` pixels wide) or ``"none"``.
    width : `float`
        Kernel size in pixels (> 0).

    Returns
    -------
    kernel : `astropy.convolution.Kernel2D` or `None`
        `None` for ``"none"``.

    Raises
    ------
    ValueError
        For an unknown kind or a non-positive width.

    """
    key = str(kind).strip().lower()
    if key not in SMOOTHING_KERNELS:
        raise ValueError(
            f"Unknown smoothing kernel {kind!r}; valid choices are: {', '.join(SMOOTHING_KERNELS)}."
        )
    if key == "none":
        return None
    width = float(width)
    if not width > 0:
        raise ValueError(f"smoothing width must be > 0 pixels, got {width}.")
    if key == "gauss":
        return Gaussian2DKernel(x_stddev=width)
    return Box2DKernel(width)


def smooth_stamp(array: np.ndarray, kernel: Kernel2D | None) -> np.ndarray:
    """Convolve a stamp with a kernel, keeping its no-data pixels.

    Parameters
    ----------
    array : `numpy.ndarray`
        2-D stamp, NaN for no data.
    kernel : `astropy.convolution.Kernel2D` or `None`
        Normalized kernel; `None` returns ``array`` unchanged.

    Returns
    -------
    smoothed : `numpy.ndarray`
        Float array of the same shape; NaN where ``array`` is not finite.
        Pixels beyond the stamp's edges are treated as missing (the sum is
        renormalized), so the edges are not darkened.

    """
    if kernel is None:
        return array
    data = np.asarray(array, dtype=float)
    if not np.isfinite(data).any():
        return data
    return convolve(
        data,
        kernel,
        boundary="fill",
        fill_value=np.nan,
        nan_treatment="interpolate",
        preserve_nan=True,
        normalize_kernel=True,
    )
