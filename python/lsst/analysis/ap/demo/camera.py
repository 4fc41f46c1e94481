"""Camera geometry of the simulated demo camera (``DemoCam``).

The demo camera has square detectors of ``DemoSpec.image_size`` pixels of
10 µm laid out on the grid that `demo_scene.detector_offsets` defines (a
40-pixel gap between detectors, no rotation), a plate scale that gives the
0.2"/pixel of the demo WCSs, and 2 × 4 amplifiers per detector.  This
module turns that description into `lsst.images.cameras` objects: one
`~lsst.images.cameras.CameraFrameSet` (the camera's AST FrameSet, with
``FOCAL_PLANE`` in mm, ``FIELD_ANGLE`` in radians and one ``DETECTOR_<id>``
pixel frame per detector) shared by the `~lsst.images.cameras.Detector` of
every detector.

Everything here is pure: a `DemoSpec` in, camera objects out.
"""

from __future__ import annotations

__all__ = (
    "AMPLIFIER_GRID",
    "PIXEL_SIZE_MM",
    "RAFT",
    "camera_ast",
    "detector_name",
    "detector_orientation",
    "detector_serial",
    "make_amplifiers",
    "make_camera_frame_set",
    "make_detector",
    "plate_scale_rad_per_mm",
)

import math

import astropy.units as u
import numpy as np
import starlink.Ast as Ast
from lsst.images import Box
from lsst.images.cameras import (
    Amplifier,
    AmplifierCalibrations,
    AmplifierRawGeometry,
    CameraFrameSet,
    CameraFrameSetSerializationModel,
    Detector,
    DetectorAttributes,
    DetectorType,
    Orientation,
    ReadoutCorner,
)
from lsst.images.serialization import DetachedArchive

from .scene import PIXEL_SCALE_ARCSEC, DemoSpec, detector_offsets

PIXEL_SIZE_MM = 0.01
"""Side of a (square) demo pixel in mm: 10 µm, as on the LSSTCam sensors."""

AMPLIFIER_GRID = (2, 4)
"""Rows and columns of amplifiers on a detector."""

RAFT = "R00"
"""The only raft of the demo camera."""

_GAIN = 1.5  # e-/ADU
_READ_NOISE = 6.0  # e-
_SATURATION = 100_000.0  # ADU
_PRESCAN = 3  # raw columns before the data of an amplifier
_SERIAL_OVERSCAN = 16  # raw columns after the data
_PARALLEL_OVERSCAN = 8  # raw rows beyond the data


def detector_name(detector: int) -> str:
    """Name of a detector in its raft.

    Parameters
    ----------
    detector : `int`
        Detector id.

    Returns
    -------
    name : `str`
        ``S00``, ``S01``, ...; also its full name in the Butler registry.

    """
    return f"S{detector:02d}"


def detector_serial(detector: int) -> str:
    """Serial number of a demo detector.

    Parameters
    ----------
    detector : `int`
        Detector id.

    Returns
    -------
    serial : `str`
        The serial number.

    """
    return f"DEMO-CCD-{detector:03d}"


def plate_scale_rad_per_mm(
    pixel_scale_arcsec: float = PIXEL_SCALE_ARCSEC, pixel_size_mm: float = PIXEL_SIZE_MM
) -> float:
    """Plate scale (field angle per focal-plane length) in rad/mm.

    Parameters
    ----------
    pixel_scale_arcsec : `float`, optional
        Angle on the sky of one pixel, in arcseconds.
    pixel_size_mm : `float`, optional
        Size of one pixel in the focal plane, in mm.

    Returns
    -------
    `float`
        Radians of field angle per mm of focal plane.

    """
    return (pixel_scale_arcsec * u.arcsec).to_value(u.rad) / pixel_size_mm


def detector_orientation(spec: DemoSpec, detector: int) -> Orientation:
    """Position of a detector in the focal plane.

    The reference pixel is the detector centre, ``(size - 1) / 2`` in both
    axes (pixel centres at integers), which `demo_scene.detector_offsets`
    places at its offset from the boresight; detectors are not rotated.

    Parameters
    ----------
    spec : `DemoSpec`
        What is simulated (detector count and size).
    detector : `int`
        Detector identifier.

    Returns
    -------
    `lsst.images.cameras.Orientation`
        Focal-plane position (mm) of the reference pixel, and zero yaw,
        pitch and roll.

    """
    dx, dy = detector_offsets(spec)[detector]
    centre = (spec.image_size - 1) / 2
    return Orientation(
        focal_plane_x=dx * PIXEL_SIZE_MM,
        focal_plane_y=dy * PIXEL_SIZE_MM,
        focal_plane_z=0.0,
        pixel_reference_x=centre,
        pixel_reference_y=centre,
    )


def _pixels_to_focal_plane(orientation: Orientation, pixel_size_mm: float) -> Ast.Mapping:
    """AST mapping from detector pixels to focal-plane mm: shift the
    reference pixel to the origin, scale to mm, rotate by the yaw, shift to
    the detector's focal-plane position.
    """
    yaw = orientation.yaw.to_value(u.rad)
    rotation = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
    mapping = Ast.CmpMap(
        Ast.ShiftMap([-orientation.pixel_reference_x, -orientation.pixel_reference_y]),
        Ast.ZoomMap(2, pixel_size_mm),
    )
    mapping = Ast.CmpMap(mapping, Ast.MatrixMap(rotation))
    mapping = Ast.CmpMap(mapping, Ast.ShiftMap([orientation.focal_plane_x, orientation.focal_plane_y]))
    return mapping.simplify()


class _Sink:
    """Line sink for `starlink.Ast.Channel`."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def astsink(self, line: str) -> None:
        self.lines.append(line)


def camera_ast(spec: DemoSpec) -> str:
    """The camera's AST FrameSet, in the AST native encoding.

    Frame 1 (the base frame) is ``FOCAL_PLANE`` (mm); ``FIELD_ANGLE``
    (rad) follows it through a zoom by the plate scale (a pure TAN sky
    projection has no distortion to model at this field size), then one
    ``DETECTOR_<id>`` frame per detector, whose ``Bottom``/``Top``
    attributes hold the detector bounding box, mapped from the focal plane
    by the inverse of its pixels → focal plane mapping.

    Parameters
    ----------
    spec : `DemoSpec`
        What is simulated (detector count and size).

    Returns
    -------
    `str`
        What `starlink.Ast.Channel` writes for the FrameSet; this is the
        ``ast`` field of `lsst.images.cameras.CameraFrameSetSerializationModel`.

    """
    frame_set = Ast.FrameSet(Ast.Frame(2, "Ident=FOCAL_PLANE,Unit(1)=mm,Unit(2)=mm"))
    frame_set.addframe(
        1,
        Ast.ZoomMap(2, plate_scale_rad_per_mm()),
        Ast.Frame(2, "Ident=FIELD_ANGLE,Unit(1)=rad,Unit(2)=rad"),
    )
    for detector in spec.detectors:
        to_focal_plane = _pixels_to_focal_plane(detector_orientation(spec, detector), PIXEL_SIZE_MM)
        to_focal_plane.invert()
        frame_set.addframe(
            1,
            to_focal_plane,
            Ast.Frame(
                2,
                f"Ident=DETECTOR_{detector:03d},Unit(1)=pixel,Unit(2)=pixel,"
                f"Bottom(1)=0,Top(1)={spec.image_size},Bottom(2)=0,Top(2)={spec.image_size}",
            ),
        )
    frame_set.Base = 1
    frame_set.Current = 1
    sink = _Sink()
    Ast.Channel(None, sink).write(frame_set)
    return "\n".join(sink.lines) + "\n"


def make_camera_frame_set(spec: DemoSpec) -> CameraFrameSet:
    """The coordinate systems of the demo camera.

    Parameters
    ----------
    spec : `DemoSpec`
        What is simulated (instrument, detector count and size).

    Returns
    -------
    `lsst.images.cameras.CameraFrameSet`
        Focal plane, field angle and detector frames of every detector.

    """
    # CameraFrameSet's constructor is private (it takes lsst.images' own AST
    # wrapper object); its documented public path is deserialization, which
    # needs no file access for a frame set, hence the DetachedArchive.
    model = CameraFrameSetSerializationModel(instrument=spec.instrument, ast=camera_ast(spec))
    return model.deserialize(DetachedArchive())


def _split(length: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous integer ranges ``[start, stop)`` covering
    ``[0, length)``.
    """
    edges = [round(k * length / parts) for k in range(parts + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def make_amplifiers(bbox: Box, grid: tuple[int, int] = AMPLIFIER_GRID) -> list[Amplifier]:
    """Amplifiers of a detector, with their assembled raw geometry.

    Amplifiers ``C0<col>`` form the bottom row and ``C1<col>`` the top row
    (LSSTCam names), each reading out from its corner on the detector's
    left edge of its row (bottom row ``LL``, top row ``UL``).  In the
    assembled raw image every amplifier has a prescan to the left of its
    data, a serial overscan to its right and a parallel overscan towards the
    middle of the detector.

    Parameters
    ----------
    bbox : `Box`
        Bounding box of the detector (trimmed, assembled pixels); it must
        start at 0.
    grid : `tuple` [`int`, `int`], optional
        Rows and columns of amplifiers.

    Returns
    -------
    `list` [`lsst.images.cameras.Amplifier`]
        The amplifiers, row by row from the bottom, tiling ``bbox``.

    """
    n_rows, n_cols = grid
    rows = _split(bbox.y.size, n_rows)
    cols = _split(bbox.x.size, n_cols)
    raw_width = max(stop - start for start, stop in cols) + _PRESCAN + _SERIAL_OVERSCAN
    raw_height = max(stop - start for start, stop in rows) + _PARALLEL_OVERSCAN
    calibrations = AmplifierCalibrations(
        gain=_GAIN,
        read_noise=_READ_NOISE,
        saturation=_SATURATION,
        suspect_level=math.nan,
        linearity_coefficients=np.zeros(4),
        linearity_type="None",
    )
    amplifiers = []
    for row, (y0, y1) in enumerate(rows):
        top = row >= n_rows / 2
        for col, (x0, x1) in enumerate(cols):
            width, height = x1 - x0, y1 - y0
            rx, ry = col * raw_width, row * raw_height
            # Top-row data sit at the top of their raw block, with the
            # parallel overscan below (towards the detector middle).
            data_y = ry + raw_height - height if top else ry
            overscan_y = ry if top else ry + height
            corner = ReadoutCorner.UL if top else ReadoutCorner.LL
            raw = AmplifierRawGeometry(
                bbox=Box.factory[ry : ry + raw_height, rx : rx + raw_width],
                data_bbox=Box.factory[data_y : data_y + height, rx + _PRESCAN : rx + _PRESCAN + width],
                serial_overscan_bbox=Box.factory[
                    data_y : data_y + height,
                    rx + _PRESCAN + width : rx + _PRESCAN + width + _SERIAL_OVERSCAN,
                ],
                parallel_overscan_bbox=Box.factory[
                    overscan_y : overscan_y + _PARALLEL_OVERSCAN, rx + _PRESCAN : rx + _PRESCAN + width
                ],
                prescan_bbox=Box.factory[data_y : data_y + height, rx : rx + _PRESCAN],
                readout_corner=corner,
            )
            amplifiers.append(
                Amplifier(
                    name=f"C{int(top)}{col}",
                    bbox=Box.factory[y0:y1, x0:x1],
                    readout_corner=corner,
                    assembled_raw_geometry=raw,
                    nominal_calibrations=calibrations,
                )
            )
    return amplifiers


def make_detector(
    spec: DemoSpec, detector: int, frames: CameraFrameSet, *, visit: int | None = None
) -> Detector:
    """One detector of the demo camera.

    Parameters
    ----------
    spec : `DemoSpec`
        What is simulated (detector size).
    detector : `int`
        Detector identifier.
    frames : `CameraFrameSet`
        The camera's coordinate systems (`make_camera_frame_set`).
    visit : `int`, optional
        Visit whose image the detector is attached to, if any.

    Returns
    -------
    `lsst.images.cameras.Detector`
        Attributes, amplifiers and coordinate systems of the detector.

    """
    bbox = Box.from_shape((spec.image_size, spec.image_size))
    attributes = DetectorAttributes(
        name=detector_name(detector),
        id=detector,
        type=DetectorType.SCIENCE,
        serial=detector_serial(detector),
        bbox=bbox,
        orientation=detector_orientation(spec, detector),
        pixel_size=PIXEL_SIZE_MM,
        physical_type="DEMO",
    )
    return Detector(attributes, make_amplifiers(bbox), frames, visit=visit)
