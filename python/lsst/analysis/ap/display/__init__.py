"""Drawing one source's cutouts: display scaling (`scaling`), catalog
annotation (`annotation`), the palette (`palette`), the canvas layout
(`layout`), fonts and glyphs (`glyphs`), pre-drawn art (`predrawn`) and the
per-source renderer (`renderer`).
"""
