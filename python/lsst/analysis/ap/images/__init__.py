"""Image access: readers of the pixels and sky projection of the science,
template and difference images (`butler` through a Butler, `tiles` for box
reads of tile-compressed planes, `legacy_fits` for afw-written FITS files,
`files` for image files given by path, `alerts` for the stamps of Rubin and
ZTF alert packets, `arrays` for stamps held in memory).
"""
