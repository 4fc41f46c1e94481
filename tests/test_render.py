"""Tests of display scaling and cutout rendering (lsst.analysis.ap.display)."""

import io
import math
import pickle
import warnings

import numpy as np
import pytest
from astropy.visualization import AsinhStretch, LinearStretch, MinMaxInterval, ZScaleInterval
from PIL import Image

from lsst.analysis.ap.display.annotation import BADGES, FLAGGED_RGB, FLUX_FLAG_COLUMNS, SourceAnnotation
from lsst.analysis.ap.display.glyphs import GlyphCache, font
from lsst.analysis.ap.display.layout import BASELINE, VALUE_SIZE
from lsst.analysis.ap.display.palette import NO_DATA_RGB, Palette, make_lut
from lsst.analysis.ap.display.renderer import (
    DEFAULT_PANEL_PIXELS,
    TripletRenderer,
    nearest_index,
    render_panel_rgb,
    scale_bar,
)
from lsst.analysis.ap.display.scaling import (
    CONSTANT_LEVEL,
    DIFFERENCE_SCALING,
    INTERVAL_NAMES,
    STRETCH_NAMES,
    DisplayScaling,
    RobustZScaleInterval,
    SigmoidStretch,
    make_interval,
    make_stretch,
    scale_stamp,
)
from source_rows import FLAG_COLUMNS, full_row

P = DEFAULT_PANEL_PIXELS
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


@pytest.fixture(scope="module")
def meta_renderer():
    return TripletRenderer([30], True)


@pytest.fixture(scope="module")
def plain_renderer():
    return TripletRenderer([30], False)


def row(**overrides):
    values = dict(
        diaSourceId=1234567890123456789,
        snr=12.3,
        scienceFlux=56789.0,
        scienceFluxErr=300.0,
        reliability=0.87,
    )
    values.update(overrides)
    return full_row(**values)


def noise_triplet(s, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.normal(100.0, 5.0, (s, s)) for _ in range(3))


def decode(png):
    image = Image.open(io.BytesIO(png))
    return image, np.asarray(image.convert("RGB"))


def pixels(image, box):
    return np.asarray(image)[box.y0 : box.y1, box.x0 : box.x1]


def has_colour(region, rgb, fraction=0.3):
    return np.all(region == np.asarray(rgb, dtype=np.uint8), axis=-1).mean() >= fraction


def is_reddish(region):
    r, g, b = (region[..., i].astype(int) for i in range(3))
    return np.any((r > 150) & (g < 90) & (b < 90))


# --------------------------------------------------------------------------
# Scaling.


def test_scale_stamp_maps_finite_to_unit_interval_and_keeps_nan():
    a = np.arange(16.0).reshape(4, 4)
    a[1, 2] = np.nan
    out = scale_stamp(a, MinMaxInterval(), LinearStretch())
    assert np.isnan(out[1, 2])
    finite = out[np.isfinite(a)]
    assert finite.min() == 0.0 and finite.max() == 1.0
    assert np.isfinite(finite).all()


def test_scale_stamp_all_nan_and_constant():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(scale_stamp(np.full((5, 5), np.nan), RobustZScaleInterval(), LinearStretch())).all()
        const = scale_stamp(np.full((5, 5), 7.0), MinMaxInterval(), AsinhStretch())
    assert np.all(const == CONSTANT_LEVEL)


@pytest.mark.parametrize("s", range(1, 16))
def test_difference_zscale_works_on_tiny_stamps(s):
    rng = np.random.default_rng(s)
    stamp = rng.normal(0.0, 1.0, (s, s))
    stamp[s // 2, s // 2] += 50.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = DIFFERENCE_SCALING(stamp)
        # A flat background with one hot pixel: plain zscale gives vmin == vmax here.
        point = np.zeros((s, s))
        point[0, 0] = 10.0
        out_point = DIFFERENCE_SCALING(point)
        limits = RobustZScaleInterval().get_limits(point)
    assert out.shape == (s, s) and np.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0
    if s > 1:
        assert np.ptp(out) > 0, "non-constant stamp must not render as one value"
        assert np.ptp(out_point) > 0
        assert limits[1] > limits[0]


def test_plain_astropy_zscale_is_degenerate_where_robust_one_is_not():
    point = np.zeros((10, 10))
    point[3, 3] = 10.0
    vmin, vmax = ZScaleInterval().get_limits(point)
    assert not vmax > vmin  # the failure the fallback exists for
    assert RobustZScaleInterval().get_limits(point) == (0.0, 10.0)


def test_tiny_stamps_render_through_the_renderer():
    for s in (1, 2, 3, 7, 14, 15):
        renderer = TripletRenderer([s], False, panel_pixels=60)
        stamp = np.arange(s * s, dtype=float).reshape(s, s)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            image = renderer.render([(stamp, stamp, stamp)], None, 0.2)
        assert image.size == renderer.canvas_size
        if s > 1:
            assert len(np.unique(pixels(image, renderer.panel_boxes[0][2]).reshape(-1, 3), axis=0)) > 1


def test_factories_build_every_named_choice():
    x = np.linspace(0.0, 1.0, 11)
    for name in STRETCH_NAMES:
        y = make_stretch(name)(x)
        assert y[0] == pytest.approx(0.0, abs=1e-12) and y[-1] == pytest.approx(1.0)
        assert np.all(np.diff(y) >= 0)
    for name in INTERVAL_NAMES:
        vmin, vmax = make_interval(name).get_limits(np.arange(100.0))
        assert vmin < vmax
    assert make_stretch(" ASINH ", a=0.05).a == 0.05
    assert make_interval("percentile", percentile=90).get_limits(np.arange(101.0)) == pytest.approx(
        (5.0, 95.0)
    )


@pytest.mark.parametrize(
    ("factory", "names"), [(make_interval, INTERVAL_NAMES), (make_stretch, STRETCH_NAMES)]
)
def test_factories_reject_unknown_names_listing_valid_ones(factory, names):
    with pytest.raises(ValueError, match="valid choices") as info:
        factory("histeq")
    for name in names:
        assert name in str(info.value)


def test_factory_rejects_bad_parameters():
    with pytest.raises(ValueError, match="zscale"):
        make_interval("zscale", no_such_parameter=1)


def test_sigmoid_stretch_inverse_round_trips():
    stretch = SigmoidStretch(cutoff=0.3, gain=8.0)
    x = np.linspace(0.0, 1.0, 21)
    np.testing.assert_allclose(stretch.inverse(stretch(x)), x, atol=1e-9)
    with pytest.raises(ValueError):
        SigmoidStretch(gain=0)


def test_display_scaling_from_names():
    scaling = DisplayScaling.from_names("zscale", "linear")
    assert isinstance(scaling.interval, RobustZScaleInterval)
    assert isinstance(scaling.stretch, LinearStretch)
    with pytest.raises(ValueError, match="valid choices"):
        DisplayScaling.from_names("zscale", "cubic")


# --------------------------------------------------------------------------
# Panels.


def test_lut_is_256_entries_from_matplotlib():
    lut = make_lut("gray")
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert tuple(lut[0]) == BLACK and tuple(lut[-1]) == WHITE
    with pytest.raises(ValueError, match="colormap"):
        make_lut("no-such-colormap")


def test_nearest_index_keeps_pixels_square_within_one_canvas_pixel():
    for s in (30, 64, 7, 1):
        counts = np.bincount(nearest_index(s, P), minlength=s)
        assert counts.sum() == P and counts.min() >= P // s and counts.max() <= -(-P // s)


def test_render_panel_rgb_flips_and_marks_no_data():
    stamp = np.zeros((4, 4))
    stamp[0, 3] = 1.0  # row 0 = bottom row; column 3 = right
    stamp[3, 0] = np.nan  # top-left when displayed
    panel = render_panel_rgb(stamp, MinMaxInterval(), LinearStretch(), make_lut("gray"), NO_DATA_RGB, 40)
    assert panel.shape == (40, 40, 3)
    assert np.all(panel[30:, 30:] == WHITE)  # bottom-right
    assert np.all(panel[:10, :10] == NO_DATA_RGB)  # top-left
    assert np.all(panel[:30, 10:30] == BLACK)


# --------------------------------------------------------------------------
# Renderer: geometry.


@pytest.mark.parametrize(("s", "r", "c"), [(30, 5, 20), (30, 0, 29), (30, 29, 0), (64, 10, 50), (17, 3, 12)])
def test_bright_pixel_lands_where_expected_with_row0_at_bottom(s, r, c):
    renderer = TripletRenderer([s], False)
    stamp = np.zeros((s, s))
    stamp[r, c] = 100.0
    _, rgb = decode(renderer.render_png([(stamp, stamp, stamp)], None, None))
    rows, cols = nearest_index(s, P), nearest_index(s, P)
    expected_y = np.flatnonzero(rows == s - 1 - r)  # flipped: row 0 is at the bottom
    expected_x = np.flatnonzero(cols == c)
    for box in renderer.panel_boxes[0]:
        panel = pixels(rgb, box)
        ys, xs = np.nonzero(np.all(panel == WHITE, axis=-1))
        assert (ys.min(), ys.max()) == (expected_y[0], expected_y[-1])
        assert (xs.min(), xs.max()) == (expected_x[0], expected_x[-1])
    if r == 0:
        assert ys.max() == P - 1  # drawn in the bottom panel row


def test_render_and_png_agree_and_match_render_panel_rgb(meta_renderer):
    stamps = noise_triplet(30)
    annotation = SourceAnnotation.from_row(row())
    image = meta_renderer.render([stamps], annotation, 0.2)
    _, decoded = decode(meta_renderer.render_png([stamps], annotation, 0.2))
    assert image.mode == "RGB" and image.size == meta_renderer.canvas_size
    np.testing.assert_array_equal(np.asarray(image), decoded)
    for column, scaling in enumerate(meta_renderer.scalings):
        expected = render_panel_rgb(
            stamps[column], scaling.interval, scaling.stretch, meta_renderer.panel_lut, NO_DATA_RGB, P
        )
        box = meta_renderer.panel_boxes[0][column]
        # The panel is exact except for the scale bar in its lower-left corner.
        np.testing.assert_array_equal(pixels(decoded, box)[: P // 2], expected[: P // 2])


def test_nan_pixels_use_the_no_data_colour_and_edge_stamp_keeps_panel_size(plain_renderer):
    assert NO_DATA_RGB not in (WHITE, BLACK)
    assert len(set(NO_DATA_RGB)) > 1, "no-data colour must not be a grey of the gray colormap"
    template, science, difference = noise_triplet(30)
    for a in (template, science, difference):
        a[:, :15] = np.nan  # half the stamp off the detector
    image, rgb = decode(plain_renderer.render_png([(template, science, difference)], None, None))
    assert image.size == plain_renderer.canvas_size == TripletRenderer([30], False).canvas_size
    for box in plain_renderer.panel_boxes[0]:
        panel = pixels(rgb, box)
        assert panel.shape == (P, P, 3)
        assert np.all(panel[:, : P // 2] == NO_DATA_RGB)
        assert not np.any(np.all(panel[:, P // 2 :] == NO_DATA_RGB, axis=-1))


def test_all_nan_stamp_renders_as_no_data_without_warnings(plain_renderer):
    stamp = np.full((30, 30), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, rgb = decode(plain_renderer.render_png([(stamp, stamp, stamp)], None, None))
    for box in plain_renderer.panel_boxes[0]:
        # No-data colour everywhere but the centred "no data" label.
        panel = pixels(rgb, box)
        assert np.all(panel[: P // 3] == NO_DATA_RGB) and np.all(panel[-P // 3 :] == NO_DATA_RGB)
        assert not np.all(panel[P // 3 : -P // 3] == NO_DATA_RGB)


def test_custom_no_data_colour():
    renderer = TripletRenderer([30], False, no_data_rgb=(0, 90, 90))
    stamp = np.full((30, 30), np.nan)
    _, rgb = decode(renderer.render_png([(stamp, stamp, stamp)], None, None))
    assert np.all(pixels(rgb, renderer.panel_boxes[0][0])[: P // 3] == (0, 90, 90))


def test_multi_size_gives_one_row_per_size():
    single = TripletRenderer([30], True)
    double = TripletRenderer([30, 64], True)
    assert len(double.panel_boxes) == 2
    assert double.canvas_size[0] == single.canvas_size[0]
    assert double.canvas_size[1] > single.canvas_size[1] + P
    top, bottom = double.panel_boxes[0][1], double.panel_boxes[1][1]
    assert bottom.y0 >= top.y1 and (bottom.x0, bottom.x1) == (top.x0, top.x1)
    assert bottom.width == top.width == P
    small = np.zeros((30, 30))
    big = np.zeros((64, 64))
    big[32, 32] = 1.0
    _, rgb = decode(double.render_png([(small,) * 3, (big,) * 3], None, None))
    assert np.all(pixels(rgb, top)[: P // 2] == pixels(rgb, top)[0, 0])  # constant stamp: one grey
    assert np.any(np.all(pixels(rgb, bottom) == WHITE, axis=-1))  # the bright pixel is in row 2


def test_canvas_sizes():
    assert TripletRenderer([30], False).canvas_size == (752, 278)
    assert TripletRenderer([30, 64], False).canvas_size == (752, 526)
    assert TripletRenderer([30], True).canvas_size == (752, 384)
    assert TripletRenderer([30, 64], True).canvas_size == (752, 632)


def test_scale_bar_is_one_arcsecond_long_or_a_longer_round_length(plain_renderer):
    stamp = np.zeros((30, 30))  # constant: mid-grey, so the white bar stands out
    assert scale_bar(P, 30, 0.2) == pytest.approx((1.0, 40.0))
    assert scale_bar(P, 30, 0.5) == pytest.approx((1.0, 16.0))
    # ZTF: 63 px of 1.01 arcsec; 1" would be 3.8 px, 2" 7.5: the bar is 5".
    assert scale_bar(P, 63, 1.01) == pytest.approx((5.0, 5 * P / 63 / 1.01))
    assert scale_bar(P, 30, 0.6) == pytest.approx((2.0, 2 * P / 30 / 0.6))
    assert all(math.isnan(v) for v in scale_bar(P, 30, None) + scale_bar(P, 30, 0.0))
    for scale, expected in ((0.2, 40), (0.5, 16), (0.6, 27), (1.01, 40)):
        _, rgb = decode(plain_renderer.render_png([(stamp,) * 3], None, scale))
        for box in plain_renderer.panel_boxes[0]:
            panel = pixels(rgb, box)
            bar_row = np.all(panel[P - 8] == WHITE, axis=-1)  # a row through the bar
            assert bar_row.sum() == expected
            assert bar_row[6]  # starts at the lower-left inset
            assert not np.any(np.all(panel[: P // 2] == WHITE, axis=-1))  # nothing in the upper half
    _, without = decode(plain_renderer.render_png([(stamp,) * 3], None, None))
    assert not np.any(np.all(pixels(without, plain_renderer.panel_boxes[0][0]) == WHITE, axis=-1))


def test_bad_stamp_inputs_raise(plain_renderer):
    good = noise_triplet(30)
    with pytest.raises(ValueError, match="triplets"):
        plain_renderer.render([good, good])
    with pytest.raises(ValueError, match="template, science, difference"):
        plain_renderer.render([good[:2]])
    with pytest.raises(ValueError, match="square"):
        plain_renderer.render([(np.zeros((30, 20)),) * 3])
    with pytest.raises(ValueError, match="pixel scale"):
        plain_renderer.render([good], None, [0.2, 0.2])
    with pytest.raises(ValueError):
        TripletRenderer([], False)


def test_renderer_pickles(meta_renderer):
    clone = pickle.loads(pickle.dumps(meta_renderer))
    stamps = [noise_triplet(30)]
    annotation = SourceAnnotation.from_row(row(pixelFlags_cr=True))
    assert clone.render_png(stamps, annotation, 0.2) == meta_renderer.render_png(stamps, annotation, 0.2)


# --------------------------------------------------------------------------
# Renderer: annotation.


@pytest.mark.parametrize(
    "annotation_row",
    [
        row(),
        row(**{c: True for c in FLAG_COLUMNS}),
        {},
        row(
            instrument="AVeryLongInstrumentNameIndeed", psfFlux=-1.23456789e9, psfFluxErr=9.9e8, band="HSC-R"
        ),
    ],
    ids=["no-flags", "all-flags", "empty", "long-text"],
)
def test_png_size_never_depends_on_content(meta_renderer, annotation_row):
    annotation = SourceAnnotation.from_row(annotation_row)
    image, _ = decode(meta_renderer.render_png([noise_triplet(30)], annotation, 0.2))
    assert image.size == meta_renderer.canvas_size == (752, 384)


def test_without_metadata_no_text_block(plain_renderer, meta_renderer):
    assert plain_renderer.canvas_size[0] == meta_renderer.canvas_size[0]
    assert plain_renderer.canvas_size[1] < meta_renderer.canvas_size[1]
    assert not plain_renderer.badge_boxes and not plain_renderer.value_boxes


@pytest.mark.parametrize(("badge", "column"), [(b.name, c) for b in BADGES for c in b.all_columns], ids=str)
def test_each_badge_drawn_in_its_colour_exactly_when_its_flag_is_set(meta_renderer, badge, column):
    stamps = [noise_triplet(30)]
    _, rgb = decode(meta_renderer.render_png(stamps, SourceAnnotation.from_row(row(**{column: True})), 0.2))
    _, clean = decode(meta_renderer.render_png(stamps, SourceAnnotation.from_row(row()), 0.2))
    for spec in BADGES:
        box = meta_renderer.badge_boxes[spec.name]
        assert has_colour(pixels(rgb, box), spec.rgb) == (spec.name == badge), spec.name
        assert not has_colour(pixels(clean, box), spec.rgb, fraction=0.0001)


def test_badge_positions_are_fixed_and_distinct(meta_renderer):
    boxes = [meta_renderer.badge_boxes[b.name] for b in BADGES]
    for a, b in zip(boxes, boxes[1:], strict=False):
        assert a.x1 <= b.x0 or a.y1 <= b.y0  # left to right, in BADGES order
    renderer2 = TripletRenderer([30, 64], True)
    assert dict(renderer2.badge_boxes) == dict(meta_renderer.badge_boxes)


@pytest.mark.parametrize(
    ("column", "key"), [(c, key) for key, columns in FLUX_FLAG_COLUMNS.items() for c in columns], ids=str
)
def test_flux_label_red_exactly_when_its_flag_is_set(meta_renderer, column, key):
    _, rgb = decode(
        meta_renderer.render_png([noise_triplet(30)], SourceAnnotation.from_row(row(**{column: True})), 0.2)
    )
    for other in ("psf", "ap", "total"):
        label = pixels(rgb, meta_renderer.label_boxes[other])
        assert is_reddish(label) == (other == key), other
        if other == key:
            assert np.all(label == FLAGGED_RGB, axis=-1).sum() >= 10  # solid red strokes
    for value_key, box in meta_renderer.value_boxes.items():
        assert not is_reddish(pixels(rgb, box)), value_key


def test_values_are_drawn_and_missing_ones_show_a_dash(meta_renderer):
    stamps = [noise_triplet(30)]
    _, full = decode(meta_renderer.render_png(stamps, SourceAnnotation.from_row(row()), 0.2))
    _, empty = decode(meta_renderer.render_png(stamps, SourceAnnotation.from_row({}), 0.2))
    _, none = decode(meta_renderer.render_png(stamps, None, 0.2))
    for key, box in meta_renderer.value_boxes.items():
        dark_full = (pixels(full, box).mean(axis=-1) < 100).sum()
        dark_empty = (pixels(empty, box).mean(axis=-1) < 100).sum()
        assert dark_full > 0, key
        assert 0 < dark_empty < dark_full or key == "band", key  # a dash, narrower than the value
        assert np.all(pixels(none, box) == WHITE), key


def test_long_values_are_clipped_to_their_slot(meta_renderer):
    annotation = SourceAnnotation.from_row(row(instrument="X" * 80))
    _, rgb = decode(meta_renderer.render_png([noise_triplet(30)], annotation, 0.2))
    _, ref = decode(meta_renderer.render_png([noise_triplet(30)], SourceAnnotation.from_row(row()), 0.2))
    box = meta_renderer.value_boxes["instrument"]
    changed = np.any(rgb != ref, axis=-1)
    changed[box.y0 : box.y1, box.x0 : box.x1] = False
    assert not changed.any(), "text spilled outside its value box"


@pytest.mark.parametrize("size", [2, 5, 9, 15, 30, 64, 200])
def test_zscale_limits_equal_astropy(size):
    """The closed-form fit gives astropy's zscale limits where astropy's
    are not degenerate."""
    from astropy.visualization import ZScaleInterval

    from lsst.analysis.ap.display.scaling import RobustZScaleInterval

    rng = np.random.default_rng(size)
    for trial in range(5):
        stamp = rng.normal(0.0, 20.0, (size, size)).astype(np.float32)
        stamp[size // 2, size // 2] += 200.0 * trial
        if trial == 4:
            stamp[: size // 3] = np.nan
        finite = stamp[np.isfinite(stamp)]
        expected = ZScaleInterval().get_limits(finite)
        if not expected[1] > expected[0]:
            continue
        got = RobustZScaleInterval().get_limits(stamp)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9 * np.ptp(finite))


@pytest.mark.parametrize("dec", [52.02972, -89.999999, 89.999999, -0.5])
def test_rubin_coordinates_are_drawn_whole_north_and_south(dec):
    """The Dec value box holds the widest signed value: a northern source's
    "+52.029720" is drawn whole, not cut short with an ellipsis.
    """
    renderer = TripletRenderer([30], True)
    rng = np.random.default_rng(3)
    stamps = [[rng.normal(0, 1, (30, 30)).astype(np.float32) for _ in range(3)]]
    annotation = SourceAnnotation.from_row(full_row(ra=359.999999, dec=dec))
    image = np.asarray(Image.open(io.BytesIO(renderer.render_png(stamps, annotation))).convert("RGB"))
    palette = Palette("gray", NO_DATA_RGB)
    for key, text in (("dec", f"{dec:+.6f}"), ("ra", "359.999999")):
        box = renderer.layouts["rubin"].cells[key].value_box
        coverage = GlyphCache(font(VALUE_SIZE)).coverage(text, box.width, box.height, BASELINE)
        np.testing.assert_array_equal(
            image[box.slices], palette.colours[palette.coverage_to_index[coverage]], err_msg=text
        )


def test_a_band_of_two_letters_is_drawn_whole():
    """The band ends its line, so a band of two or three letters (DECam's
    ``VR``) takes the room left on the line instead of showing as "V…"."""
    band = "VR"
    renderer = TripletRenderer([30], True)
    rng = np.random.default_rng(4)
    stamps = [[rng.normal(0, 1, (30, 30)).astype(np.float32) for _ in range(3)]]
    image = np.asarray(
        Image.open(
            io.BytesIO(renderer.render_png(stamps, SourceAnnotation.from_row(full_row(band=band))))
        ).convert("RGB")
    )
    glyphs = GlyphCache(font(VALUE_SIZE))
    box = renderer.layouts["rubin"].cells["band"].value_box
    width = int(np.ceil(glyphs.width(band))) + 2
    assert box.x0 + width <= image.shape[1]
    coverage = glyphs.coverage(band, width, box.height, BASELINE)
    palette = Palette("gray", NO_DATA_RGB)
    drawn = image[box.y0 : box.y1, box.x0 : box.x0 + width]
    np.testing.assert_array_equal(drawn, palette.colours[palette.coverage_to_index[coverage]])
