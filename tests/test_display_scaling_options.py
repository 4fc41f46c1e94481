"""Display limits, sign-aware difference scaling and smoothing, checked
against direct numpy computations on real ZTF alert stamps and on stamps
with known content."""

import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from astropy.io import fits
from astropy.visualization import AsinhStretch, LinearStretch, ZScaleInterval

from lsst.analysis.ap.display.diverging import (
    DIVERGING_COLORMAP,
    SignedStretch,
    negative_flux,
    side_of_zero,
    sign_aware,
)
from lsst.analysis.ap.display.limits import (
    CentralWindowInterval,
    SymmetricInterval,
    ZeroCentredInterval,
    percentile_interval,
    shared_limits,
)
from lsst.analysis.ap.display.smoothing import make_kernel, smooth_stamp

ZTF = Path(__file__).parent / "data" / "ztf"


def ztf_stamp(kind: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ZTF stamps have a non-standard SIMPLE card
        return np.asarray(fits.getdata(ZTF / f"472263571115115000_cutout{kind}.fits.gz"), dtype=float)


def gaussian_stamp(size: int, amplitude: float, sigma: float = 1.5, noise: float = 1.0, seed: int = 3):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    c = size // 2
    return amplitude * np.exp(-((x - c) ** 2 + (y - c) ** 2) / (2 * sigma**2)) + rng.normal(
        0, noise, (size, size)
    )


# Percentile ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Science", "Template", "Difference"])
@pytest.mark.parametrize(("pmin", "pmax"), [(0.5, 99.5), (5.0, 95.0), (0.0, 100.0), (10.0, 99.9)])
def test_percentile_limits_match_numpy_on_ztf_stamps(kind, pmin, pmax):
    stamp = ztf_stamp(kind)
    stamp[:3, :] = np.nan  # no-data rows are ignored
    vmin, vmax = percentile_interval(pmin, pmax).get_limits(stamp[np.isfinite(stamp)])
    finite = stamp[np.isfinite(stamp)]
    assert vmin == pytest.approx(np.percentile(finite, pmin), rel=1e-12)
    assert vmax == pytest.approx(np.percentile(finite, pmax), rel=1e-12)


def test_percentile_defaults_are_fink_pmin_pmax():
    stamp = ztf_stamp("Science").ravel()
    assert percentile_interval().get_limits(stamp) == pytest.approx(
        (np.percentile(stamp, 0.5), np.percentile(stamp, 99.5))
    )


@pytest.mark.parametrize(("pmin", "pmax"), [(50, 50), (60, 40), (-1, 99), (1, 101)])
def test_percentile_rejects_bad_percentiles(pmin, pmax):
    with pytest.raises(ValueError, match="pmin"):
        percentile_interval(pmin, pmax)


# Central window --------------------------------------------------------------


@pytest.mark.parametrize("window", [1, 4, 5, 10, 15])
@pytest.mark.parametrize("size", [30, 31, 63])
def test_central_window_matches_numpy(size, window):
    stamp = ztf_stamp("Difference")[:size, :size].copy()
    c = size // 2
    lo = c - window // 2
    expected = stamp[lo : lo + window, lo : lo + window]
    assert expected.shape == (window, window)
    assert CentralWindowInterval(window).get_limits(stamp) == (expected.min(), expected.max())


@pytest.mark.parametrize("size", [1, 3, 7, 9])
def test_central_window_larger_than_stamp_uses_whole_stamp(size):
    stamp = gaussian_stamp(size, 50.0)
    assert CentralWindowInterval(10).get_limits(stamp) == (stamp.min(), stamp.max())


def test_central_window_ignores_no_data_and_falls_back_to_whole_stamp():
    stamp = gaussian_stamp(30, 50.0)
    stamp[15, 15] = np.nan
    window = stamp[10:20, 10:20]
    assert CentralWindowInterval(10).get_limits(stamp) == (np.nanmin(window), np.nanmax(window))
    stamp[10:20, 10:20] = np.nan
    assert CentralWindowInterval(10).get_limits(stamp) == (np.nanmin(stamp), np.nanmax(stamp))
    assert all(np.isnan(CentralWindowInterval(10).get_limits(np.full((5, 5), np.nan))))


def test_central_window_excludes_bright_pixels_outside_it():
    stamp = gaussian_stamp(30, 20.0)
    stamp[2, 2] = 1e6  # a bright star in the corner does not set the limits
    vmin, vmax = CentralWindowInterval(10).get_limits(stamp)
    assert vmax < 100
    with pytest.raises(ValueError, match="at least 1"):
        CentralWindowInterval(0)


# Symmetric -------------------------------------------------------------------


@pytest.mark.parametrize("k", [1.0, 3.0, 5.0])
def test_symmetric_limits_are_k_robust_sigma(k):
    stamp = ztf_stamp("Difference")
    finite = stamp.ravel()
    sigma = 1.482602218505602 * np.median(np.abs(finite - np.median(finite)))
    vmin, vmax = SymmetricInterval(k).get_limits(finite)
    assert vmax == pytest.approx(k * sigma, rel=1e-9)
    assert vmin == -vmax


def test_zero_centred_interval_widens_to_largest_side():
    stamp = ztf_stamp("Difference")
    lo, hi = ZScaleInterval().get_limits(stamp)
    vmin, vmax = ZeroCentredInterval(ZScaleInterval()).get_limits(stamp)
    assert vmax == pytest.approx(max(abs(lo), abs(hi)))
    assert vmin == -vmax


# Shared template / science limits ---------------------------------------------


def test_shared_limits_use_both_stamps():
    template, science = ztf_stamp("Template"), ztf_stamp("Science")
    shared = shared_limits([template, science], percentile_interval())
    both = np.concatenate([template.ravel(), science.ravel()])
    assert (shared.vmin, shared.vmax) == pytest.approx((np.percentile(both, 0.5), np.percentile(both, 99.5)))
    assert shared.get_limits(template) == shared.get_limits(science)


def test_shared_limits_of_empty_stamps():
    empty = np.full((5, 5), np.nan)
    assert shared_limits([empty, empty], percentile_interval()) is None
    stamp = gaussian_stamp(30, 10.0)
    window = shared_limits([empty, stamp, stamp * 2], CentralWindowInterval(4))
    assert window.vmax == pytest.approx((stamp * 2)[13:17, 13:17].max())


# Sign-aware difference --------------------------------------------------------


def _scaled(stamp, interval, stretch):
    vmin, vmax = interval.get_limits(stamp)
    return stretch(np.clip((stamp - vmin) / (vmax - vmin), 0, 1))


@pytest.mark.parametrize("base_stretch", [None, AsinhStretch(0.1)])
def test_fading_source_is_on_negative_side_and_new_source_on_positive(base_stretch):
    lut = np.asarray(matplotlib.colormaps[DIVERGING_COLORMAP](np.linspace(0, 1, 256)))[:, :3]
    interval, stretch = sign_aware(stretch=base_stretch)
    for amplitude, side, channel in ((-60.0, -1, 2), (60.0, 1, 0)):
        stamp = gaussian_stamp(30, amplitude)
        scaled = _scaled(stamp, interval, stretch)
        core = scaled[13:18, 13:18]
        assert np.all(side_of_zero(core) == side)
        colours = lut[np.rint(core * 255).astype(int)]
        # Fading: blue dominates; new: red dominates.
        other = 0 if channel == 2 else 2
        assert np.all(colours[..., channel] > colours[..., other])


def test_zero_is_mid_range_and_signs_symmetric_with_any_stretch():
    stretch = SignedStretch(AsinhStretch(0.05))
    v = np.linspace(0, 1, 101)
    out = stretch(v)
    assert out[50] == pytest.approx(0.5)
    np.testing.assert_allclose(out - 0.5, -(out[::-1] - 0.5), atol=1e-12)
    np.testing.assert_allclose(stretch.inverse(out), v, atol=1e-9)


def test_real_ztf_difference_positive_core_is_red_side():
    # ZTF candidate 472263571115115000 has isdiffpos='t': a positive residual.
    stamp = ztf_stamp("Difference")
    interval, stretch = sign_aware()
    scaled = _scaled(stamp, interval, stretch)
    assert np.all(scaled[30:33, 30:33] > 0.5)
    assert isinstance(sign_aware(ZScaleInterval(), LinearStretch())[0], ZeroCentredInterval)


def test_negative_flux_badge_rule():
    assert negative_flux(-1.0)
    assert not negative_flux(0.0)
    assert not negative_flux(5.0)
    assert not negative_flux(None)
    assert not negative_flux(float("nan"))
    assert not negative_flux("n/a")


# Smoothing -------------------------------------------------------------------


def test_gaussian_smoothing_spreads_a_point_and_keeps_no_data():
    stamp = np.zeros((21, 21))
    stamp[10, 10] = 100.0
    stamp[0, 0] = np.nan
    smoothed = smooth_stamp(stamp, make_kernel("gauss", 2.0))
    assert np.isnan(smoothed[0, 0])
    assert smoothed[10, 10] == pytest.approx(100.0 / (2 * np.pi * 4), rel=0.02)
    assert smoothed[10, 12] / smoothed[10, 10] == pytest.approx(np.exp(-0.5), rel=0.02)
    assert np.nansum(smoothed) == pytest.approx(100.0, rel=1e-3)


def test_box_smoothing_is_a_local_mean():
    stamp = ztf_stamp("Science")
    smoothed = smooth_stamp(stamp, make_kernel("box", 3))
    assert smoothed[30, 30] == pytest.approx(stamp[29:32, 29:32].mean(), rel=1e-5)
    assert smooth_stamp(stamp, make_kernel("none", 3)) is stamp


@pytest.mark.parametrize(
    ("kind", "width", "match"), [("median", 2, "Unknown smoothing"), ("gauss", 0, "> 0")]
)
def test_smoothing_rejects_bad_kernels(kind, width, match):
    with pytest.raises(ValueError, match=match):
        make_kernel(kind, width)


# Through the scaling factories (what the config builds) ----------------------------


def test_named_intervals_reach_the_panel_scaling_with_numpy_limits():
    from lsst.analysis.ap.display.scaling import make_interval, make_stretch, scale_stamp_with_limits

    stamp = ztf_stamp("Difference")[:30, :30].copy()
    stamp[0, 0] = 1e6  # far outside the central window
    scaled, limits = scale_stamp_with_limits(
        stamp, make_interval("central_window", window=6), make_stretch("linear")
    )
    window = stamp[12:18, 12:18]
    assert limits == (window.min(), window.max())
    assert scaled[0, 0] == 1.0 and scaled[12:18, 12:18].min() == 0.0
    _, limits = scale_stamp_with_limits(
        stamp, make_interval("percentile", pmin=2, pmax=98), make_stretch("linear")
    )
    assert limits == pytest.approx((np.percentile(stamp, 2), np.percentile(stamp, 98)))
    _, limits = scale_stamp_with_limits(stamp, make_interval("symmetric", k=3), make_stretch("asinh", a=0.1))
    assert limits[0] == -limits[1]
    with pytest.raises(ValueError, match="central_window"):
        make_interval("central_window", width=3)
