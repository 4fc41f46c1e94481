"""The renderer's fast paths draw and encode exactly what the plain ways do.

Each cutout's bytes must not change when the drawing gets faster, so every
fast path is checked against the straightforward computation it replaces:
the PNG encoder against Pillow, batched glyph ink against per-text glyph
coverage, one-pass panel levels against scaling then quantizing, repeated
pixels against index-array upsampling, and the zscale loop against a plain
transcription of the IRAF algorithm, to the last bit.
"""

import io
import itertools
import math
import string
import zlib

import numpy as np
import pytest
from astropy.visualization import AsymmetricPercentileInterval, ManualInterval, MinMaxInterval
from PIL import Image

from lsst.analysis.ap.display.annotation import ANNOTATION_SCHEMES
from lsst.analysis.ap.display.glyphs import GlyphCache, _pen_after, font
from lsst.analysis.ap.display.layout import LABEL_SIZE, VALUE_SIZE, layout_canvas, uncovered_boxes
from lsst.analysis.ap.display.palette import display_levels
from lsst.analysis.ap.display.png import PalettePng, zlib_header
from lsst.analysis.ap.display.renderer import TripletRenderer, paint_panel, upsample_nearest
from lsst.analysis.ap.display.scaling import (
    CONSTANT_LEVEL,
    INTERVAL_NAMES,
    STRETCH_NAMES,
    RobustZScaleInterval,
    _dilate,
    finite_limits,
    make_interval,
    make_stretch,
    scale_stamp_with_limits,
    stamp_levels,
)


def pillow_png(indices: np.ndarray, palette: bytes, level: int) -> bytes:
    height, width = indices.shape
    image = Image.frombuffer("P", (width, height), np.ascontiguousarray(indices), "raw", "P", 0, 1)
    image.putpalette(palette)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()


def cutout_indices(seed: int) -> np.ndarray:
    """A real default cutout (annotation, three panels) as palette indices."""
    from lsst.analysis.ap.display.annotation import SourceAnnotation
    from source_rows import full_row

    rng = np.random.default_rng(seed)
    stamps = [tuple(rng.normal(100.0, 5.0, (30, 30)) for _ in range(3))]
    stamps[0][2][10:14, 12:16] += 400.0
    renderer = TripletRenderer([30], True)
    return renderer.render_indices(stamps, SourceAnnotation.from_row(full_row(psfFlux=1234.5 * seed)), 0.2)


@pytest.mark.parametrize("level", range(10))
def test_palette_png_is_pillows_png_byte_for_byte(level):
    rng = np.random.default_rng(level)
    palette = rng.integers(0, 256, 768, dtype=np.uint8).tobytes()
    images = [
        cutout_indices(level + 1),
        rng.integers(0, 256, (384, 752), dtype=np.uint8),  # incompressible: several IDAT chunks
        rng.integers(0, 4, (1000, 100), dtype=np.uint8),
        rng.integers(0, 256, (60, 20000), dtype=np.uint8),  # rows wider than a quarter chunk
        rng.integers(0, 256, (3, 5), dtype=np.uint8),
        np.zeros((1, 1), np.uint8),
    ]
    for indices in images:
        height, width = indices.shape
        encoder = PalettePng(width, height, palette, level)
        png = encoder.encode(indices)
        assert png == pillow_png(indices, palette, level)
        rows = encoder.new_rows()
        rows[:, 1:] = indices
        assert encoder.encode_rows(rows) == png
        decoded = Image.open(io.BytesIO(png))
        assert decoded.mode == "P"
        np.testing.assert_array_equal(np.asarray(decoded), indices)


@pytest.mark.parametrize("level", range(10))
def test_zlib_header_is_zlibs(level):
    assert zlib_header(level) == zlib.compress(b"", level)[:2]


def test_palette_png_rejects_bad_input():
    palette = bytes(768)
    with pytest.raises(ValueError, match="768 bytes"):
        PalettePng(4, 4, bytes(300), 1)
    with pytest.raises(ValueError, match="0-9"):
        PalettePng(4, 4, palette, 10)
    with pytest.raises(ValueError, match="positive"):
        PalettePng(0, 4, palette, 1)
    with pytest.raises(ValueError, match="4x5 image"):
        PalettePng(5, 4, palette, 1).encode(np.zeros((5, 4), np.uint8))
    with pytest.raises(ValueError, match=r"rows of shape \(4, 6\)"):
        PalettePng(5, 4, palette, 1).encode_rows(np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="C-contiguous"):
        PalettePng(5, 4, palette, 1).encode_rows(np.zeros((4, 12), np.uint8)[:, ::2])


def test_renderer_png_is_pillows_png():
    renderer = TripletRenderer([30, 64], True)
    rng = np.random.default_rng(5)
    stamps = [tuple(rng.normal(0.0, 1.0, (s, s)) for _ in range(3)) for s in (30, 64)]
    indices = renderer.render_indices(stamps, None, 0.2)
    assert renderer.render_png(stamps, None, 0.2) == pillow_png(
        indices, renderer.palette.tobytes(), renderer.compress_level
    )


@pytest.mark.parametrize("sizes", [(30,), (30, 64, 11)])
@pytest.mark.parametrize("add_metadata", [True, False])
def test_the_uncovered_boxes_and_the_panels_tile_the_canvas(sizes, add_metadata):
    renderer = TripletRenderer(sizes, add_metadata)
    width, height = renderer.canvas_size
    panels = [box for row in renderer.panel_boxes for box in row]
    uncovered = uncovered_boxes(renderer.canvas_size, panels)
    count = np.zeros((height, width), int)
    for box in panels + list(uncovered):
        count[box.slices] += 1
    assert (count == 1).all()
    # A band above, between and below the rows of panels, and the four gaps
    # beside the panels of each row.
    assert len(uncovered) == len(sizes) + 1 + 4 * len(sizes)


def test_sources_drawn_one_after_another_leave_nothing_behind():
    """The renderer draws every source in one buffer per thread: a source
    with flags, badges and long values, then one without annotation or
    with empty panels, come out as a fresh renderer draws them, also from
    several threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    from lsst.analysis.ap.display.annotation import SourceAnnotation
    from source_rows import FLAG_COLUMNS, full_row

    rng = np.random.default_rng(11)
    empty = np.full((30, 30), np.nan)
    sources = []
    for k in range(12):
        stamps = [tuple(rng.normal(100.0, 5.0 + k, (30, 30)) for _ in range(3))]
        if k % 4 == 1:
            stamps = [(empty, stamps[0][1], empty)]
        row = full_row(
            diaSourceId=10**15 + 7 * k,
            psfFlux=-(10.0**k),
            psfFlux_flag=k % 2 == 0,
            apFlux_flag=k % 3 == 0,
            **{FLAG_COLUMNS[k % len(FLAG_COLUMNS)]: True},
        )
        annotation = None if k % 3 == 2 else SourceAnnotation.from_row(row)
        sources.append((stamps, annotation, 0.2 if k % 5 else None))
    expected = [TripletRenderer([30], True).render_source(*source).png for source in sources]
    shared = TripletRenderer([30], True)
    assert [shared.render_source(*source).png for source in sources] == expected
    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(lambda source: shared.render_source(*source).png, sources * 3)) == expected * 3


# Texts with glyphs that reach left of the pen (J, T, Y, j, _), past their
# advance (r, L), characters not preloaded and spaces.
ALPHABET = string.digits + string.ascii_letters + " .+-±—…_χ²/éJTYjrL"


@pytest.mark.parametrize("seed", range(4))
def test_batched_glyph_ink_is_per_text_coverage(seed):
    glyphs = GlyphCache(font(VALUE_SIZE), string.digits)
    rng = np.random.default_rng(seed)
    stride = 700
    texts, expected = [], np.zeros((40 * 30, stride), np.uint8)
    for k in range(40):
        text = "".join(rng.choice(list(ALPHABET), int(rng.integers(0, 25))))
        width, height = int(rng.integers(1, 260)), int(rng.integers(4, 28))
        baseline = int(rng.integers(0, height + 4))
        x0, y0 = int(rng.integers(0, stride - width)), 30 * k
        coverage = glyphs.coverage(text, width, height, baseline)
        expected[y0 : y0 + height, x0 : x0 + width] = coverage
        texts.append((text, x0, y0, width, height, baseline))
    got = np.zeros_like(expected)
    for baseline, group in itertools.groupby(sorted(texts, key=lambda t: t[5]), key=lambda t: t[5]):
        index, coverage = glyphs.ink([t[:5] for t in group], baseline, stride)
        assert coverage.min(initial=1) > 0
        got.reshape(-1)[index] = coverage
    np.testing.assert_array_equal(got, expected)


def test_batched_glyph_ink_of_no_text_is_empty():
    glyphs = GlyphCache(font(VALUE_SIZE))
    for texts in ([], [("", 0, 0, 10, 10)]):
        index, coverage = glyphs.ink(texts, 5, 100)
        assert index.size == 0 and coverage.size == 0


@pytest.mark.parametrize("exact", [True, False])
def test_pen_positions_are_the_one_by_one_sums(exact):
    rng = np.random.default_rng(int(exact))
    lengths = rng.integers(1, 30, 50)
    advance = rng.integers(0, 20 * 64, int(lengths.sum())) / 64.0
    if not exact:
        advance += rng.random(advance.size) / 3.0
    first = np.cumsum(lengths) - lengths
    expected = []
    for f, n in zip(first, lengths, strict=True):
        pen = 0.0
        for a in advance[f : f + n]:
            pen += float(a)
            expected.append(pen)
    got = _pen_after(advance, first, lengths, exact)
    assert got.tolist() == expected


def reference_scale(array, interval, stretch):
    """Scale a stamp the plain way: limits of the finite pixels, normalize,
    stretch, NaN where there is no data."""
    data = np.asarray(array, dtype=float)
    good = np.isfinite(data)
    out = np.full(data.shape, np.nan)
    if not good.any():
        return out, None
    values = data[good]
    limits = finite_limits(data if getattr(interval, "needs_shape", False) else values, interval)
    if limits is None:
        out[good] = CONSTANT_LEVEL
        return out, None
    vmin, vmax = limits
    normalized = np.clip((values - vmin) / (vmax - vmin), 0.0, 1.0)
    out[good] = np.clip(np.asarray(stretch(normalized, clip=True), dtype=float), 0.0, 1.0)
    return out, limits


def test_stamp_levels_are_scaling_then_levels():
    rng = np.random.default_rng(11)
    base = rng.normal(100.0, 5.0, (30, 30))
    base[14:17, 14:17] += 300.0
    stamps = [base, base.astype(np.float32), base[:1, :1], np.full((9, 9), 3.0), np.full((9, 9), np.nan)]
    holes = base.copy()
    holes[:, :11] = np.nan
    holes[4, 20] = np.inf
    holes[6, 21] = -np.inf
    stamps.append(holes)
    intervals = [make_interval(name) for name in INTERVAL_NAMES]
    intervals += [ManualInterval(90.0, 120.0), AsymmetricPercentileInterval(1.0, 99.0), MinMaxInterval()]
    for interval, stretch_name, stamp in itertools.product(intervals, STRETCH_NAMES, stamps):
        stretch = make_stretch(stretch_name)
        expected, expected_limits = reference_scale(stamp, interval, stretch)
        scaled, limits = scale_stamp_with_limits(stamp, interval, stretch)
        np.testing.assert_array_equal(scaled, expected)
        assert limits == expected_limits
        levels, limits = stamp_levels(stamp, interval, stretch, 201, 230)
        np.testing.assert_array_equal(levels, display_levels(expected, 201, 230))
        assert limits == expected_limits
        assert levels.dtype == np.uint8


def test_scaling_leaves_the_stamp_unchanged():
    stamp = np.random.default_rng(2).normal(0.0, 1.0, (30, 30))
    before = stamp.copy()
    for name in INTERVAL_NAMES:
        stamp_levels(stamp, make_interval(name), make_stretch("asinh"), 200, 210)
        scale_stamp_with_limits(stamp, make_interval(name), make_stretch("sqrt"))
    np.testing.assert_array_equal(stamp, before)


@pytest.mark.parametrize("size", [32, 37, 100, 240, 250, 256])
def test_paint_panel_is_upsample_nearest(size):
    rng = np.random.default_rng(size)
    for n in [*range(1, 70), 100, 128, 255]:
        levels = rng.integers(0, 256, (n, n), dtype=np.uint8)
        canvas = np.full((size + 10, size + 20), 7, np.uint8)
        expected = canvas.copy()
        box = (slice(3, 3 + size), slice(5, 5 + size))
        paint_panel(canvas, box, levels)
        expected[box] = upsample_nearest(levels, size)
        np.testing.assert_array_equal(canvas, expected)


def plain_zscale(
    values, n_samples=1000, contrast=0.25, max_reject=0.5, min_npixels=5, krej=2.5, max_iterations=5
):
    """IRAF zscale with the closed-form line fit, written plainly."""
    stride = int(max(1.0, values.size / n_samples))
    samples = np.sort(values[::stride][:n_samples]).astype(float)
    npix = len(samples)
    vmin, vmax = samples[0], samples[-1]
    minpix = max(min_npixels, int(npix * max_reject))
    x = np.arange(npix, dtype=float)
    ngoodpix, last_ngoodpix = npix, npix + 1
    badpix = np.zeros(npix, dtype=bool)
    kernel = np.ones(max(1, int(npix * 0.01)), dtype=bool)
    slope = 0.0
    for _ in range(max_iterations):
        if ngoodpix >= last_ngoodpix or ngoodpix < minpix:
            break
        good = ~badpix
        xg, yg = x[good], samples[good]
        n = float(good.sum())
        sx, sy = xg.sum(), yg.sum()
        denominator = n * (xg * xg).sum() - sx * sx
        slope = (n * (xg * yg).sum() - sx * sy) / denominator if denominator else 0.0
        intercept = (sy - slope * sx) / n
        flat = samples - (slope * x + intercept)
        threshold = krej * flat[good].std()
        badpix[(flat < -threshold) | (flat > threshold)] = True
        badpix = np.convolve(badpix, kernel, mode="same")
        last_ngoodpix = ngoodpix
        ngoodpix = int(np.sum(~badpix))
    if ngoodpix >= minpix:
        if contrast > 0:
            slope = slope / contrast
        center_pixel = (npix - 1) // 2
        median = np.median(samples)
        vmin = max(vmin, median - (center_pixel - 1) * slope)
        vmax = min(vmax, median + (npix - center_pixel) * slope)
    return float(vmin), float(vmax)


def test_zscale_growing_of_rejected_pixels_is_the_boolean_convolution():
    rng = np.random.default_rng(3)
    for width in (1, 2, 3, 9, 10, 17):
        for n in (width, width + 1, 100, 900, 1000):
            for density in (0.01, 0.2, 0.7):
                mask = rng.random(n) < density
                np.testing.assert_array_equal(
                    _dilate(mask, width), np.convolve(mask, np.ones(width, bool), mode="same")
                )


def test_zscale_limits_are_the_plain_algorithms_to_the_last_bit():
    rng = np.random.default_rng(8)
    for trial in range(600):
        size = int(rng.choice([2, 3, 5, 9, 15, 30, 31, 64, 110]))
        kind = trial % 4
        if kind == 0:
            values = rng.normal(0.0, 20.0, size * size)
        elif kind == 1:
            values = rng.normal(0.0, 20.0, size * size)
            values[size] += 1000.0 * rng.random()
        elif kind == 2:
            values = rng.integers(-3, 3, size * size).astype(float)
        else:
            values = rng.standard_cauchy(size * size)
        params = {}
        if trial % 5 == 0:
            params = {
                "n_samples": int(rng.integers(5, 2000)),
                "contrast": float(rng.choice([0.0, 0.25, 1.0])),
                "max_iterations": int(rng.integers(1, 8)),
            }
        expected = plain_zscale(values, **params)
        got = RobustZScaleInterval(**params)._zscale(values)
        assert got == expected or all(
            math.isnan(g) and math.isnan(e) for g, e in zip(got, expected, strict=True)
        )


@pytest.mark.parametrize("scheme", ANNOTATION_SCHEMES)
@pytest.mark.parametrize("panel_pixels", [32, 64, 100, 240, 400])
def test_value_boxes_overlap_nothing_else_drawn_per_source(scheme, panel_pixels):
    """Value boxes are blanked once in the background and only inked per
    source, which draws what redrawing each whole box did as long as no
    other per-source drawing (badges, red labels, other values) overlaps
    them."""
    layout = layout_canvas(
        1, True, panel_pixels, GlyphCache(font(VALUE_SIZE)), GlyphCache(font(LABEL_SIZE)), scheme
    )
    values = [cell.value_box for cell in layout.cells.values()]
    others = [cell.label_box for cell in layout.cells.values()] + list(layout.badge_boxes.values())

    def overlap(a, b):
        return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1

    for i, box in enumerate(values):
        assert not any(overlap(box, other) for other in values[i + 1 :] + others)


def test_batched_glyph_ink_from_threads_sharing_one_cache():
    """Threads that draw with one renderer share its glyph cache while it
    is still learning characters; each gets the pixels of its own texts."""
    from concurrent.futures import ThreadPoolExecutor

    glyphs = GlyphCache(font(VALUE_SIZE))
    reference = GlyphCache(font(VALUE_SIZE))
    letters = [chr(c) for c in range(0x41, 0x5B)] + [chr(c) for c in range(0x3B1, 0x3C9)]
    texts = ["".join(letters[(k * 7 + j) % len(letters)] for j in range(12)) for k in range(64)]

    def draw(text):
        index, coverage = glyphs.ink([(text, 0, 0, 200, 20)], 15, 200)
        strip = np.zeros((20, 200), np.uint8)
        strip.reshape(-1)[index] = coverage
        return strip

    with ThreadPoolExecutor(4) as pool:
        strips = list(pool.map(draw, texts))
    for text, strip in zip(texts, strips, strict=True):
        np.testing.assert_array_equal(strip, reference.coverage(text, 200, 20, 15))
