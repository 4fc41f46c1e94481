"""Rubin alert packets built from the demo repository, the way Rubin's alert
production (ap_association's PackageAlertsTask) writes them:

* cutout box: ``Box2I.makeCenteredBox`` around the source's pixel position,
  ``max(bboxSize, minCutoutSize)`` pixels wide;
* each cutout an astropy ``CCDData`` (image in nJy, ``VarianceUncertainty``,
  the mask as ``flags``, a local TAN WCS linearised at the source
  (`lsst.analysis.ap.stamp_wcs.local_tan_wcs`), meta
  ``cutMinX``/``cutMinY`` = first pixel - 1) written to FITS bytes with
  ``CCDData.write(..., format="fits")``;
* the alert dict serialised with the schema from lsst-alert-packet, either
  schemaless behind a Confluent wire header (magic byte 0, 4-byte id) or in
  an Avro container file.
"""

from __future__ import annotations

import io
import math
import struct

import astropy.units as u
import fastavro
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.nddata import CCDData, VarianceUncertainty
from lsst.images import XY, Box

from lsst.analysis.ap.datasets import image_dataset_types
from lsst.analysis.ap.stamp_wcs import local_tan_wcs

ROLE_FIELDS = {"template": "cutoutTemplate", "science": "cutoutScience", "difference": "cutoutDifference"}


def latest_schema():
    """(schema id, schema) of the newest schema lsst-alert-packet ships."""
    from lsst.alert.packet import Schema

    schema = Schema.from_file()
    return schema.get_schema_id(), schema


def _default(avro_type):
    """A value of ``avro_type`` (null when nullable)."""
    if isinstance(avro_type, list):
        return None if "null" in avro_type else _default(avro_type[0])
    if isinstance(avro_type, dict):
        kind = avro_type["type"]
        if kind == "record":
            return {f["name"]: _default(f["type"]) for f in avro_type["fields"]}
        if kind == "array":
            return []
        return _default(kind)
    return {
        "long": 0,
        "int": 0,
        "float": 0.0,
        "double": 0.0,
        "string": "",
        "boolean": False,
        "bytes": b"",
    }[avro_type]


def _field_type(schema, name):
    return next(f["type"] for f in schema.definition["fields"] if f["name"] == name)


def make_centered_box(x: float, y: float, size: int) -> Box:
    """afw's ``Box2I.makeCenteredBox(Point2D(x, y), Extent2I(size, size))``."""
    x0 = math.floor(x - 0.5 * size + 0.5 + 0.5)
    y0 = math.floor(y - 0.5 * size + 0.5 + 0.5)
    return Box.from_shape((size, size), start=(y0, x0))


def _pixel_to_sky(projection):
    def pixel_to_sky(x, y):
        sky = projection.pixel_to_sky(XY(np.asarray(x, dtype=float), np.asarray(y, dtype=float)))
        return sky.ra.deg, sky.dec.deg

    return pixel_to_sky


def _padded_planes(masked_image, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image, variance and mask of ``box``; what lies off the image is NaN
    (mask 0), as afw's ``getCutout`` pads a cutout that reaches past the
    image edge.
    """
    image = np.full(box.shape, np.nan, dtype=np.float32)
    variance = np.full(box.shape, np.nan, dtype=np.float32)
    mask = np.zeros(box.shape, dtype=np.int32)
    overlap = box.intersection(masked_image.bbox)
    if overlap is not None:
        cut = masked_image[overlap]
        inner = (
            slice(overlap.y.start - box.y.start, overlap.y.stop - box.y.start),
            slice(overlap.x.start - box.x.start, overlap.x.stop - box.x.start),
        )
        image[inner] = cut.image.array
        variance[inner] = cut.variance.array
        mask[inner] = cut.mask.array[..., 0]
    return image, variance, mask


def ccd_data_bytes(masked_image, box: Box, x: float, y: float, *, ctype: bool = True) -> bytes:
    """The cutout ``box`` of ``masked_image`` as alert production writes it."""
    image, variance, mask = _padded_planes(masked_image, box)
    cut_min_x, cut_min_y = box.x.start - 1, box.y.start - 1
    pixel_to_sky = _pixel_to_sky(masked_image.sky_projection)
    wcs = local_tan_wcs(pixel_to_sky, x, y, box.x.start, box.y.start, box.x.size)
    if not ctype:  # as some alert production versions write it
        wcs.wcs.ctype = ["", ""]
    ccd = CCDData(
        data=image,
        uncertainty=VarianceUncertainty(variance),
        flags=mask,
        wcs=wcs,
        meta={"cutMinX": cut_min_x, "cutMinY": cut_min_y},
        unit=u.nJy,
    )
    with io.BytesIO() as stream:
        ccd.write(stream, format="fits")
        return stream.getvalue()


def rubin_alert(
    butler, row, schema, *, min_cutout_size: int = 30, ctype: bool = True, cache: dict | None = None
) -> dict:
    """The alert dict of one DiaSource of the demo repository (``cache``
    keeps the images read, between calls).
    """
    cache = {} if cache is None else cache
    alert = _default({"type": "record", "fields": schema.definition["fields"]})
    source = _default(_field_type(schema, "diaSource"))
    for name in source:
        value = row.get(name)
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            source[name] = value.item() if hasattr(value, "item") else value
    alert["diaSourceId"] = int(row["diaSourceId"])
    alert["diaSource"] = source
    data_id = {"instrument": row["instrument"], "visit": int(row["visit"]), "detector": int(row["detector"])}
    sky = SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg)
    size = max(int(row["bboxSize"]), min_cutout_size)
    for role, dataset_type in image_dataset_types("preliminary_visit_image", None).items():
        key = (dataset_type, data_id["visit"], data_id["detector"])
        if key not in cache:
            cache[key] = butler.get(dataset_type, data_id)
        image = cache[key]
        xy = image.sky_projection.sky_to_pixel(sky)
        x, y = float(xy.x), float(xy.y)
        box = make_centered_box(x, y, size)
        if not image.bbox.contains(Box.from_shape((1, 1), start=(math.floor(y + 0.5), math.floor(x + 0.5)))):
            alert[ROLE_FIELDS[role]] = None  # the source is off this image
            continue
        alert[ROLE_FIELDS[role]] = ccd_data_bytes(image, box, x, y, ctype=ctype)
    return alert


def wire_message(alert: dict, schema, schema_id: int) -> bytes:
    """Confluent wire format: magic byte 0, big-endian schema id, body."""
    stream = io.BytesIO()
    stream.write(struct.pack(">bI", 0, schema_id))
    fastavro.schemaless_writer(stream, schema.definition, alert)
    return stream.getvalue()


def container_bytes(alerts: list[dict], schema) -> bytes:
    """An Avro container file holding ``alerts``."""
    stream = io.BytesIO()
    schema.store_alerts(stream, alerts)
    return stream.getvalue()
