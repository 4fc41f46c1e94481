"""Cutouts from alert packets: the real ZTF packet, Rubin packets built from
the demo repository exactly as alert production writes them (CCDData FITS
stamps, schema from lsst-alert-packet, Confluent wire format and Avro
containers), damaged packets, and the ``plotAlertCutouts`` command.
"""

from __future__ import annotations

import collections
import copy as copy_module
import io
import json
import logging
import math
import re
import shutil
import struct
import warnings
from pathlib import Path

import fastavro
import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from PIL import Image

from alert_packets import container_bytes, latest_schema, make_centered_box, rubin_alert, wire_message
from lsst.analysis.ap.cli import alerts_main
from lsst.analysis.ap.display.annotation import SourceAnnotation
from lsst.analysis.ap.display.glyphs import GlyphCache, font
from lsst.analysis.ap.display.layout import BASELINE, VALUE_SIZE
from lsst.analysis.ap.display.palette import NO_DATA_RGB, Palette
from lsst.analysis.ap.display.renderer import TripletRenderer
from lsst.analysis.ap.geometry import stamp_box
from lsst.analysis.ap.images.alerts import ROLE_FIELDS, ZTF_PIXEL_SCALE_ARCSEC, alert_source, read_packets
from lsst.analysis.ap.plotImageSubtractionCutouts import (
    PlotImageSubtractionCutoutsConfig,
    PlotImageSubtractionCutoutsTask,
)
from lsst.analysis.ap.standalone import make_alert_cutouts

ZTF_PACKET = Path(__file__).parent / "data" / "ztf" / "472263571115115000.avro"
ZTF_STAMPS = Path(__file__).parent / "data" / "ztf"
CANDID = 472263571115115000
RUBIN_SAMPLE = Path(__file__).parent / "data" / "rubin_alert_packet" / "v11_0_fakeAlert.avro"


def config(**overrides) -> PlotImageSubtractionCutoutsConfig:
    result = PlotImageSubtractionCutoutsConfig()
    result.whole_read_min_sources = 1
    for name, value in overrides.items():
        setattr(result, name, value)
    result.validate()
    return result


def ztf_stamp(kind: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ZTF stamps have a non-standard SIMPLE card
        return np.asarray(fits.getdata(ZTF_STAMPS / f"{CANDID}_cutout{kind}.fits.gz"), dtype=np.float32)


def ztf_record() -> tuple[dict, dict]:
    """(writer schema, record) of the real ZTF packet."""
    with open(ZTF_PACKET, "rb") as stream:
        reader = fastavro.reader(stream)
        return reader.writer_schema, next(iter(reader))


def ztf_copies(n: int) -> tuple[dict, list[dict]]:
    """(writer schema, ``n`` copies of the real packet's record with new
    candids, one after another)."""
    schema, record = ztf_record()
    copies = []
    for k in range(n):
        copy = copy_module.deepcopy(record)
        copy["candid"] += k
        copy["candidate"]["candid"] = copy["candid"]
        copies.append(copy)
    return schema, copies


def negative_ztf_packet(path: Path) -> dict:
    """The real packet as ZTF sends a candidate found in the negative
    subtraction: ``isdiffpos = 'f'``, its difference stamp cut from the
    reference − science image, so the candidate is positive in the stamp
    (as in the real ``'f'`` alerts of ``tests/data/fink``), written with the
    packet's schema.
    """
    schema, record = ztf_record()
    record["candid"] += 1
    record["candidate"]["candid"] = record["candid"]
    record["candidate"]["isdiffpos"] = "f"
    with open(path, "wb") as out:
        fastavro.writer(out, schema, [record])
    return record


def panel_pixels_of(png: Path, row: int, column: int) -> np.ndarray:
    """Luminance of one panel of a PNG drawn with the default layout."""
    renderer = TripletRenderer([63], True)
    box = renderer.panel_boxes[row][column]
    return np.asarray(Image.open(png).convert("L"), dtype=float)[box.slices]


# ZTF ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ztf_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ztf")
    negative = negative_ztf_packet(root / "negative.avro")
    packets = [ZTF_PACKET, root / "negative.avro"]
    result = make_alert_cutouts(packets, root / "out", config=config(sizes=[63, 21], save_as_numpy=True))
    return result, root / "out", negative


def test_ztf_triplets_are_the_packet_stamps_centred_on_the_candidate(ztf_run):
    result, out, _ = ztf_run
    assert result.summary["written"] == 2 and result.summary["failed"] == 0
    for role, kind in (("sci", "Science"), ("temp", "Template"), ("diff", "Difference")):
        stamp = ztf_stamp(kind)
        # Saved as (1, size, size), the original package's layout.
        full = np.load(out / "numpy" / "472263571115110000" / f"{CANDID}_{role}_63.npy")
        assert full.shape == (1, 63, 63)
        np.testing.assert_array_equal(full[0], stamp)
        small = np.load(out / "numpy" / "472263571115110000" / f"{CANDID}_{role}_21.npy")[0]
        # The centre pixel of every stamp is the packet stamp's centre: the candidate.
        assert small[10, 10] == stamp[31, 31]
        np.testing.assert_array_equal(small, stamp[21:42, 21:42])
    # The candidate is the brightest point of the difference, at the centre.
    difference = ztf_stamp("Difference")
    peak = np.unravel_index(np.nanargmax(difference), difference.shape)
    assert abs(peak[0] - 31) <= 1 and abs(peak[1] - 31) <= 1


def test_ztf_records_and_annotation_match_the_packet(ztf_run):
    result, out, _ = ztf_run
    _, record = ztf_record()
    candidate = record["candidate"]
    row = result.records.set_index("diaSourceId").loc[CANDID]
    assert row["instrument"] == "ZTF"
    assert row["band"] == "r"  # fid 2
    assert row["visit"] == candidate["pid"] and row["detector"] == candidate["rcid"]
    assert row["ra"] == pytest.approx(candidate["ra"]) and row["dec"] == pytest.approx(candidate["dec"])
    assert (out / row["path"]).exists()
    source = alert_source(record, "ztf", instrument="ignored")
    fields = SourceAnnotation.from_row(source.row).fields()
    assert fields["diaSourceId"].text == str(CANDID)
    assert fields["band"].text == "r"
    assert fields["reliability"].text == f"{candidate['drb']:.3f}"
    flux = 10 ** ((31.4 - candidate["magpsf"]) / 2.5)
    error = flux * candidate["sigmapsf"] * math.log(10) / 2.5
    assert fields["psf"].text == f"{flux:.1f} ± {error:.1f} nJy"
    assert source.row["objectId"] == record["objectId"] == "ZTF17aaajnnn"
    assert source.row["isdiffpos"] == "t" and source.row["rb"] == candidate["rb"]
    # No WCS: the scale bar comes from ZTF's pixel scale.
    assert source.readers["science"].pixel_scale_arcsec() == ZTF_PIXEL_SCALE_ARCSEC
    assert source.readers["science"].projection is None


def test_ztf_negative_difference_is_drawn_negative(ztf_run):
    result, out, negative = ztf_run
    records = result.records.set_index("diaSourceId")
    positive_png = out / records.loc[CANDID, "path"]
    negative_png = out / records.loc[negative["candid"], "path"]
    for png, sign in ((positive_png, 1), (negative_png, -1)):
        panel = panel_pixels_of(png, 0, 2)
        n = panel.shape[0]
        centre = panel[n // 2 - 10 : n // 2 + 10, n // 2 - 10 : n // 2 + 10].mean()
        assert sign * (centre - np.median(panel)) > 40, png
    # Drawn as science − reference: the stamp negated.
    chunk = out / "numpy" / "472263571115110000"
    np.testing.assert_array_equal(
        np.load(chunk / f"{negative['candid']}_diff_63.npy")[0], -ztf_stamp("Difference")
    )
    np.testing.assert_array_equal(np.load(chunk / f"{CANDID}_diff_63.npy")[0], ztf_stamp("Difference"))
    np.testing.assert_array_equal(
        np.load(chunk / f"{negative['candid']}_sci_63.npy")[0], ztf_stamp("Science")
    )
    source = alert_source(negative, "negative", instrument="ignored")
    assert source.row["psfFlux"] < 0
    assert SourceAnnotation.from_row(source.row).fields()["psf"].text.startswith("-")


def expected_text_pixels(text: str, box) -> np.ndarray:
    """RGB of ``text`` drawn by the value glyphs in ``box``: black text on white."""
    coverage = GlyphCache(font(VALUE_SIZE)).coverage(text, box.width, box.height, BASELINE)
    palette = Palette("gray", NO_DATA_RGB)
    return palette.colours[palette.coverage_to_index[coverage]]


def test_ztf_png_shows_the_packet_fields(ztf_run):
    """The ZTF annotation block shows objectId, candid, band, magpsf ±
    sigmapsf, isdiffpos and the real-bogus scores, each drawn exactly as
    the packet gives them, in a canvas of the Rubin size.
    """
    result, out, _ = ztf_run
    _, record = ztf_record()
    candidate = record["candidate"]
    expected = {
        "objectId": "ZTF17aaajnnn",
        "candid": str(CANDID),
        "band": "r",  # fid 2
        "magpsf": f"{candidate['magpsf']:.2f} ± {candidate['sigmapsf']:.2f} mag",
        "isdiffpos": "t",
        "drb": f"{candidate['drb']:.3f}",
        "rb": f"{candidate['rb']:.3f}",
        "ra": f"{candidate['ra']:.6f}",
        "dec": f"{candidate['dec']:+.6f}",
    }
    assert expected["magpsf"] == "18.36 ± 0.09 mag"
    renderer = TripletRenderer([63, 21], True)
    layout = renderer.layouts["ztf"]
    assert set(layout.cells) == set(expected)
    assert not layout.badge_boxes
    assert layout.canvas_size == renderer.layouts["rubin"].canvas_size
    assert layout.panel_boxes == renderer.layouts["rubin"].panel_boxes
    png = out / result.records.set_index("diaSourceId").loc[CANDID, "path"]
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape[1::-1] == renderer.canvas_size
    for key, text in expected.items():
        box = layout.cells[key].value_box
        np.testing.assert_array_equal(image[box.slices], expected_text_pixels(text, box), err_msg=key)
        label = image[layout.cells[key].label_box.slices]
        assert (label.mean(axis=-1) < 160).sum() > 5, f"label of {key} is not drawn"
    # Nothing of the Rubin block (fluxes in nJy, flag badges) is drawn.
    for key in ("psf", "ap", "total", "snr"):
        box = renderer.layouts["rubin"].cells[key].value_box
        assert key not in layout.cells
        assert not any(cell.value_box == box for cell in layout.cells.values())
    block = image[: layout.title_top]
    assert not np.any(np.all(block == np.asarray((255, 0, 0), np.uint8), axis=-1))


def test_ztf_annotation_pixels_follow_the_packet_values(ztf_run):
    """The negative packet differs from the real one in candid (+1) and
    isdiffpos ('f'): exactly those two value boxes change in the annotation
    block, and each shows the new value.
    """
    result, out, negative = ztf_run
    records = result.records.set_index("diaSourceId")
    layout = TripletRenderer([63, 21], True).layouts["ztf"]
    positive = np.asarray(Image.open(out / records.loc[CANDID, "path"]).convert("RGB"))
    flipped = np.asarray(Image.open(out / records.loc[negative["candid"], "path"]).convert("RGB"))
    changed = np.any(positive[: layout.title_top] != flipped[: layout.title_top], axis=-1)
    inside = np.zeros_like(changed)
    for key, text in (("candid", str(negative["candid"])), ("isdiffpos", "f")):
        box = layout.cells[key].value_box
        assert changed[box.slices].any(), key
        inside[box.slices] = True
        np.testing.assert_array_equal(flipped[box.slices], expected_text_pixels(text, box), err_msg=key)
    assert not (changed & ~inside).any(), "pixels outside the changed values differ"


# Rubin ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rubin(demo_repo, demo_sources, tmp_path_factory):
    """Alerts of every demo DiaSource (40-pixel minimum and production's 30),
    and a Butler run drawing the same sources.
    """
    butler = demo_repo.butler()
    schema_id, schema = latest_schema()
    rows = demo_sources.assign(instrument="DemoCam").to_dict("records")
    cache: dict = {}
    alerts40 = [rubin_alert(butler, row, schema, min_cutout_size=40, cache=cache) for row in rows]
    alerts30 = [rubin_alert(butler, row, schema, cache=cache) for row in rows]
    root = tmp_path_factory.mktemp("rubin")
    butler_out = root / "butler"
    task = PlotImageSubtractionCutoutsTask(config=config(save_as_numpy=True), output_path=butler_out)
    butler_result = task.run(demo_sources.assign(instrument="DemoCam"), butler)
    status = butler_result.records.set_index("diaSourceId")["status"]
    drawable = [a for a in alerts40 if status.loc[a["diaSourceId"]] == "written"]
    return {
        "drawable": drawable,
        "butler": butler,
        "schema": schema,
        "schema_id": schema_id,
        "rows": rows,
        "alerts40": alerts40,
        "alerts30": alerts30,
        "root": root,
        "butler_out": butler_out,
        "butler_result": butler_result,
    }


def test_wire_format_packets_draw_the_butler_pngs(rubin, tmp_path):
    messages = [wire_message(a, rubin["schema"], rubin["schema_id"]) for a in rubin["alerts40"]]
    assert all(m[0] == 0 and struct.unpack(">I", m[1:5])[0] == rubin["schema_id"] for m in messages)
    for index, message in enumerate(messages):
        (tmp_path / "packets").mkdir(exist_ok=True)
        (tmp_path / "packets" / f"{index:03d}.bin").write_bytes(message)
    result = make_alert_cutouts(
        [tmp_path / "packets"], tmp_path / "out", config=config(), instrument="DemoCam"
    )
    expected = rubin["butler_result"]
    assert result.summary == expected.summary
    written = expected.records[expected.records["status"] == "written"]
    assert len(written) > 70
    for path in written["path"]:
        assert (tmp_path / "out" / path).read_bytes() == (rubin["butler_out"] / path).read_bytes(), path
    ours = pd.read_csv(tmp_path / "out" / "images" / "manifest.csv")
    theirs = pd.read_csv(rubin["butler_out"] / "images" / "manifest.csv")
    pd.testing.assert_frame_equal(ours, theirs)


def test_container_file_and_wcs_without_ctype_draw_the_same(rubin, tmp_path):
    schema = rubin["schema"]
    butler = rubin["butler"]
    rows = rubin["rows"][:6]
    no_ctype = [rubin_alert(butler, row, schema, min_cutout_size=40, ctype=False) for row in rows]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header = fits.getheader(io.BytesIO(no_ctype[0]["cutoutScience"]))
    assert not header.get("CTYPE1", "").strip()
    (tmp_path / "alerts.avro").write_bytes(container_bytes(no_ctype, schema))
    result = make_alert_cutouts(
        [tmp_path / "alerts.avro"], tmp_path / "out", config=config(), instrument="DemoCam"
    )
    expected = rubin["butler_result"].records.set_index("diaSourceId")
    for record in result.records.to_dict("records"):
        assert record["status"] == expected.loc[record["diaSourceId"], "status"]
        if record["status"] == "written":
            path = record["path"]
            assert (tmp_path / "out" / path).read_bytes() == (rubin["butler_out"] / path).read_bytes()
    assert result.summary["written"] >= 5
    # The same container given as bytes, and the alerts given as dicts.
    for name, packets in (("bytes", [container_bytes(no_ctype, schema)]), ("dicts", no_ctype)):
        again = make_alert_cutouts(packets, tmp_path / name, config=config(), instrument="DemoCam")
        assert again.summary == result.summary
        for path in again.records.loc[again.records["status"] == "written", "path"]:
            assert (tmp_path / name / path).read_bytes() == (tmp_path / "out" / path).read_bytes()


def test_rubin_stamp_planes_are_the_butler_images(rubin):
    """A packet's stamps sit on the detector's pixel grid (CUTMINX/Y) with
    the image's pixels and its variance (UNCERT).
    """
    butler = rubin["butler"]
    alert = rubin["drawable"][0]
    source = alert_source(alert, "packet", instrument="DemoCam")
    row = alert["diaSource"]
    data_id = {"instrument": "DemoCam", "visit": row["visit"], "detector": row["detector"]}
    for role, dataset_type in (("science", "preliminary_visit_image"), ("difference", "difference_image")):
        reader = source.readers[role]
        image = butler.get(dataset_type, data_id, parameters={"bbox": reader.bbox})
        np.testing.assert_array_equal(reader.read(reader.bbox)[0], image.image.array)
        variance = reader.getter("variance", {"bbox": reader.bbox})
        np.testing.assert_array_equal(variance.array, image.variance.array)
        x, y = reader.sky_to_pixel(np.array([row["ra"]]), np.array([row["dec"]]))
        xy = image.sky_projection.sky_to_pixel(SkyCoord(row["ra"], row["dec"], unit="deg"))
        assert abs(x[0] - float(xy.x)) < 1e-3 and abs(y[0] - float(xy.y)) < 1e-3


def test_production_size_stamps_equal_the_butler_stamps(rubin, tmp_path):
    """Alert production cuts even-sized stamps with afw's
    ``Box2I.makeCenteredBox``, and so does this package: 30-pixel packets
    drawn at 30 pixels give the Butler path's PNGs, byte for byte, and
    stamps with no missing pixel.
    """
    packets = [wire_message(a, rubin["schema"], rubin["schema_id"]) for a in rubin["alerts30"]]
    result = make_alert_cutouts(
        packets, tmp_path / "out", config=config(save_as_numpy=True), instrument="DemoCam"
    )
    written = result.records[result.records["status"] == "written"]
    assert len(written) > 45
    butler = rubin["butler"]
    below_half = 0
    for row in written.to_dict("records"):
        data_id = {"instrument": "DemoCam", "visit": row["visit"], "detector": row["detector"]}
        image = butler.get("preliminary_visit_image", data_id)
        xy = image.sky_projection.sky_to_pixel(SkyCoord(row["ra"], row["dec"], unit="deg"))
        x, y = float(xy.x), float(xy.y)
        assert stamp_box(x, y, 30).box == make_centered_box(x, y, 30)
        # The positions where the old rule (source pixel at size // 2) and
        # afw's differ: a fractional part below one half.
        below_half += (x - math.floor(x) < 0.5) or (y - math.floor(y) < 0.5)
        path = row["path"]
        assert (tmp_path / "out" / path).read_bytes() == (rubin["butler_out"] / path).read_bytes()
        chunk = Path(path).parent.name
        for role in ("sci", "temp", "diff"):
            name = f"{row['diaSourceId']}_{role}_30.npy"
            packet_stamp = np.load(tmp_path / "out" / "numpy" / chunk / name)
            butler_stamp = np.load(rubin["butler_out"] / "numpy" / chunk / name)
            np.testing.assert_array_equal(packet_stamp, butler_stamp)
            if role == "sci" and image.bbox.contains(stamp_box(x, y, 30).box):
                assert np.isfinite(packet_stamp).all()
    assert below_half > 10


def test_damaged_packets_fail_with_reasons_and_the_run_goes_on(rubin, tmp_path):
    schema, schema_id = rubin["schema"], rubin["schema_id"]
    good = rubin["alerts40"][:1]
    packets = tmp_path / "packets"
    packets.mkdir()
    message = wire_message(good[0], schema, schema_id)
    (packets / "a_good.bin").write_bytes(message)
    (packets / "b_truncated.bin").write_bytes(message[: len(message) // 2])
    (packets / "c_magic.bin").write_bytes(b"\x07" + message[1:])
    # A body written with a schema that lsst-alert-packet does not ship.
    foreign = {"type": "record", "name": "other.alert", "fields": [{"name": "alertId", "type": "long"}]}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(foreign), {"alertId": 5})
    (packets / "d_unknown_schema.bin").write_bytes(struct.pack(">bI", 0, 424242) + body.getvalue())
    alerts = rubin["alerts40"]
    corrupt = dict(alerts[1])
    corrupt["cutoutScience"] = b"SIMPLE  =   not a FITS file" + bytes(100)
    (packets / "e_corrupt_fits.bin").write_bytes(wire_message(corrupt, schema, schema_id))
    null = dict(alerts[2])
    null["cutoutTemplate"] = None
    (packets / "f_null.avro").write_bytes(container_bytes([null, alerts[3]], schema))
    container = container_bytes(alerts[6:9], schema)
    (packets / "g_cut_container.avro").write_bytes(container[: len(container) - 3000])

    result = make_alert_cutouts([packets], tmp_path / "out", config=config(), instrument="DemoCam")
    records = result.records
    failed = records[records["status"] == "failed"]
    reasons = dict(zip(failed["reason_code"], failed["reason"], strict=False))
    by_packet = {
        Path(re.match(r"(\S+?)(#\d+)?[: ]", reason).group(1)).name: (code, reason)
        for code, reason in zip(failed["reason_code"], failed["reason"], strict=True)
    }
    assert set(by_packet) == {
        "b_truncated.bin",
        "c_magic.bin",
        "d_unknown_schema.bin",
        "e_corrupt_fits.bin",
        "f_null.avro",
        "g_cut_container.avro",
    }, reasons
    assert "truncated or damaged" in by_packet["b_truncated.bin"][1]
    assert "wrong magic byte 0x07" in by_packet["c_magic.bin"][1]
    assert by_packet["d_unknown_schema.bin"][0] == "unknown_schema"
    assert "unknown schema id 424242" in by_packet["d_unknown_schema.bin"][1]
    assert by_packet["e_corrupt_fits.bin"][0] == "bad_cutout"
    assert "(cutoutScience): not a readable FITS file" in by_packet["e_corrupt_fits.bin"][1]
    assert by_packet["f_null.avro"] == ("no_cutout", f"{packets / 'f_null.avro'}#0: cutoutTemplate is null")
    assert "damaged after" in by_packet["g_cut_container.avro"][1]
    # Failed packets whose source is known are recorded under its id.
    assert {int(alerts[1]["diaSourceId"]), int(alerts[2]["diaSourceId"])} <= set(failed["diaSourceId"])
    # The good packets are drawn: a_good, the second packet of f_null and
    # those of the cut container before the damage.
    written = set(records.loc[records["status"] == "written", "diaSourceId"])
    assert {int(alerts[i]["diaSourceId"]) for i in (0, 3, 6, 7)} <= written
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["failed"] == len(failed) >= 6
    failures = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert len(failures) == len(failed)


def _all_nan_stamp(stamp: bytes) -> bytes:
    """An alert stamp with the same headers and every pixel NaN."""
    with fits.open(io.BytesIO(stamp)) as hdus:
        hdus[0].data = np.full_like(hdus[0].data, np.nan)
        out = io.BytesIO()
        hdus.writeto(out)
    return out.getvalue()


def test_reasons_of_packets_that_cannot_be_drawn_name_the_packet(rubin, tmp_path):
    """A packet off its own stamps, one with an impossible ``ra`` and one
    whose stamps hold no valid pixel: each fails with a reason that names
    its file (and the stamps, for those read)."""
    schema, schema_id = rubin["schema"], rubin["schema_id"]
    alerts = rubin["drawable"]
    packets = tmp_path / "packets"
    packets.mkdir()
    off = copy_module.deepcopy(alerts[0])
    off["diaSource"]["ra"] += 0.1  # about 6 arcminutes: far outside the stamps
    bad_ra = copy_module.deepcopy(alerts[1])
    bad_ra["diaSource"]["ra"] = 400.0
    empty = copy_module.deepcopy(alerts[2])
    for field in ROLE_FIELDS.values():
        empty[field] = _all_nan_stamp(empty[field])
    for name, alert in (("off.bin", off), ("bad_ra.bin", bad_ra), ("empty.bin", empty)):
        (packets / name).write_bytes(wire_message(alert, schema, schema_id))

    result = make_alert_cutouts([packets], tmp_path / "out", config=config(), instrument="DemoCam")
    failures = pd.read_csv(tmp_path / "out" / "failures.csv").set_index("diaSourceId")
    reasons = {
        int(alert["diaSourceId"]): failures.loc[int(alert["diaSourceId"])] for alert in (off, bad_ra, empty)
    }
    off_row, bad_ra_row, empty_row = reasons.values()
    assert off_row["reason_code"] == "off_image"
    assert f"image {packets / 'off.bin'} (cutout" in off_row["reason"], off_row["reason"]
    assert bad_ra_row["reason_code"] == "bad_coordinates"
    assert bad_ra_row["reason"].startswith(f"{packets / 'bad_ra.bin'}"), bad_ra_row["reason"]
    assert "'ra' 400.0 is outside [0, 360] degrees" in bad_ra_row["reason"]
    assert empty_row["reason_code"] == "no_data"
    for field in ROLE_FIELDS.values():
        assert f"{packets / 'empty.bin'} ({field})" in empty_row["reason"], empty_row["reason"]
    assert result.summary["failed"] == 3


def test_real_sample_packet_with_null_cutouts_in_every_form(tmp_path):
    """lsst.alert.packet's own 11.0 sample (a container, null cutouts), and
    its alert re-sent in the wire format with the schema's id (1100) and
    with a registry id (1) that only decoding with the shipped schemas
    resolves.
    """
    with open(RUBIN_SAMPLE, "rb") as stream:
        reader = fastavro.reader(stream)
        schema, alert = reader.writer_schema, next(iter(reader))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), alert)
    for schema_id in (1100, 1):
        (tmp_path / f"id{schema_id}.bin").write_bytes(struct.pack(">bI", 0, schema_id) + body.getvalue())
    inputs = [RUBIN_SAMPLE, tmp_path / "id1100.bin", tmp_path / "id1.bin"]
    # One run each: in one run the second and third copies of the id would fail as duplicate_id.
    failed = pd.concat(
        [
            make_alert_cutouts([path], tmp_path / f"out{k}", config=config(), instrument="LSSTCam").records
            for k, path in enumerate(inputs)
        ],
        ignore_index=True,
    )
    assert len(failed) == 3 and (failed["status"] == "failed").all()
    assert (failed["reason_code"] == "no_cutout").all()
    assert (failed["diaSourceId"] == alert["diaSource"]["diaSourceId"]).all()
    assert failed["reason"].tolist() == [
        f"{RUBIN_SAMPLE}#0: cutoutTemplate, cutoutScience, cutoutDifference are null",
        f"{tmp_path / 'id1100.bin'}: cutoutTemplate, cutoutScience, cutoutDifference are null",
        f"{tmp_path / 'id1.bin'}: cutoutTemplate, cutoutScience, cutoutDifference are null",
    ]
    assert (failed["visit"] == alert["diaSource"]["visit"]).all()


def test_read_packets_names_each_packet_of_a_container(rubin, tmp_path):
    path = tmp_path / "three.avro"
    path.write_bytes(container_bytes(rubin["alerts40"][:3], rubin["schema"]))
    names = [name for name, _ in read_packets(path)]
    assert names == [f"{path}#0", f"{path}#1", f"{path}#2"]


# Command line ----------------------------------------------------------------------


def test_command_reads_directories_and_globs_with_workers(rubin, tmp_path, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    shutil.copy(ZTF_PACKET, one / "ztf.avro")
    for index, alert in enumerate(rubin["drawable"][:4]):
        (two / f"{index}.bin").write_bytes(wire_message(alert, rubin["schema"], rubin["schema_id"]))
    (two / "bad.bin").write_bytes(b"\x01garbage")
    status = alerts_main(
        [str(one), str(two / "*.bin"), str(tmp_path / "out"), "-j", "2", "-c", "sizes=[31]",
         "--instrument", "DemoCam", "--url-root", "https://example.org/c"]
    )  # fmt: skip
    assert status == 1  # the damaged packet failed, the others were written
    printed = capsys.readouterr().out
    assert "6 packet(s)" in printed and "5 written" in printed and "1 failed" in printed
    assert (tmp_path / "out" / "index.html").exists() and "Vetting page:" in printed
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert len(manifest) == 5
    assert manifest["location:1"].str.startswith("https://example.org/c/images/").all()
    png = Image.open(
        tmp_path
        / "out"
        / manifest.loc[manifest["external_id"] == CANDID, "location:1"]
        .iloc[0]
        .removeprefix("https://example.org/c/")
    )
    assert png.size == TripletRenderer([31], True).canvas_size


def test_a_packet_file_given_by_two_spellings_is_read_once(tmp_path, monkeypatch, capsys):
    """A directory and, again, its file by an absolute path: one packet,
    written, not a second copy of its id failing."""
    (tmp_path / "in").mkdir()
    shutil.copy(ZTF_PACKET, tmp_path / "in" / "ztf.avro")
    monkeypatch.chdir(tmp_path)
    assert alerts_main(["in", str(tmp_path / "in" / "ztf.avro"), "out", "-c", "sizes=[21]"]) == 0
    printed = capsys.readouterr().out
    assert "1 packet(s)" in printed and "1 written" in printed, printed
    assert pd.read_csv(tmp_path / "out" / "records.csv")["status"].tolist() == ["written"]


def test_workers_beyond_the_cores_are_capped_with_one_warning(tmp_path, monkeypatch, caplog):
    from lsst.analysis.ap import parallel

    monkeypatch.setattr(parallel, "available_cores", lambda: 1)
    negative_ztf_packet(tmp_path / "negative.avro")
    with caplog.at_level(logging.WARNING):
        result = make_alert_cutouts([ZTF_PACKET, tmp_path / "negative.avro"], tmp_path / "out", njobs=3)
    assert result.summary["written"] == 2
    warned = [r.getMessage() for r in caplog.records if "njobs" in r.getMessage()]
    assert warned == ["njobs=3 is more than the 1 core(s) this process may run on; using njobs=1."]


def test_command_refuses_missing_inputs(tmp_path, capsys):
    assert alerts_main([str(tmp_path / "nothing*.avro"), str(tmp_path / "out")]) == 2
    assert "no alert packet file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option",
    [
        {"display.marker": "reticle", "display.compass": True},
        {"display.orientation": "north_up"},
        {"display.orientation": "cardinal"},
        {"display.mask_overlay": True},
        {"save_fits_stamps": True},
    ],
)
def test_ztf_stamps_without_wcs_take_every_display_option(tmp_path, option, caplog):
    """A ZTF packet has no WCS and no mask: such options fall back (detector
    orientation, no compass, no overlay, FITS stamps without a WCS) rather
    than failing the source; one warning says when options that rely on the
    WCS are not applied."""
    cfg = config(sizes=[21])
    for name, value in option.items():
        target = cfg
        *parents, leaf = name.split(".")
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, leaf, value)
    cfg.validate()
    caplog.set_level("WARNING")
    result = make_alert_cutouts([ZTF_PACKET], tmp_path, config=cfg)
    assert result.summary["written"] == 1, result.records[["status", "reason"]].to_dict("records")
    warnings_of_wcs = [r.getMessage() for r in caplog.records if "carry no WCS" in r.getMessage()]
    relies_on_wcs = (
        option.get("display.orientation") or option.get("display.compass") or "save_fits_stamps" in option
    )
    if relies_on_wcs:
        (message,) = warnings_of_wcs
        assert message.startswith("1 ZTF packet(s): their stamps carry no WCS, so ")
        assert "are not applied to them" in message
    else:
        assert warnings_of_wcs == []
    if option.get("save_fits_stamps"):
        (path,) = tmp_path.glob("fits/*/*_diff_21.fits")
        with fits.open(path) as hdus:
            np.testing.assert_array_equal(hdus[0].data, ztf_stamp("Difference")[21:42, 21:42])
            assert "CTYPE1" not in hdus[0].header


# Repeated, oversized and missing packets ---------------------------------------------


@pytest.mark.parametrize("njobs", [0, 2])
def test_a_repeated_source_id_is_drawn_once_and_later_copies_fail(tmp_path, njobs):
    packets = tmp_path / "packets"
    packets.mkdir()
    for name in ("a.avro", "b.avro", "c.avro"):
        shutil.copy(ZTF_PACKET, packets / name)
    negative_ztf_packet(packets / "d.avro")  # another candid
    result = make_alert_cutouts([packets], tmp_path / "out", config=config(sizes=[21]), njobs=njobs)
    records = result.records
    written = records[records["status"] == "written"]
    assert sorted(written["diaSourceId"]) == [CANDID, CANDID + 1]
    failed = records[records["status"] == "failed"]
    assert failed["reason_code"].tolist() == ["duplicate_id", "duplicate_id"]
    assert sorted(failed["reason"]) == [
        f"{packets / name}#0: source id {CANDID} was already read from {packets / 'a.avro'}#0; "
        "this copy is not drawn"
        for name in ("b.avro", "c.avro")
    ]
    assert (failed["diaSourceId"] < 0).all() and failed["diaSourceId"].nunique() == 2
    failures = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert sorted(failures["reason_code"]) == ["duplicate_id", "duplicate_id"]
    assert result.summary["written"] == 2 and result.summary["failed"] == 2


def test_a_packet_file_reached_twice_is_read_once(tmp_path):
    """The same file given by name, by another spelling, through its
    directory and through a link: one packet, drawn, and no duplicate."""
    packets = tmp_path / "packets"
    packets.mkdir()
    shutil.copy(ZTF_PACKET, packets / "a.avro")
    (tmp_path / "link.avro").symlink_to(packets / "a.avro")
    inputs = [packets / "a.avro", f"{tmp_path}/./packets/a.avro", packets, tmp_path / "link.avro"]
    result = make_alert_cutouts(inputs, tmp_path / "out", config=config(sizes=[21]))
    assert result.records[["diaSourceId", "status"]].values.tolist() == [[CANDID, "written"]]
    assert pd.read_csv(tmp_path / "out" / "failures.csv").empty


def test_a_gzip_bomb_stamp_is_refused_without_inflating_it(tmp_path):
    import gzip
    import tracemalloc

    schema, record = ztf_record()
    record["candid"] = record["candidate"]["candid"] = CANDID + 2
    record["cutoutScience"]["stampData"] = gzip.compress(bytes(65 * 2**20), compresslevel=1)
    path = tmp_path / "bomb.avro"
    with open(path, "wb") as out:
        fastavro.writer(out, schema, [record])
    ((packet, decoded),) = list(read_packets(path))
    tracemalloc.start()
    try:
        failure = alert_source(decoded, packet, instrument="ZTF")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20
    assert failure.code == "bad_cutout"
    assert failure.reason.startswith(f"{path}#0 (cutoutScience): the gzip-compressed stamp")
    assert "inflates to more than 64 MiB" in failure.reason
    result = make_alert_cutouts([path, ZTF_PACKET], tmp_path / "out", config=config(sizes=[21]))
    records = result.records.set_index("diaSourceId")
    assert records.loc[CANDID + 2, "status"] == "failed" and records.loc[CANDID, "status"] == "written"
    assert records.loc[CANDID + 2, "reason"] == failure.reason


def test_a_broken_symlink_among_the_packets_is_a_failed_packet(tmp_path):
    packets = tmp_path / "packets"
    packets.mkdir()
    shutil.copy(ZTF_PACKET, packets / "good.avro")
    (packets / "gone.avro").symlink_to(tmp_path / "deleted.avro")
    for inputs in ([packets], [packets / "good.avro", packets / "gone.avro"], [str(packets / "*.avro")]):
        out = tmp_path / f"out{len(str(inputs))}"
        result = make_alert_cutouts(inputs, out, config=config(sizes=[21]))
        records = result.records
        assert sorted(records["status"]) == ["failed", "written"]
        (reason,) = records.loc[records["status"] == "failed", "reason"]
        assert reason == (
            f"{packets / 'gone.avro'}: broken symbolic link (to {tmp_path / 'deleted.avro'}, "
            "which does not exist)"
        )
        assert pd.read_csv(out / "failures.csv")["reason_code"].tolist() == ["bad_packet"]


def test_command_help_says_what_inputs_it_takes(capsys):
    from lsst.analysis.ap.standalone import PACKET_SUFFIXES

    with pytest.raises(SystemExit):
        alerts_main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("Avro container", "Parquet", "Confluent wire format", "directories", "glob patterns"):
        assert words in text, words
    for suffix in PACKET_SUFFIXES:
        assert f"*{suffix}" in text, suffix


def test_readme_alerts_example_runs_as_written(tmp_path, monkeypatch, capsys):
    import shlex

    root = Path(__file__).parent.parent
    (line,) = [
        line for line in (root / "README.md").read_text().splitlines() if line.startswith("plotAlertCutouts ")
    ]
    argv = shlex.split(line)[1:]
    assert argv[-5] == "out"  # ... out -c 'sizes=[63]' -j 2
    argv[-5] = str(tmp_path / "out")
    monkeypatch.chdir(root)
    assert alerts_main(argv) == 0
    printed = capsys.readouterr().out
    assert " 0 failed" in printed
    assert len(pd.read_csv(tmp_path / "out" / "records.csv")) > 1


@pytest.mark.parametrize(
    ("schema", "values", "kind"), [("long", [1, 2], "int"), ("string", ["diaSource"], "str")]
)
def test_a_container_of_records_that_are_not_objects_fails_them_and_draws_the_rest(
    tmp_path, capsys, schema, values, kind
):
    odd = tmp_path / "odd.avro"
    with open(odd, "wb") as stream:
        fastavro.writer(stream, schema, values)
    out = tmp_path / "out"
    assert alerts_main([str(odd), str(ZTF_PACKET), str(out)]) == 1
    records = pd.read_csv(out / "records.csv")
    assert len(records) == len(values) + 1
    assert (records.loc[records["diaSourceId"] == CANDID, "status"] == "written").all()
    failures = pd.read_csv(out / "failures.csv")
    assert len(failures) == len(values)
    assert (failures["reason_code"] == "bad_packet").all()
    assert failures["reason"].str.contains(f"a record of type {kind}, not an object with fields").all()


def test_an_output_path_that_is_a_file_exits_4_with_one_line(tmp_path, capsys):
    taken = tmp_path / "afile"
    taken.write_text("x")
    assert alerts_main([str(ZTF_PACKET), str(taken)]) == 4
    err = capsys.readouterr().err.strip()
    assert err.startswith("plotAlertCutouts: ") and "Traceback" not in err and len(err.splitlines()) == 1
    assert str(taken) in err
    assert taken.read_text() == "x"


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("candidate_null", "cannot read the alert: TypeError"),
        ("magpsf_overflow", "cannot read the alert: OverflowError"),
        ("pid_text", "column 'visit' must hold integers"),
        ("isdiffpos_unknown", "isdiffpos 'x' is neither 't' nor 'f'"),
    ],
)
def test_a_packet_with_a_bad_value_fails_alone(tmp_path, damage, words):
    """A container of three copies of the real packet (new ids) whose middle
    one has a value no alert should have: that packet fails, naming itself,
    and the run goes on (exit 1, the others written)."""
    schema, records = ztf_copies(3)
    if damage == "candidate_null":
        records[1]["candidate"] = None
        schema = copy_module.deepcopy(schema)
        field = next(f for f in schema["fields"] if f["name"] == "candidate")
        field["type"] = ["null", field["type"]]
    elif damage == "magpsf_overflow":
        records[1]["candidate"]["magpsf"] = -999.0
    elif damage == "isdiffpos_unknown":
        records[1]["candidate"]["isdiffpos"] = "x"
    else:
        schema = copy_module.deepcopy(schema)
        candidate = next(f for f in schema["fields"] if f["name"] == "candidate")["type"]
        next(f for f in candidate["fields"] if f["name"] == "pid")["type"] = ["long", "string"]
        records[1]["candidate"]["pid"] = "n/a"
    path = tmp_path / "night.avro"
    with open(path, "wb") as out:
        fastavro.writer(out, schema, records)
    status = alerts_main([str(path), str(tmp_path / "out"), "-c", "sizes=[21]"])
    assert status == 1
    failures = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert failures["reason_code"].tolist() == ["bad_packet"]
    (reason,) = failures["reason"]
    assert reason.startswith(f"{path}#1: ") and words in reason, reason
    if damage == "isdiffpos_unknown":  # the packet was read: recorded under its own candidate
        assert failures[["diaSourceId", "instrument"]].values.tolist() == [[CANDID + 1, "ZTF"]]
    assert (pd.read_csv(tmp_path / "out" / "records.csv")["status"] == "written").sum() == 2


def test_packets_of_one_visit_detector_read_each_record_file_once(tmp_path, monkeypatch):
    """Thirty packets of one visit × detector, each drawn (and recorded)
    in turn: each record file written before a packet is read once in
    all, not once per later packet (which made a night's container take
    a time growing as the square of its packets)."""
    from lsst.analysis.ap.outputs.ledger import Ledger

    schema, records = ztf_copies(30)
    path = tmp_path / "night.avro"
    with open(path, "wb") as out:
        fastavro.writer(out, schema, records)
    reads: list[str] = []
    real_read = Ledger._read

    def counted(self, relpath):
        reads.append(relpath)
        return real_read(self, relpath)

    monkeypatch.setattr(Ledger, "_read", counted)
    result = make_alert_cutouts([path], tmp_path / "out", config=config(sizes=[21]))
    assert result.summary["written"] == 30
    parts = sorted((tmp_path / "out" / "records").rglob("*.csv"))
    assert len(parts) == 30
    # Each read once before the next packets are drawn, and once for the
    # run's records.csv.
    assert collections.Counter(reads).most_common(1)[0][1] == 2 and len(reads) <= 2 * len(parts)
    # A second run over the same packets keeps every PNG (the records of
    # the first run are read, once each).
    reads.clear()
    again = make_alert_cutouts([path], tmp_path / "out", config=config(sizes=[21]))
    assert again.summary["skipped"] == 30
    assert collections.Counter(reads).most_common(1)[0][1] == 2 and len(reads) <= 4 * len(parts)
