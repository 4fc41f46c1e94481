"""The three images of a cutout and the default dataset type names.

Every module that needs the panel order (left to right: template, science,
difference), a panel's title, the short tag of its saved stamp array, or a
default Butler dataset type name imports it from here.
"""

from __future__ import annotations

__all__ = (
    "DEFAULT_DIA_SOURCE_TYPE",
    "DEFAULT_DIFFERENCE_TYPE",
    "DEFAULT_MANIFEST_TYPE",
    "DEFAULT_RECORDS_TYPE",
    "DEFAULT_SCIENCE_TYPE",
    "DEFAULT_TEMPLATE_TYPE",
    "IMAGE_ROLES",
    "PANEL_TITLES",
    "ROLES",
    "ImageRole",
    "image_dataset_types",
)

import dataclasses


@dataclasses.dataclass(frozen=True)
class ImageRole:
    """One of the three images of a cutout.

    Attributes
    ----------
    name : `str`
        Role name (``template``, ``science``, ``difference``); also the name
        of the task's input connection and the prefix of its scaling fields.
    title : `str`
        Panel title drawn above the column.
    tag : `str`
        Short tag in the file names of saved stamp arrays
        (``<id>_<tag>_<size>.npy``).

    """

    name: str
    title: str
    tag: str


ROLES: tuple[ImageRole, ImageRole, ImageRole] = (
    ImageRole("template", "Template", "temp"),
    ImageRole("science", "Science", "sci"),
    ImageRole("difference", "Difference", "diff"),
)
"""The three images in panel order, left to right."""

IMAGE_ROLES: tuple[str, str, str] = tuple(role.name for role in ROLES)  # type: ignore[assignment]
"""Role names in panel order, left to right."""

PANEL_TITLES: tuple[str, str, str] = tuple(role.title for role in ROLES)  # type: ignore[assignment]
"""Panel titles in panel order, left to right."""

DEFAULT_SCIENCE_TYPE = "preliminary_visit_image"
"""Default dataset type of the science image."""

DEFAULT_TEMPLATE_TYPE = "template_detector"
"""Default dataset type of the template warped to the science image."""

DEFAULT_DIFFERENCE_TYPE = "difference_image"
"""Default dataset type of the difference image."""

DEFAULT_DIA_SOURCE_TYPE = "dia_source_detector"
"""Default dataset type of the per visit × detector DiaSource tables."""

DEFAULT_RECORDS_TYPE = "cutout_records"
"""Dataset type of the per visit × detector record tables."""

DEFAULT_MANIFEST_TYPE = "cutout_manifest"
"""Dataset type of the gathered record table."""


def image_dataset_types(science_image_type: str, diff_image_type: str | None) -> dict[str, str]:
    """Dataset type names of the three images, keyed by role.

    Parameters
    ----------
    science_image_type : `str`
        Dataset type of the science image.
    diff_image_type : `str` or `None`
        `None` for the current names (`DEFAULT_TEMPLATE_TYPE` and
        `DEFAULT_DIFFERENCE_TYPE`), or a prefix ``P`` for ``P_templateExp``
        and ``P_differenceExp``.

    Returns
    -------
    types : `dict` [`str`, `str`]
        Dataset type name of each role.

    """
    if diff_image_type:
        template, difference = f"{diff_image_type}_templateExp", f"{diff_image_type}_differenceExp"
    else:
        template, difference = DEFAULT_TEMPLATE_TYPE, DEFAULT_DIFFERENCE_TYPE
    return {"template": template, "science": science_image_type, "difference": difference}
