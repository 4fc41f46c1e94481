"""Display scaling of cutout stamps in the astropy.visualization idiom.

A display scaling is an *interval* (which pixel values map to the ends of
the display range) followed by a *stretch* (how the normalized values are
bent within [0, 1]).  Both are the small composable objects of
`astropy.visualization`; this module adds

- `RobustZScaleInterval`, a `~astropy.visualization.ZScaleInterval` that
  stays usable on stamps of a few pixels (falls back to min/max when the
  zscale fit is degenerate),
- `SigmoidStretch`, the one common stretch astropy does not provide,
- `make_interval` / `make_stretch`, factories from configuration names,
- `scale_stamp`, the NaN-preserving pure function the renderer calls, and
- `DisplayScaling`, an immutable (interval, stretch) pair, with the
  documented defaults for the three panels: template and science are an
  asinh stretch on min/max, the difference is linear on zscale.
"""

from __future__ import annotations

__all__ = (
    "CONSTANT_LEVEL",
    "DEFAULT_SCALINGS",
    "DEFAULT_SCALING_NAMES",
    "DIFFERENCE_SCALING",
    "INTERVAL_NAMES",
    "STRETCH_NAMES",
    "SCIENCE_SCALING",
    "TEMPLATE_SCALING",
    "DisplayScaling",
    "RobustZScaleInterval",
    "SigmoidStretch",
    "finite_limits",
    "make_interval",
    "make_stretch",
    "scale_stamp",
    "scale_stamp_with_limits",
    "stamp_levels",
)

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from astropy.visualization import (
    AsinhStretch,
    BaseInterval,
    BaseStretch,
    LinearStretch,
    LogStretch,
    MinMaxInterval,
    PowerStretch,
    SinhStretch,
    SqrtStretch,
    ZScaleInterval,
)

from .limits import CentralWindowInterval, SymmetricInterval, percentile_interval
from .palette import display_levels

CONSTANT_LEVEL = 0.5
"""Display value (in [0, 1]) of every finite pixel of a constant stamp.

A stamp whose finite pixels all have one value has no contrast to show; it
is drawn mid-grey whatever the interval and stretch, rather than dividing by
a zero range.
"""


def _std(values: np.ndarray) -> np.floating:
    """``values.std()`` of a 1-D float array, computed as numpy computes it
    (the same sums, so the same bits) without its generic dispatch."""
    n = values.size
    deviation = values - np.add.reduce(values, keepdims=True) / n
    np.multiply(deviation, deviation, out=deviation)
    return np.sqrt(np.add.reduce(deviation) / n)


def _dilate(mask: np.ndarray, width: int) -> np.ndarray:
    """``numpy.convolve(mask, numpy.ones(width, bool), mode="same")`` of a
    1-D boolean mask no shorter than ``width`` (zscale's growing of the
    rejected pixels), from a running count of the set pixels rather than a
    boolean convolution (a few µs instead of ~12 µs for 900 samples).

    Pixel ``i`` is set when any of ``mask[i - width + 1 + (width - 1) // 2 :
    i + (width - 1) // 2 + 1]`` is.
    """
    n = mask.size
    start = width - (width - 1) // 2
    counts = np.zeros(n + width, np.int32)
    np.cumsum(mask, out=counts[start : start + n])
    counts[start + n :] = counts[start + n - 1]
    return counts[width:] > counts[:n]


class RobustZScaleInterval(ZScaleInterval):
    """IRAF zscale limits that fall back to min/max when zscale degenerates.

    `astropy.visualization.ZScaleInterval` fits a line to the sorted pixel
    values after k-sigma rejection.  On small stamps (a few to a few hundred
    pixels) the rejection can leave a zero slope, giving ``vmin == vmax`` (a
    single bright pixel on a flat background does this at any size) or even
    ``vmin > vmax`` by rounding; and on an empty stamp it raises.  This
    subclass returns the finite min/max in those cases, so the difference
    panel of a 1-15 px stamp is still displayed with contrast.

    Parameters
    ----------
    **kwargs : `~typing.Any`
        Passed to `~astropy.visualization.ZScaleInterval` (``n_samples``,
        ``contrast``, ``max_reject``, ``min_npixels``, ``krej``,
        ``max_iterations``).

    """

    def get_limits(self, values: Any) -> tuple[float, float]:
        """Return (vmin, vmax): zscale, or min/max if zscale degenerates.

        Parameters
        ----------
        values : array-like
            Pixel values; NaN, inf and masked values are ignored.

        Returns
        -------
        vmin, vmax : `float`
            Display limits; ``(nan, nan)`` if there is no finite value.

        """
        return self.limits_of_finite(self._process_values(values))

    def limits_of_finite(self, finite: np.ndarray) -> tuple[float, float]:
        """`get_limits` of values already known to be finite.

        Parameters
        ----------
        finite : `numpy.ndarray`
            1-D float array of finite values (not checked).

        Returns
        -------
        vmin, vmax : `float`
            As `get_limits`.

        """
        if finite.size == 0:
            return math.nan, math.nan
        vmin, vmax = self._zscale(finite)
        if not (math.isfinite(vmin) and math.isfinite(vmax) and vmax > vmin):
            return float(finite.min()), float(finite.max())
        return float(vmin), float(vmax)

    def _zscale(self, values: np.ndarray) -> tuple[float, float]:
        """The IRAF zscale of `~astropy.visualization.ZScaleInterval`, with
        the same sampling, rejection and limits, but with the weighted line
        fit done in closed form: it is called once per difference stamp and
        ``numpy.polyfit`` made it the most expensive step of drawing one.

        Every floating-point sum over the samples is taken as before (the
        sums over the sample positions are sums of integers, exact in any
        order); the rest only avoids copies and repeated work, so the limits
        are the same to the last bit.
        """
        stride = int(max(1.0, values.size / self.n_samples))
        samples = np.sort(values[::stride][: self.n_samples]).astype(float, copy=False)
        npix = len(samples)
        vmin, vmax = samples[0], samples[-1]
        minpix = max(self.min_npixels, int(npix * self.max_reject))
        x = np.arange(npix, dtype=float)
        ngoodpix, last_ngoodpix = npix, npix + 1
        badpix = np.zeros(npix, dtype=bool)
        width = max(1, int(npix * 0.01))
        slope = 0.0
        for _ in range(self.max_iterations):
            if ngoodpix >= last_ngoodpix or ngoodpix < minpix:
                break
            if ngoodpix == npix:
                good, xg, yg = None, x, samples
            else:
                good = ~badpix
                xg, yg = x[good], samples[good]
            n = float(ngoodpix)
            sx, sy = xg.sum(), yg.sum()
            denominator = n * np.dot(xg, xg) - sx * sx
            slope = (n * (xg * yg).sum() - sx * sy) / denominator if denominator else 0.0
            intercept = (sy - slope * sx) / n
            flat = samples - (slope * x + intercept)
            threshold = self.krej * _std(flat if good is None else flat[good])
            # |flat| > threshold is (flat < -threshold) | (flat > threshold).
            badpix |= np.abs(flat) > threshold
            if width > 1:
                badpix = _dilate(badpix, width)
            last_ngoodpix = ngoodpix
            ngoodpix = npix - int(np.count_nonzero(badpix))
        if ngoodpix >= minpix:
            if self.contrast > 0:
                slope = slope / self.contrast
            center_pixel = (npix - 1) // 2
            # numpy.median of the sorted samples: the mean of the middle one or two.
            middle = npix // 2
            median = np.mean(samples[middle - 1 + npix % 2 : middle + 1], axis=0)
            vmin = max(vmin, median - (center_pixel - 1) * slope)
            vmax = min(vmax, median + (npix - center_pixel) * slope)
        return float(vmin), float(vmax)


def _prepared(values: Any, out: np.ndarray | None) -> np.ndarray:
    """Copy ``values`` into ``out`` (or a new float array) for in-place work."""
    if out is None:
        return np.array(values, dtype=float, copy=True)
    out[...] = values
    return out


class SigmoidStretch(BaseStretch):
    r"""A logistic (sigmoid) stretch, rescaled so that 0 -> 0 and 1 -> 1.

    .. math::

        y = \frac{\sigma(g (x - c)) - \sigma(-g c)}{\sigma(g (1 - c)) - \sigma(-g c)},
        \qquad \sigma(t) = \frac{1}{1 + e^{-t}}

    astropy.visualization has no sigmoid stretch; this one follows the
    `~astropy.visualization.BaseStretch` protocol (``__call__(values, clip,
    out)`` and ``inverse``).

    Parameters
    ----------
    cutoff : `float`, optional
        Normalized value at the centre of the "S" (steepest point).
    gain : `float`, optional
        Steepness; larger values give more contrast around ``cutoff``.
        Must be > 0.

    """

    def __init__(self, cutoff: float = 0.5, gain: float = 10.0) -> None:
        super().__init__()
        if not gain > 0:
            raise ValueError(f"SigmoidStretch gain must be > 0, got {gain!r}")
        self.cutoff = float(cutoff)
        self.gain = float(gain)
        self._low = self._logistic(0.0)
        self._high = self._logistic(1.0)

    def _logistic(self, x: Any) -> Any:
        return 1.0 / (1.0 + np.exp(-self.gain * (np.asarray(x, dtype=float) - self.cutoff)))

    def __call__(self, values: Any, clip: bool = True, out: np.ndarray | None = None) -> np.ndarray:
        """Apply the stretch to values normalized to [0, 1]."""
        values = _prepared(values, out)
        if clip:
            np.clip(values, 0.0, 1.0, out=values)
        result = (self._logistic(values) - self._low) / (self._high - self._low)
        values[...] = result
        return values

    @property
    def inverse(self) -> BaseStretch:
        """The inverse stretch (a rescaled logit)."""
        return _InverseSigmoidStretch(self)


class _InverseSigmoidStretch(BaseStretch):
    """Inverse of a `SigmoidStretch`."""

    def __init__(self, forward: SigmoidStretch) -> None:
        super().__init__()
        self.forward = forward

    def __call__(self, values: Any, clip: bool = True, out: np.ndarray | None = None) -> np.ndarray:
        f = self.forward
        values = _prepared(values, out)
        if clip:
            np.clip(values, 0.0, 1.0, out=values)
        p = f._low + values * (f._high - f._low)
        values[...] = f.cutoff + np.log(p / (1.0 - p)) / f.gain
        return values

    @property
    def inverse(self) -> BaseStretch:
        return self.forward


_INTERVALS: Mapping[str, Callable[..., BaseInterval]] = MappingProxyType(
    {
        "minmax": MinMaxInterval,
        "zscale": RobustZScaleInterval,
        "percentile": percentile_interval,
        "central_window": CentralWindowInterval,
        "symmetric": SymmetricInterval,
    }
)

_STRETCHES: Mapping[str, Callable[..., BaseStretch]] = MappingProxyType(
    {
        "linear": LinearStretch,
        "asinh": AsinhStretch,
        "sqrt": SqrtStretch,
        "log": LogStretch,
        "power": lambda a=2.0, **kw: PowerStretch(a, **kw),
        "sinh": SinhStretch,
        "sigmoid": SigmoidStretch,
    }
)

INTERVAL_NAMES: tuple[str, ...] = tuple(_INTERVALS)
"""Names accepted by `make_interval`."""

STRETCH_NAMES: tuple[str, ...] = tuple(_STRETCHES)
"""Names accepted by `make_stretch`."""


def _make(kind: str, table: Mapping[str, Callable[..., Any]], name: str, params: dict[str, Any]) -> Any:
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in table:
        raise ValueError(f"Unknown {kind} {name!r}; valid choices are: {', '.join(table)}.")
    try:
        return table[key](**params)
    except TypeError as err:
        raise ValueError(f"Invalid parameters {params!r} for {kind} {key!r}: {err}") from err


def make_interval(name: str, **params: Any) -> BaseInterval:
    """Build an astropy interval from its configuration name.

    Parameters
    ----------
    name : `str`
        One of `INTERVAL_NAMES` (case-insensitive): ``"minmax"``,
        ``"zscale"`` (a `RobustZScaleInterval`), ``"percentile"``
        (``pmin`` and ``pmax`` percentiles, default 0.5 and 99.5, see
        `~lsst.analysis.ap.display.limits.percentile_interval`),
        ``"central_window"`` (min/max of the central ``window`` × ``window``
        pixels, default 10, see
        `~lsst.analysis.ap.display.limits.CentralWindowInterval`) or
        ``"symmetric"`` (``±k`` robust σ about zero, default k = 5, see
        `~lsst.analysis.ap.display.limits.SymmetricInterval`).
    **params : `~typing.Any`
        Keyword arguments of the interval class.

    Returns
    -------
    interval : `astropy.visualization.BaseInterval`
        The interval.

    Raises
    ------
    ValueError
        If ``name`` is unknown (the message lists the valid names) or the
        parameters do not fit the interval.

    """
    return _make("interval", _INTERVALS, name, params)


def make_stretch(name: str, **params: Any) -> BaseStretch:
    """Build an astropy stretch from its configuration name.

    Parameters
    ----------
    name : `str`
        One of `STRETCH_NAMES` (case-insensitive): ``"linear"``,
        ``"asinh"``, ``"sqrt"``, ``"log"``, ``"power"`` (``a`` defaults to
        2), ``"sinh"`` or ``"sigmoid"`` (`SigmoidStretch`).
    **params : `~typing.Any`
        Keyword arguments of the stretch class (e.g. ``a=0.1`` for asinh).

    Returns
    -------
    stretch : `astropy.visualization.BaseStretch`
        The stretch.

    Raises
    ------
    ValueError
        If ``name`` is unknown (the message lists the valid names) or the
        parameters do not fit the stretch.

    """
    return _make("stretch", _STRETCHES, name, params)


def finite_limits(array: np.ndarray, interval: BaseInterval) -> tuple[float, float] | None:
    """Display limits of the finite pixels of a stamp, never degenerate.

    Parameters
    ----------
    array : `numpy.ndarray`
        Stamp pixels; non-finite values are ignored.
    interval : `astropy.visualization.BaseInterval`
        Interval that chooses the limits.

    Returns
    -------
    limits : `tuple` [`float`, `float`] or `None`
        ``(vmin, vmax)`` with ``vmax > vmin``.  If the interval gives
        non-finite or empty limits, the finite min/max is used instead.
        `None` if there is no finite pixel or all finite pixels are equal.

    """
    data = np.asarray(array, dtype=float)
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return None
    return _limits_of_finite(finite, data, interval)


def _interval_limits(values: np.ndarray, finite: np.ndarray, interval: BaseInterval) -> tuple[float, float]:
    """``interval.get_limits(values)``; for the two default intervals, the
    same numbers computed from ``finite`` (the finite ``values``) without
    filtering them again."""
    get_limits = type(interval).get_limits
    if get_limits is MinMaxInterval.get_limits:
        return float(finite.min()), float(finite.max())
    if get_limits is RobustZScaleInterval.get_limits:
        return interval.limits_of_finite(finite)  # type: ignore[attr-defined]
    vmin, vmax = interval.get_limits(values)
    return float(vmin), float(vmax)


def _limits_of_finite(
    finite: np.ndarray, data: np.ndarray, interval: BaseInterval
) -> tuple[float, float] | None:
    """`finite_limits` given the (non-empty) finite pixels ``finite`` of
    the stamp ``data``."""
    # Shape-aware intervals (the central window) look at pixel positions.
    values = data if getattr(interval, "needs_shape", False) else finite
    vmin, vmax = _interval_limits(values, finite, interval)
    if not (math.isfinite(vmin) and math.isfinite(vmax) and vmax > vmin):
        vmin, vmax = float(finite.min()), float(finite.max())
    if not vmax > vmin:
        return None
    return vmin, vmax


def _scale_finite(
    array: np.ndarray, interval: BaseInterval, stretch: BaseStretch
) -> tuple[tuple[int, ...], np.ndarray | None, np.ndarray | None, tuple[float, float] | None]:
    """Display values of a stamp's finite pixels.

    Returns
    -------
    shape : `tuple` [`int`, ...]
        The stamp's shape.
    good : `numpy.ndarray` or `None`
        Where the stamp is finite; `None` when every pixel is.
    values : `numpy.ndarray` or `None`
        Display values in [0, 1] of the finite pixels, in C order (a new
        array); `None` when no pixel is finite.
    limits : `tuple` [`float`, `float`] or `None`
        As `scale_stamp_with_limits`.

    """
    data = np.asarray(array, dtype=float)
    good = np.isfinite(data)
    n_good = int(np.count_nonzero(good))
    if n_good == 0:
        return data.shape, good, None, None
    if n_good == data.size:
        mask, finite = None, data.reshape(-1)
    else:
        mask, finite = good, data[good]
    limits = _limits_of_finite(finite, data, interval)
    if limits is None:
        return data.shape, mask, np.full(n_good, CONSTANT_LEVEL), None
    vmin, vmax = limits
    normalized = finite - vmin
    normalized /= vmax - vmin
    normalized.clip(0.0, 1.0, out=normalized)
    stretched = np.asarray(stretch(normalized, clip=True, out=normalized), dtype=float)
    if stretched is normalized:
        stretched.clip(0.0, 1.0, out=stretched)
    else:
        stretched = stretched.clip(0.0, 1.0)
    return data.shape, mask, stretched, limits


def scale_stamp(array: np.ndarray, interval: BaseInterval, stretch: BaseStretch) -> np.ndarray:
    """Map a stamp's finite pixels to display values in [0, 1].

    Parameters
    ----------
    array : `numpy.ndarray`
        Stamp pixels (any shape).  NaN marks no data; +/-inf are treated as
        no data too.
    interval : `astropy.visualization.BaseInterval`
        Chooses the values mapped to 0 and 1 (computed from finite pixels
        only; see `finite_limits` for the degenerate cases).
    stretch : `astropy.visualization.BaseStretch`
        Applied to the clipped, normalized values.

    Returns
    -------
    scaled : `numpy.ndarray`
        Float array of the input's shape: values in [0, 1] where the input
        is finite, NaN elsewhere.  An all-NaN stamp gives all NaN; a
        constant stamp gives `CONSTANT_LEVEL` at every finite pixel.

    """
    return scale_stamp_with_limits(array, interval, stretch)[0]


def scale_stamp_with_limits(
    array: np.ndarray, interval: BaseInterval, stretch: BaseStretch
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """`scale_stamp`, also returning the display limits it used.

    Returns
    -------
    scaled : `numpy.ndarray`
        As `scale_stamp`.
    limits : `tuple` [`float`, `float`] or `None`
        ``(vmin, vmax)`` of `finite_limits`; `None` for an empty or
        constant stamp.

    """
    shape, good, values, limits = _scale_finite(array, interval, stretch)
    if values is not None and good is None:
        return values.reshape(shape), limits
    out = np.full(shape, np.nan)
    if values is not None:
        out[good] = values
    return out, limits


def stamp_levels(
    array: np.ndarray, interval: BaseInterval, stretch: BaseStretch, n_levels: int, no_data_index: int
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """A stamp's colormap levels: `scale_stamp_with_limits` then
    `~lsst.analysis.ap.display.palette.display_levels`, in one pass.

    Parameters
    ----------
    array : `numpy.ndarray`
        Stamp pixels, NaN (or inf) for no data.
    interval : `astropy.visualization.BaseInterval`
        Display limits.
    stretch : `astropy.visualization.BaseStretch`
        Display stretch.
    n_levels : `int`
        Number of colormap levels (at most 256).
    no_data_index : `int`
        Level (0-255) of pixels without data.

    Returns
    -------
    levels : `numpy.ndarray`
        uint8 array of the stamp's shape, equal to
        ``display_levels(scale_stamp(array, interval, stretch), n_levels,
        no_data_index)``.
    limits : `tuple` [`float`, `float`] or `None`
        As `scale_stamp_with_limits`.

    """
    shape, good, values, limits = _scale_finite(array, interval, stretch)
    if values is None:
        return np.full(shape, no_data_index, dtype=np.uint8), None
    levels = display_levels(values, n_levels, no_data_index)
    if good is None:
        return levels.reshape(shape), limits
    out = np.full(shape, no_data_index, dtype=np.uint8)
    out[good] = levels
    return out, limits


@dataclass(frozen=True)
class DisplayScaling:
    """An immutable (interval, stretch) pair: how one panel is displayed.

    Parameters
    ----------
    interval : `astropy.visualization.BaseInterval`
        Chooses the display limits from the stamp's finite pixels.
    stretch : `astropy.visualization.BaseStretch`
        Bends the normalized values within [0, 1].

    """

    interval: BaseInterval = field(default_factory=MinMaxInterval)
    stretch: BaseStretch = field(default_factory=AsinhStretch)

    @classmethod
    def from_names(
        cls,
        interval: str,
        stretch: str,
        *,
        interval_params: Mapping[str, Any] | None = None,
        stretch_params: Mapping[str, Any] | None = None,
    ) -> DisplayScaling:
        """Build a scaling from configuration names.

        Parameters
        ----------
        interval : `str`
            Interval name, see `make_interval`.
        stretch : `str`
            Stretch name, see `make_stretch`.
        interval_params, stretch_params : `~collections.abc.Mapping`, optional
            Keyword arguments for the interval and stretch.

        Returns
        -------
        scaling : `DisplayScaling`
            The pair.

        Raises
        ------
        ValueError
            If a name is unknown or parameters do not fit.

        """
        return cls(
            make_interval(interval, **dict(interval_params or {})),
            make_stretch(stretch, **dict(stretch_params or {})),
        )

    def __call__(self, array: np.ndarray) -> np.ndarray:
        """Scale a stamp to [0, 1] with NaN for no data (see `scale_stamp`)."""
        return scale_stamp(array, self.interval, self.stretch)


DEFAULT_SCALING_NAMES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "template": ("minmax", "asinh"),
        "science": ("minmax", "asinh"),
        "difference": ("zscale", "linear"),
    }
)
"""Default ``(interval, stretch)`` names of each panel, by role: template and
science are an asinh stretch on min/max, the difference is linear on
(robust) zscale.  The task's ``<role>_interval`` / ``<role>_stretch`` config
fields default to these."""

DEFAULT_SCALINGS: Mapping[str, DisplayScaling] = MappingProxyType(
    {role: DisplayScaling.from_names(*names) for role, names in DEFAULT_SCALING_NAMES.items()}
)
"""Default scaling of each panel, by role (built from `DEFAULT_SCALING_NAMES`)."""

TEMPLATE_SCALING = DEFAULT_SCALINGS["template"]
"""Default template panel scaling: asinh stretch on min/max."""

SCIENCE_SCALING = DEFAULT_SCALINGS["science"]
"""Default science panel scaling: asinh stretch on min/max."""

DIFFERENCE_SCALING = DEFAULT_SCALINGS["difference"]
"""Default difference panel scaling: linear stretch on (robust) zscale."""
