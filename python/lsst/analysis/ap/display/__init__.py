"""Drawing one source's cutouts: display scaling (`scaling`, `limits`,
`diverging`, `smoothing`), catalog annotation (`annotation`), the palette
(`palette`), the canvas layout (`layout`), fonts and glyphs (`glyphs`),
pre-drawn art (`predrawn`), overlays, markers, compass and orientation
(`overlays`, `markers`, `compass`, `orientation`), the optional display
choices (`config`, `options`), preparing and decorating panels (`panels`,
`decorations`), single-stamp PNGs (`single_stamps`) and the per-source
renderer (`renderer`).
"""
