"""Configuration of the optional display choices (the task's ``display``
sub-configuration).

Every field defaults to drawing exactly what the task drew before these
options existed.  From Python::

    config.display.marker = "reticle"
    config.display.difference_sign_aware = True

with the command ``plotImageSubtractionCutouts ... -c display.marker=reticle``, and under
``pipetask`` ``-c plotImageSubtractionCutouts:display.marker=reticle``.
"""

from __future__ import annotations

__all__ = ("DisplayConfig",)

from collections.abc import Mapping
from typing import Any

import lsst.pex.config as pexConfig
from astropy.convolution import Kernel2D

from .diverging import DIVERGING_COLORMAP, sign_aware
from .options import DisplayOptions
from .overlays import DEFAULT_OVERLAY_OPACITY, DEFAULT_OVERLAY_PLANES, overlay_planes
from .panels import DisplaySettings
from .scaling import DisplayScaling, make_interval, make_stretch
from .smoothing import make_kernel

_ROLES = ("template", "science", "difference")

_INTERVAL_PARAMS_DOC = (
    "Parameters of the {role} panel's interval, by name: percentile: pmin, pmax (default 0.5, 99.5); "
    "central_window: window (pixels, default 10; the whole stamp when smaller); symmetric: k (robust "
    "sigmas, default 5); zscale: contrast, krej, max_iterations, n_samples."
)
_STRETCH_PARAMS_DOC = (
    "Parameters of the {role} panel's stretch, by name: asinh: a (default 0.1); log: a (default 1000); "
    "power: a (default 2); sinh: a (default 1/3); sigmoid: cutoff (default 0.5), gain (default 10)."
)


def _panel_fields(role: str) -> tuple[pexConfig.DictField, pexConfig.DictField, pexConfig.Field, Any]:
    return (
        pexConfig.DictField(
            doc=_INTERVAL_PARAMS_DOC.format(role=role), keytype=str, itemtype=float, default={}
        ),
        pexConfig.DictField(
            doc=_STRETCH_PARAMS_DOC.format(role=role), keytype=str, itemtype=float, default={}
        ),
        pexConfig.Field[str](
            doc=f"matplotlib colormap of the {role} panel; None uses the task's colormap"
            + (" (or the diverging map when difference_sign_aware is set)." if role == "difference" else "."),
            default=None,
            optional=True,
        ),
        pexConfig.ChoiceField[str](
            doc=f"Smoothing of the {role} panel before display (astropy.convolution; the saved "
            "pixels are not smoothed).",
            default="none",
            allowed={
                "none": "no smoothing",
                "gauss": "Gaussian kernel of standard deviation smoothing_width pixels",
                "box": "box kernel smoothing_width pixels wide",
            },
        ),
    )


class DisplayConfig(pexConfig.Config):
    """Optional display choices of the cutouts."""

    template_interval_params, template_stretch_params, template_colormap, template_smoothing = _panel_fields(
        "template"
    )
    science_interval_params, science_stretch_params, science_colormap, science_smoothing = _panel_fields(
        "science"
    )
    (
        difference_interval_params,
        difference_stretch_params,
        difference_colormap,
        difference_smoothing,
    ) = _panel_fields("difference")
    smoothing_width = pexConfig.RangeField[float](
        doc="Size of the smoothing kernels in pixels (Gaussian standard deviation or box width).",
        default=1.0,
        min=0.0,
        inclusiveMin=False,
    )
    share_template_science_limits = pexConfig.Field[bool](
        doc="Give the template and science panels of a source the same display limits (the template's "
        "interval computed over both stamps), so their pixels compare directly.",
        default=False,
    )
    difference_sign_aware = pexConfig.Field[bool](
        doc="Draw the difference panel sign-aware: limits symmetric about zero (the difference interval "
        "widened to ±max, or symmetric ±k σ), the stretch applied to each side of zero, a diverging "
        f"colormap ({DIVERGING_COLORMAP} unless difference_colormap is set: negative blue, positive red), "
        "and a NEGATIVE badge on the panel when the source's psfFlux is negative.",
        default=False,
    )
    mask_overlay = pexConfig.Field[bool](
        doc="Draw the mask planes of mask_overlay_planes over the stamps in afw.display's default colours, "
        "with a legend below the panels.  The mask planes are read only when this is set.",
        default=False,
    )
    mask_overlay_planes = pexConfig.ListField[str](
        doc="Mask planes of the overlay, bottom layer first, in afw (SAT, CR, EDGE, INTRP) or lsst.images "
        "(SATURATED, COSMIC_RAY, DETECTION_EDGE, INTERPOLATED) spelling.",
        default=list(DEFAULT_OVERLAY_PLANES),
    )
    mask_overlay_opacity = pexConfig.RangeField[float](
        doc="Opacity of the overlay colours over the image (0 transparent, 1 opaque).",
        default=DEFAULT_OVERLAY_OPACITY,
        min=0.0,
        max=1.0,
        inclusiveMin=False,
        inclusiveMax=True,
    )
    marker = pexConfig.ChoiceField[str](
        doc="Marker of the DiaSource position, drawn in every panel at the exact sub-pixel position "
        "through that panel's own WCS.",
        default="off",
        allowed={
            "off": "no marker",
            "reticle": "four short arms around the position, leaving the source visible",
            "crosshair": "lines across the panel through the position, with a gap at the source",
            "ticks": "ticks on the panel edges in the source's row and column",
        },
    )
    compass = pexConfig.Field[bool](
        doc="Draw North (goldenrod) and East (white) arrows on every panel, from that stamp's WCS.",
        default=False,
    )
    orientation = pexConfig.ChoiceField[str](
        doc="Orientation of the drawn stamps.",
        default="detector",
        allowed={
            "detector": "as the detector is read out, row 0 at the bottom; no resampling",
            "cardinal": "lossless flips / 90° turns bringing North nearest to up and East nearest to left",
            "north_up": "resampled (reproject, bilinear) onto a north-up, east-left TAN grid of the same "
            "pixel scale; the record says the stamp was resampled",
        },
    )

    def validate(self) -> None:
        super().validate()
        import matplotlib

        for role in _ROLES:
            name = getattr(self, f"{role}_colormap")
            if name is not None and name not in matplotlib.colormaps:
                field = getattr(type(self), f"{role}_colormap")
                raise pexConfig.FieldValidationError(field, self, f"unknown matplotlib colormap {name!r}")
        try:
            overlay_planes(list(self.mask_overlay_planes))
        except ValueError as error:
            raise pexConfig.FieldValidationError(type(self).mask_overlay_planes, self, str(error)) from error

    def check_scaling(self, role: str, interval: str, stretch: str) -> None:
        """Raise `lsst.pex.config.FieldValidationError` if a panel's
        parameters do not fit its interval or stretch.
        """
        for kind, name, factory in (
            ("interval", interval, make_interval),
            ("stretch", stretch, make_stretch),
        ):
            params = dict(getattr(self, f"{role}_{kind}_params"))
            try:
                factory(name, **params)
            except ValueError as error:
                field = getattr(type(self), f"{role}_{kind}_params")
                raise pexConfig.FieldValidationError(field, self, str(error)) from error

    def scaling(self, role: str, interval: str, stretch: str) -> DisplayScaling:
        """The display scaling of one panel.

        Parameters
        ----------
        role : `str`
            ``template``, ``science`` or ``difference``.
        interval, stretch : `str`
            The panel's interval and stretch names (the task's
            ``<role>_interval`` and ``<role>_stretch``).

        Returns
        -------
        scaling : `~lsst.analysis.ap.scaling.DisplayScaling`
            With this configuration's parameters; sign-aware for the
            difference when ``difference_sign_aware`` is set.

        """
        built = DisplayScaling.from_names(
            interval,
            stretch,
            interval_params=dict(getattr(self, f"{role}_interval_params")),
            stretch_params=dict(getattr(self, f"{role}_stretch_params")),
        )
        if role == "difference" and self.difference_sign_aware:
            return DisplayScaling(*sign_aware(built.interval, built.stretch))
        return built

    def options(self) -> DisplayOptions:
        """The renderer's `~lsst.analysis.ap.display.options.DisplayOptions`."""
        colormaps = [self.template_colormap, self.science_colormap, self.difference_colormap]
        if self.difference_sign_aware and colormaps[2] is None:
            colormaps[2] = DIVERGING_COLORMAP
        return DisplayOptions(
            colormaps=tuple(colormaps),  # type: ignore[arg-type]
            marker=self.marker,
            compass=self.compass,
            overlay_planes=overlay_planes(list(self.mask_overlay_planes)) if self.mask_overlay else (),
            overlay_opacity=self.mask_overlay_opacity,
            negative_badge=self.difference_sign_aware,
        )

    def settings(self, template_scaling: DisplayScaling) -> DisplaySettings:
        """What the cutting core prepares for these options.

        Parameters
        ----------
        template_scaling : `~lsst.analysis.ap.scaling.DisplayScaling`
            The template panel's scaling; its interval gives the shared
            template/science limits when ``share_template_science_limits``
            is set.

        Returns
        -------
        settings : `~lsst.analysis.ap.display.panels.DisplaySettings`
            The core's display settings.

        """
        kernels = self.kernels()
        return DisplaySettings(
            orientation=self.orientation,
            directions=self.marker != "off" or self.compass,
            overlay_planes=self.options().overlay_planes,
            kernels=(kernels["template"], kernels["science"], kernels["difference"]),
            shared_interval=template_scaling.interval if self.share_template_science_limits else None,
        )

    def kernels(self) -> Mapping[str, Kernel2D | None]:
        """Smoothing kernel of each panel, by role (`None`: no smoothing)."""
        return {
            role: make_kernel(getattr(self, f"{role}_smoothing"), self.smoothing_width) for role in _ROLES
        }

    @property
    def is_default(self) -> bool:
        """Whether every field has its default value."""
        return all(getattr(self, name) == field.default for name, field in self._fields.items())
