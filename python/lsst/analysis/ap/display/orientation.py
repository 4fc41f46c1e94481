"""Orientation of the drawn stamps.

``detector`` (the default)
    Stamps are drawn as the detector reads them out (row 0 at the bottom);
    nothing is resampled.  The compass shows where North and East are.
``cardinal``
    Each stamp is flipped and/or turned by a multiple of 90° (one of the 8
    lossless symmetries of a square, `DihedralTransform`) so that North is
    nearest to up and East nearest to left.  No pixel is resampled.
``north_up``
    Each stamp is resampled onto a north-up, east-left TAN grid with
    `lsst.analysis.ap.stamp_wcs.resample_north_up` (reproject); the record
    of the source says so.

Vectors and positions are in stamp pixel coordinates: ``x`` right, ``y`` up
as drawn (row 0 at the bottom), pixel centres at integers.
"""

from __future__ import annotations

__all__ = (
    "ORIENTATIONS",
    "DihedralTransform",
    "OrientedStamp",
    "cardinal_transform",
    "orient_stamp",
)

import dataclasses
import itertools
from collections.abc import Callable

import numpy as np

ORIENTATIONS: tuple[str, ...] = ("detector", "cardinal", "north_up")
"""Accepted orientation modes."""

Vector = tuple[float, float]


@dataclasses.dataclass(frozen=True)
class DihedralTransform:
    """A flip and/or turn by a multiple of 90° of a square stamp.

    The transform maps stamp offsets from the stamp's geometric centre
    ``c = (size - 1) / 2`` by the signed permutation matrix
    ``((xx, xy), (yx, yy))``: ``x' - c = xx (x - c) + xy (y - c)`` and
    ``y' - c = yx (x - c) + yy (y - c)``.

    Attributes
    ----------
    xx, xy, yx, yy : `int`
        Matrix entries, each -1, 0 or 1, with exactly one non-zero entry per
        row and column.

    """

    xx: int = 1
    xy: int = 0
    yx: int = 0
    yy: int = 1

    def __post_init__(self) -> None:
        m = np.array([[self.xx, self.xy], [self.yx, self.yy]])
        if not (np.all(np.isin(m, (-1, 0, 1))) and np.all(np.abs(m).sum(axis=0) == 1)):
            raise ValueError(f"not a signed permutation matrix: {m.tolist()}.")
        if np.any(np.abs(m).sum(axis=1) != 1):
            raise ValueError(f"not a signed permutation matrix: {m.tolist()}.")

    @property
    def is_identity(self) -> bool:
        """Whether the transform leaves stamps unchanged."""
        return (self.xx, self.xy, self.yx, self.yy) == (1, 0, 0, 1)

    @property
    def swaps_axes(self) -> bool:
        """Whether stamp rows become columns (a 90° or 270° turn)."""
        return self.xx == 0

    def apply_vector(self, v: Vector) -> Vector:
        """Transform a direction ``(dx, dy)``."""
        dx, dy = v
        return (self.xx * dx + self.xy * dy, self.yx * dx + self.yy * dy)

    def apply_point(self, x: float, y: float, size: int) -> Vector:
        """Transform a stamp position of a ``size``-wide stamp."""
        c = (size - 1) / 2.0
        dx, dy = self.apply_vector((x - c, y - c))
        return (dx + c, dy + c)

    def apply_array(self, array: np.ndarray) -> np.ndarray:
        """Transform a stamp array (``[y, x]``, row 0 at the bottom).

        Parameters
        ----------
        array : `numpy.ndarray`
            Square 2-D (or ``(n, n, ...)``) array.

        Returns
        -------
        transformed : `numpy.ndarray`
            A view or copy: pixel ``(x, y)`` of ``array`` is at
            `apply_point` ``(x, y)`` of the result.

        """
        if self.is_identity:
            return array
        if self.swaps_axes:
            out = np.swapaxes(array, 0, 1)
            flip_x, flip_y = self.xy < 0, self.yx < 0
        else:
            out = array
            flip_x, flip_y = self.xx < 0, self.yy < 0
        if flip_x:
            out = out[:, ::-1]
        if flip_y:
            out = out[::-1, :]
        return out

    def __str__(self) -> str:
        return f"[[{self.xx}, {self.xy}], [{self.yx}, {self.yy}]]"


def _all_transforms() -> tuple[DihedralTransform, ...]:
    transforms = []
    for swap, sx, sy in itertools.product((False, True), (1, -1), (1, -1)):
        if swap:
            transforms.append(DihedralTransform(0, sx, sy, 0))
        else:
            transforms.append(DihedralTransform(sx, 0, 0, sy))
    return tuple(transforms)


_TRANSFORMS = _all_transforms()


def cardinal_transform(north: Vector, east: Vector) -> DihedralTransform:
    """The lossless transform that brings North nearest to up and East
    nearest to left.

    Parameters
    ----------
    north, east : `tuple` [`float`, `float`]
        Unit vectors toward North and East in stamp pixel coordinates (see
        `lsst.analysis.ap.stamp_wcs.sky_directions`).

    Returns
    -------
    transform : `DihedralTransform`
        The one of the 8 maximizing ``N'·up + E'·left``; the identity wins
        ties.

    """
    best, best_score = _TRANSFORMS[0], -np.inf
    for transform in _TRANSFORMS:
        n = transform.apply_vector(north)
        e = transform.apply_vector(east)
        score = n[1] - e[0]
        if score > best_score + 1e-9:
            best, best_score = transform, score
    return best


@dataclasses.dataclass(frozen=True)
class OrientedStamp:
    """A stamp as it is drawn, with the source and compass geometry.

    Attributes
    ----------
    image : `numpy.ndarray`
        Pixels as drawn (row 0 at the bottom).
    extra : `tuple` [`numpy.ndarray`, ...]
        Other stamp-shaped arrays (mask planes, variance) transformed the
        same way (nearest-neighbour for resampled boolean planes).
    position : `tuple` [`float`, `float`]
        Source position in drawn-stamp pixel coordinates.
    north, east : `tuple` [`float`, `float`]
        Directions as drawn (``y`` up).
    transform : `DihedralTransform`
        Lossless transform applied (identity for ``detector`` and
        ``north_up``).
    resampled : `bool`
        Whether the pixels were resampled (``north_up``).

    """

    image: np.ndarray
    extra: tuple[np.ndarray, ...]
    position: Vector
    north: Vector
    east: Vector
    transform: DihedralTransform
    resampled: bool


def orient_stamp(
    orientation: str,
    image: np.ndarray,
    position: Vector,
    north: Vector,
    east: Vector,
    *,
    extra: tuple[np.ndarray, ...] = (),
    resample: Callable[[np.ndarray, str], np.ndarray] | None = None,
) -> OrientedStamp:
    """Orient one stamp for display.

    Parameters
    ----------
    orientation : `str`
        One of `ORIENTATIONS`.
    image : `numpy.ndarray`
        Square stamp, row 0 at the bottom.
    position : `tuple` [`float`, `float`]
        Source position in stamp pixel coordinates.
    north, east : `tuple` [`float`, `float`]
        Directions in stamp pixel coordinates.
    extra : `tuple` [`numpy.ndarray`, ...], optional
        Arrays to transform like ``image`` (boolean arrays are resampled by
        nearest neighbour).
    resample : callable, optional
        ``(array, order) -> array`` onto the north-up grid (needed for
        ``north_up``; see `lsst.analysis.ap.stamp_wcs.resample_north_up`).
        The source keeps its stamp position on that grid.

    Returns
    -------
    oriented : `OrientedStamp`
        The stamp as drawn.

    Raises
    ------
    ValueError
        For an unknown orientation, or ``north_up`` without ``resample``.

    """
    if orientation not in ORIENTATIONS:
        choices = ", ".join(ORIENTATIONS)
        raise ValueError(f"Unknown orientation {orientation!r}; valid choices are: {choices}.")
    identity = DihedralTransform()
    if orientation == "detector":
        return OrientedStamp(image, tuple(extra), position, north, east, identity, False)
    if orientation == "cardinal":
        transform = cardinal_transform(north, east)
        size = image.shape[0]
        return OrientedStamp(
            transform.apply_array(image),
            tuple(transform.apply_array(a) for a in extra),
            transform.apply_point(position[0], position[1], size),
            transform.apply_vector(north),
            transform.apply_vector(east),
            transform,
            False,
        )
    if resample is None:
        raise ValueError("north_up orientation needs a resampling function.")
    resampled_extra = []
    for array in extra:
        if array.dtype == bool:
            out = resample(array.astype(float), "nearest-neighbor")
            resampled_extra.append(np.nan_to_num(out, nan=0.0) > 0.5)
        else:
            resampled_extra.append(resample(array, "bilinear"))
    return OrientedStamp(
        resample(image, "bilinear"), tuple(resampled_extra), position, (0.0, 1.0), (-1.0, 0.0), identity, True
    )
