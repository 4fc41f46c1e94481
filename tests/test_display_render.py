"""The display options on rendered pixels: marker, compass, per-panel and
diverging colormaps, mask overlay, empty panels, recorded limits; defaults
byte-identical to a renderer without options."""

import io
import math

import numpy as np
import pytest
from PIL import Image

from lsst.analysis.ap.display.compass import compass_geometry
from lsst.analysis.ap.display.decorations import COMPASS_EAST_RGB, COMPASS_NORTH_RGB, MARKER_RGB
from lsst.analysis.ap.display.diverging import sign_aware
from lsst.analysis.ap.display.options import DisplayOptions, PanelContext
from lsst.analysis.ap.display.overlays import overlay_index, overlay_planes
from lsst.analysis.ap.display.palette import NO_DATA_RGB, make_lut
from lsst.analysis.ap.display.renderer import TripletRenderer

P = 240


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def pixels(rgb, box):
    return rgb[box.y0 : box.y1, box.x0 : box.x1]


def noise(size=30, seed=1, amplitude=0.0):
    rng = np.random.default_rng(seed)
    stamp = rng.normal(100.0, 5.0, (size, size))
    y, x = np.mgrid[:size, :size]
    c = size // 2
    return stamp + amplitude * np.exp(-((x - c) ** 2 + (y - c) ** 2) / (2 * 1.5**2))


def marker_centre(panel_rgb):
    mask = np.all(panel_rgb == MARKER_RGB, axis=-1)
    rows, cols = np.nonzero(mask)
    return cols.mean() + 0.5, rows.mean() + 0.5


def test_default_options_are_byte_identical():
    stamps = [(noise(seed=1), noise(seed=2), noise(seed=3) - 100)]
    plain = TripletRenderer([30], True)
    with_options = TripletRenderer([30], True, options=DisplayOptions())
    contexts = [(PanelContext(position=(15.0, 15.0)),) * 3]
    assert plain.render_png(stamps) == with_options.render_source(stamps, None, None, contexts).png


@pytest.mark.parametrize(
    ("size", "position", "nan_columns"),
    [
        (30, (15.3, 14.6), 0),
        (30, (15.3, 14.6), 12),  # partial stamp at the image's left edge
        (7, (3.2, 2.8), 0),  # footprint-sized stamp (non-integer zoom)
        (64, (32.4, 31.9), 20),
    ],
)
def test_marker_centre_lands_on_the_source_in_every_panel(size, position, nan_columns):
    renderer = TripletRenderer([size], False, options=DisplayOptions(marker="reticle"))
    stamp = noise(size)
    stamp[:, :nan_columns] = np.nan
    # Each panel has its own WCS: the position differs per panel.
    positions = [position, (position[0] - 0.4, position[1] + 0.3), (position[0] + 0.45, position[1] - 0.2)]
    contexts = [tuple(PanelContext(position=p) for p in positions)]
    rgb = decode(renderer.render_source([(stamp, stamp, stamp)], None, None, contexts).png)
    f = P / size
    for box, (x, y) in zip(renderer.panel_boxes[0], positions, strict=True):
        u, v = marker_centre(pixels(rgb, box))
        assert u == pytest.approx((x + 0.5) * f, abs=1.0)
        assert v == pytest.approx(P - (y + 0.5) * f, abs=1.0)


def test_compass_points_along_the_given_directions():
    renderer = TripletRenderer([30], False, options=DisplayOptions(compass=True))
    theta = math.radians(37.0)
    north, east = (math.sin(theta), math.cos(theta)), (-math.cos(theta), math.sin(theta))
    contexts = [(PanelContext(north=north, east=east),) * 3]
    stamp = np.full((30, 30), 7.0)  # mid-grey: no stamp pixel has an arrow colour
    rgb = decode(renderer.render_source([(stamp, stamp, stamp)], None, None, contexts).png)
    origin = compass_geometry(north, east, P).origin
    for box in renderer.panel_boxes[0]:
        panel = pixels(rgb, box)
        for colour, direction in ((COMPASS_NORTH_RGB, north), (COMPASS_EAST_RGB, east)):
            rows, cols = np.nonzero(np.all(panel == colour, axis=-1))
            near = (np.abs(cols + 0.5 - origin[0]) < 40) & (np.abs(rows + 0.5 - origin[1]) < 40)
            du, dv = cols[near] + 0.5 - origin[0], -(rows[near] + 0.5 - origin[1])
            far = np.argsort(du**2 + dv**2)[-10:]
            angle = math.degrees(math.atan2(dv[far].mean(), du[far].mean()))
            expected = math.degrees(math.atan2(direction[1], direction[0]))
            assert abs((angle - expected + 180) % 360 - 180) < 8


def test_diverging_difference_fading_and_new_sources():
    renderer = TripletRenderer(
        [30],
        False,
        difference_scaling=sign_aware(),
        options=DisplayOptions(colormaps=(None, None, "RdBu_r"), negative_badge=True),
    )
    science = noise()
    for amplitude, bluer in ((-80.0, True), (80.0, False)):
        difference = noise(seed=5, amplitude=amplitude) - 100.0
        rendered = renderer.render_source([(science, science, difference)], None, None, None, amplitude < 0)
        rgb = decode(rendered.png).astype(int)
        core = pixels(rgb, renderer.panel_boxes[0][2])[P // 2 - 8 : P // 2 + 8, P // 2 - 8 : P // 2 + 8]
        if bluer:
            assert np.all(core[..., 2] > core[..., 0])
        else:
            assert np.all(core[..., 0] > core[..., 2])
        vmin, vmax = rendered.limits[0][2]
        assert vmin == -vmax
        # Template and science keep the gray colormap.
        template = pixels(rgb, renderer.panel_boxes[0][0])
        assert np.all(template[..., 0] == template[..., 2])
        badge = pixels(rgb, renderer.panel_boxes[0][2])[4:10, 4:40]
        assert (np.all(badge == (65, 105, 225), axis=-1).sum() > 50) == (amplitude < 0)


@pytest.mark.parametrize(
    ("colormap", "colormaps"),
    [
        ("gray", (None, None, None)),
        ("viridis", (None, None, None)),
        ("gray", ("viridis", None, "RdBu_r")),  # blended over each panel's own colours
    ],
)
def test_overlay_colours_exactly_where_bits_are_set(colormap, colormaps):
    options = DisplayOptions(
        colormaps=colormaps, overlay_planes=overlay_planes(["SAT", "CR"]), overlay_opacity=0.5
    )
    renderer = TripletRenderer([30], False, colormap=colormap, options=options)
    plain = TripletRenderer([30], False, colormap=colormap, options=DisplayOptions(colormaps=colormaps))
    stamp = noise()
    sat = np.zeros((30, 30), bool)
    sat[3:6, 20:25] = True
    cr = np.zeros((30, 30), bool)
    cr[10, :] = True
    index = overlay_index({"SATURATED": sat, "COSMIC_RAY": cr}, options.overlay_planes)
    contexts = [(PanelContext(overlay_index=index),) * 3]
    rgb = decode(renderer.render_source([(stamp, stamp, stamp)], None, None, contexts).png).astype(int)
    base = decode(plain.render_png([(stamp, stamp, stamp)])).astype(int)
    assert rgb.shape[0] > base.shape[0]  # legend strip below
    f = P // 30
    for box in renderer.panel_boxes[0]:
        shown, under = pixels(rgb, box), pixels(base, box)
        expected = under.copy()
        for plane_bits, colour in ((sat, (0, 255, 0)), (cr, (255, 0, 255))):
            up = np.repeat(np.repeat(plane_bits[::-1], f, axis=0), f, axis=1)
            expected[up] = np.rint(0.5 * under[up] + 0.5 * np.asarray(colour))
        np.testing.assert_array_equal(shown, expected)
    # Unmasked pixels keep their panel's colormap: not grey unless it is gray.
    for box, panel_colormap in zip(renderer.panel_boxes[0], colormaps, strict=True):
        unmasked = pixels(rgb, box)[: P // 2].reshape(-1, 3)
        grey = np.all(unmasked == unmasked[:, :1], axis=-1)
        assert grey.all() == ((panel_colormap or colormap) == "gray")


def test_empty_panel_is_drawn_in_no_data_colour_and_labelled():
    renderer = TripletRenderer([30], True)
    empty = np.full((30, 30), np.nan)
    stamp = noise()
    rgb = decode(renderer.render_png([(empty, stamp, stamp)]))
    panel = pixels(rgb, renderer.panel_boxes[0][0])
    no_data = np.all(panel == NO_DATA_RGB, axis=-1)
    assert no_data.mean() > 0.9
    label = ~no_data
    rows, cols = np.nonzero(label)
    assert label.sum() > 50  # the "no data" text
    assert abs(rows.mean() - P / 2) < 10 and abs(cols.mean() - P / 2) < 10


def test_limits_reported_per_panel():
    renderer = TripletRenderer([30, 64], False)
    stamps = [(noise(30, 1), noise(30, 2), noise(30, 3)), (noise(64, 1), noise(64, 2), noise(64, 3))]
    rendered = renderer.render_source(stamps)
    for row, triplet in zip(rendered.limits, stamps, strict=True):
        assert row[0] == (triplet[0].min(), triplet[0].max())  # minmax template
    assert rendered.png == renderer.render_png(stamps)


def test_per_panel_colormap():
    renderer = TripletRenderer([30], False, options=DisplayOptions(colormaps=("viridis", None, None)))
    stamp = noise()
    rgb = decode(renderer.render_png([(stamp, stamp, stamp)]))
    levels = make_lut("viridis")
    template = pixels(rgb, renderer.panel_boxes[0][0]).reshape(-1, 3)
    assert {tuple(c) for c in template[:500]} <= {tuple(c) for c in levels}
    science = pixels(rgb, renderer.panel_boxes[0][1])
    assert np.all(science[..., 0] == science[..., 1])


def test_real_ztf_triplet_sign_aware_and_marker():
    """ZTF alert 472263571115115000 (isdiffpos 't'): the residual at the
    centre is drawn red by the diverging map, the marker sits on it."""
    import warnings
    from pathlib import Path

    from astropy.io import fits

    from lsst.analysis.ap.display.decorations import MARKER_RGB

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stamps = [
            np.asarray(
                fits.getdata(
                    Path(__file__).parent / "data" / "ztf" / f"472263571115115000_cutout{k}.fits.gz"
                ),
                dtype=float,
            )
            for k in ("Template", "Science", "Difference")
        ]
    renderer = TripletRenderer(
        [63],
        False,
        difference_scaling=sign_aware(),
        options=DisplayOptions(colormaps=(None, None, "RdBu_r"), marker="reticle"),
    )
    contexts = [(PanelContext(position=(31.0, 31.0)),) * 3]
    rendered = renderer.render_source([tuple(stamps)], None, None, contexts)
    rgb = decode(rendered.png).astype(int)
    difference = pixels(rgb, renderer.panel_boxes[0][2])
    u, v = (31.5 * P / 63), P - 31.5 * P / 63
    core = difference[int(v) - 2 : int(v) + 3, int(u) - 2 : int(u) + 3]
    assert np.all(core[..., 0] > core[..., 2] + 50)
    cols_rows = marker_centre(difference)
    assert cols_rows == pytest.approx((u, v), abs=1.5)
    assert np.all(difference[int(v), int(u) - 12 : int(u) - 8] == MARKER_RGB)
    vmin, vmax = rendered.limits[0][2]
    assert vmin == -vmax > -1e4
