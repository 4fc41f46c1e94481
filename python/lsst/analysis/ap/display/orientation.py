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
    "cardinal_transform",
)

import dataclasses
import itertools

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
