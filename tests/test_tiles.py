"""Box reads of tile-compressed FITS planes against astropy's full decode."""

import glob
import threading
from concurrent.futures import ThreadPoolExecutor

import astropy.io.fits as fits
import numpy as np
import pytest

from lsst.analysis.ap.images import tiles
from lsst.analysis.ap.images.tiles import TiledPlane, open_plane, tile_rows_for_box


@pytest.fixture(params=["libdeflate", "zlib"])
def inflater(request, monkeypatch):
    """Run a test with each inflater (zlib is used when libdeflate is missing)."""
    if request.param == "zlib":
        monkeypatch.setattr(tiles, "_inflate", tiles._inflate_zlib)
    else:
        assert tiles._inflate is tiles._inflate_libdeflate, "the pinned deflate package is not installed"
    return request.param


def _write(path, array, **kwargs):
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(array, name="IMAGE", **kwargs)]).writeto(path)
    return path


def _random_boxes(shape, rng, n=40):
    for _ in range(n):
        y0, x0 = rng.integers(-10, shape[0]), rng.integers(-10, shape[1])
        yield y0, y0 + rng.integers(1, 40), x0, x0 + rng.integers(1, 40)


@pytest.mark.parametrize(
    "dtype,kwargs",
    [
        (np.float32, dict(compression_type="GZIP_2", tile_shape=(1, 97), quantize_level=0.0)),
        (np.float32, dict(compression_type="GZIP_1", tile_shape=(1, 97), quantize_level=0.0)),
        (np.float32, dict(compression_type="GZIP_2", tile_shape=(16, 24), quantize_level=0.0)),
        (np.float64, dict(compression_type="GZIP_2", tile_shape=(5, 97), quantize_level=0.0)),
        (np.int32, dict(compression_type="GZIP_2", tile_shape=(1, 97))),
        (np.int16, dict(compression_type="GZIP_1", tile_shape=(7, 13))),
        (np.int32, dict(compression_type="NOCOMPRESS", tile_shape=(1, 97))),
        (np.int32, dict(compression_type="NOCOMPRESS", tile_shape=(16, 24))),
        (np.float32, dict(compression_type="GZIP_2", tile_shape=(83, 97), quantize_level=0.0)),
        (np.int16, dict(compression_type="GZIP_1", tile_shape=(1, 97))),
        (np.uint8, dict(compression_type="GZIP_2", tile_shape=(1, 97))),
    ],
)
def test_tiled_reads_match_astropy(tmp_path, dtype, kwargs, inflater):
    rng = np.random.default_rng(5)
    array = (rng.normal(0, 1000, (83, 97))).astype(dtype)
    if np.issubdtype(dtype, np.floating):
        array[3, 5] = np.nan
        array[10:12, :] = -np.inf
    path = _write(tmp_path / "a.fits", array, **kwargs)
    plane = open_plane(path, "IMAGE")
    assert isinstance(plane, TiledPlane)
    expected = fits.getdata(path, "IMAGE")
    np.testing.assert_array_equal(expected, array)
    for y0, y1, x0, x1 in _random_boxes(array.shape, rng):
        got = plane.read(y0, y1, x0, x1)
        want = expected[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)]
        assert got.dtype.isnative
        np.testing.assert_array_equal(got, want)
    plane.close()


def test_lossy_and_rice_planes_fall_back_to_astropy(tmp_path):
    rng = np.random.default_rng(6)
    array = rng.normal(0, 10, (40, 50)).astype(np.float32)
    for name, kwargs in [
        ("quantized.fits", dict(compression_type="GZIP_2", quantize_level=16)),
        ("rice.fits", dict(compression_type="RICE_1")),
    ]:
        path = _write(tmp_path / name, array, **kwargs)
        plane = open_plane(path, 1)
        assert not isinstance(plane, TiledPlane)
        np.testing.assert_array_equal(plane.read(5, 25, 7, 30), fits.getdata(path, 1)[5:25, 7:30])
        plane.close()


@pytest.mark.parametrize(
    "dtype,kwargs",
    [
        (np.uint16, dict(compression_type="GZIP_2", tile_shape=(1, 97))),
        (np.uint16, dict(compression_type="GZIP_1", tile_shape=(7, 13))),
        (np.uint32, dict(compression_type="GZIP_2", tile_shape=(1, 97))),
        (np.uint64, dict(compression_type="GZIP_2", tile_shape=(5, 97))),
        (np.int8, dict(compression_type="GZIP_2", tile_shape=(1, 97))),
    ],
)
def test_integers_stored_with_an_offset_read_as_astropy_reads_them(tmp_path, dtype, kwargs, inflater):
    """Unsigned integers (and signed bytes) are stored as the other type
    with BZERO = ±2**(bits - 1): the tile reader adds it back, as astropy
    does, so a value of 40000 in a uint16 image reads 40000, not -25536.
    """
    info = np.iinfo(dtype)
    array = np.random.default_rng(3).integers(info.min, info.max, (83, 97), dtype=dtype, endpoint=True)
    array[0, :4] = [info.min, info.max, info.min + 1, info.max - 1]
    path = _write(tmp_path / "offset.fits", array, **kwargs)
    plane = open_plane(path, "IMAGE")
    assert isinstance(plane, TiledPlane)
    np.testing.assert_array_equal(fits.getdata(path, "IMAGE"), array)
    for y0, y1, x0, x1 in [(0, 1, 0, 4), (-3, 30, 90, 110), (40, 83, 0, 97)]:
        got = plane.read(y0, y1, x0, x1)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, array[max(y0, 0) : y1, max(x0, 0) : x1])
    plane.close()


@pytest.mark.parametrize("compressed", [True, False])
@pytest.mark.parametrize(
    "keywords", [dict(BSCALE=2.0, BZERO=10.0), dict(BZERO=5), dict(BZERO=32768, BLANK=7), dict(BLANK=7)]
)
def test_scaled_planes_are_read_by_astropy_with_their_scaling(tmp_path, compressed, keywords):
    """BSCALE, BZERO other than an unsigned offset, and BLANK make astropy
    scale the values to floats: such planes are read by astropy, scaled.
    """
    array = np.random.default_rng(4).integers(0, 200, (20, 30)).astype(np.int16)
    hdu = (
        fits.CompImageHDU(array, name="IMAGE", compression_type="GZIP_2", tile_shape=(1, 30))
        if compressed
        else fits.ImageHDU(array, name="IMAGE")
    )
    for key, value in keywords.items():
        hdu.header[key] = value
    path = tmp_path / "scaled.fits"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    plane = open_plane(path, "IMAGE")
    assert not isinstance(plane, TiledPlane)
    got = plane.read(2, 20, 0, 25)
    want = fits.getdata(path, "IMAGE")[2:, :25]
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    if keywords.get("BSCALE") == 2.0:
        np.testing.assert_array_equal(got, array[2:, :25] * 2.0 + 10.0)
    plane.close()


def test_uncompressed_image_hdu(tmp_path):
    array = np.arange(600, dtype=">f4").reshape(20, 30)
    path = tmp_path / "plain.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(array, name="IMAGE")]).writeto(path)
    plane = open_plane(path, "IMAGE")
    np.testing.assert_array_equal(plane.read(2, 5, 3, 9), array[2:5, 3:9])
    plane.close()


def test_gzipped_file_falls_back_to_astropy(tmp_path):
    """A tiled plane inside a file gzipped as a whole is read by astropy
    (byte offsets of the FITS structure are not file offsets there).
    """
    import gzip

    array = np.random.default_rng(9).normal(size=(40, 50)).astype(np.float32)
    path = _write(tmp_path / "a.fits", array, compression_type="GZIP_2", quantize_level=0.0)
    zipped = tmp_path / "a.fits.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    plane = open_plane(zipped, "IMAGE")
    assert not isinstance(plane, TiledPlane)
    np.testing.assert_array_equal(plane.read(5, 25, 7, 30), array[5:25, 7:30])
    plane.close()


def test_nearby_boxes_share_decoded_tiles(tmp_path):
    array = np.random.default_rng(7).normal(size=(200, 300)).astype(np.float32)
    path = _write(
        tmp_path / "a.fits", array, compression_type="GZIP_2", tile_shape=(1, 300), quantize_level=0.0
    )
    plane = open_plane(path, "IMAGE")
    plane.read(100, 130, 10, 40)
    assert plane.tiles_decoded == 30
    plane.read(110, 140, 200, 230)  # overlaps rows 110-129
    assert plane.tiles_decoded == 40
    assert list(tile_rows_for_box(100, 130, 1)) == list(range(100, 130))
    assert list(tile_rows_for_box(5, 21, 8)) == [0, 1, 2]


def test_threads_share_tiles_and_read_the_same_pixels(tmp_path):
    """Boxes read from many threads at once: the pixels astropy decodes,
    and every tile inflated once even when threads ask for it together.
    """
    rng = np.random.default_rng(8)
    array = rng.normal(size=(400, 256)).astype(np.float32)
    path = _write(
        tmp_path / "a.fits", array, compression_type="GZIP_2", tile_shape=(1, 256), quantize_level=0.0
    )
    expected = fits.getdata(path, "IMAGE")
    plane = open_plane(path, "IMAGE")
    boxes = [(y, y + 30, x, x + 30) for y, x in rng.integers(0, 226, (400, 2))]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda box: plane.read(*box), boxes))
    for (y0, y1, x0, x1), pixels in zip(boxes, got, strict=True):
        np.testing.assert_array_equal(pixels, expected[y0:y1, x0:x1])
    rows = {row for y0, y1, _, _ in boxes for row in range(y0, y1)}
    assert plane.tiles_decoded == len(rows)
    plane.close()


def test_cache_is_bounded(tmp_path):
    array = np.zeros((100, 64), np.float32)
    path = _write(
        tmp_path / "a.fits", array, compression_type="GZIP_2", tile_shape=(1, 64), quantize_level=0.0
    )
    plane = open_plane(path, "IMAGE", cache_bytes=10 * 64 * 4)
    plane.read(0, 100, 0, 64)
    assert len(plane._cache) == 10
    plane.read(0, 5, 0, 64)  # evicted long ago: decoded again
    assert plane.tiles_decoded == 105


def test_planes_written_by_lsst_images(demo_repo):
    """Every plane of the demo's Butler-written lsst.images files."""
    files = sorted(glob.glob(str(demo_repo.root / "**" / "*.fits"), recursive=True))
    files = [f for f in files if "difference_image" in f or "template" in f][:4]
    assert files
    rng = np.random.default_rng(8)
    for path in files:
        with fits.open(path) as hdus:
            names = [h.name for h in hdus if isinstance(h, fits.CompImageHDU)]
            assert {"IMAGE", "MASK", "VARIANCE"} <= set(names)
            for index in range(len(hdus)):
                # The headers are walked to each HDU's data (tables with heaps too).
                assert tiles._find_hdu(path, index)[1] == hdus.fileinfo(index)["datLoc"]
            for name in ("IMAGE", "MASK", "VARIANCE"):
                expected = hdus[name].data
                plane = open_plane(path, name)
                assert isinstance(plane, TiledPlane), (path, name)
                for y0, y1, x0, x1 in _random_boxes(expected.shape, rng, n=10):
                    np.testing.assert_array_equal(
                        plane.read(y0, y1, x0, x1), expected[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)]
                    )
                plane.close()


def test_missing_hdu_and_damaged_tile(tmp_path):
    array = np.ones((10, 10), np.float32)
    path = _write(
        tmp_path / "a.fits", array, compression_type="GZIP_2", tile_shape=(1, 10), quantize_level=0.0
    )
    with pytest.raises(KeyError):
        open_plane(path, "NOPE")
    plane = open_plane(path, "IMAGE")
    count, offset = plane._descriptors[3]
    data = bytearray(path.read_bytes())
    start = plane._heap_offset + int(offset)
    data[start : start + int(count)] = b"\x00" * int(count)
    damaged = tmp_path / "damaged.fits"
    damaged.write_bytes(bytes(data))
    plane.close()
    broken = open_plane(damaged, "IMAGE")
    np.testing.assert_array_equal(broken.read(0, 2, 0, 10), array[:2])
    with pytest.raises(ValueError, match=r"tile \(3, 0\) is damaged"):
        broken.read(3, 4, 0, 10)
    broken.close()


def test_a_file_cut_short_after_it_was_opened_fails_its_reads_naming_the_tile(tmp_path):
    """A file truncated while a run reads it (another process rewriting
    it): rows read before are still read; a box reaching past the new end
    fails naming the file and its first tile cut short, whether its tiles
    are read at once or one by one; the plane still reads what it has."""
    array = np.arange(40 * 30, dtype=np.float32).reshape(40, 30)
    path = _write(
        tmp_path / "a.fits", array, compression_type="GZIP_2", tile_shape=(1, 30), quantize_level=0.0
    )
    plane = open_plane(path, "IMAGE")
    np.testing.assert_array_equal(plane.read(0, 5, 0, 30), array[:5])
    count, offset = (int(value) for value in plane._descriptors[20])
    with open(path, "r+b") as stream:
        stream.truncate(plane._heap_offset + offset + 3)
    cut = rf"a\.fits: tile \(20, 0\) is damaged: only 3 of its {count} compressed bytes are in the file "
    cut += r"\(it was cut short after it was opened\)"
    with pytest.raises(ValueError, match=cut):
        plane.read(18, 25, 0, 30)
    with pytest.raises(ValueError, match=cut):
        plane.inflate_tile(20, 0)
    np.testing.assert_array_equal(plane.read(2, 4, 3, 9), array[2:4, 3:9])
    plane.close()


def test_each_thread_reads_into_a_buffer_of_its_own():
    """Two threads' read buffers never share memory (a shared buffer would
    mix the compressed tiles of concurrent reads)."""
    views = {}

    def take(name):
        views[name] = tiles._READ_BUFFERS.view(4096)

    for name in ("a", "b"):
        thread = threading.Thread(target=take, args=(name,))
        thread.start()
        thread.join()
    take("main")
    arrays = [np.frombuffer(view, np.uint8) for view in views.values()]
    assert not any(np.shares_memory(x, y) for i, x in enumerate(arrays) for y in arrays[i + 1 :])


def test_threads_reading_several_planes_at_once_read_their_pixels(tmp_path):
    """Eight threads reading random boxes of six planes (banded and cached,
    compressed and not) at once: every box is the plane's own pixels."""
    rng = np.random.default_rng(11)
    layouts = [
        dict(compression_type="GZIP_2", tile_shape=(1, 97), quantize_level=0.0),
        dict(compression_type="GZIP_1", tile_shape=(16, 24), quantize_level=0.0),
        dict(compression_type="NOCOMPRESS", tile_shape=(16, 24), quantize_level=0.0),
    ]
    planes, arrays = [], []
    for k in range(6):
        array = rng.normal(0, 1000, (83, 97)).astype(np.float32)
        arrays.append(array)
        planes.append(open_plane(_write(tmp_path / f"p{k}.fits", array, **layouts[k % 3]), "IMAGE"))
        assert isinstance(planes[-1], TiledPlane)

    def reads(seed):
        local = np.random.default_rng(seed)
        for _ in range(200):
            k = int(local.integers(6))
            y0, x0 = int(local.integers(0, 70)), int(local.integers(0, 80))
            got = planes[k].read(y0, y0 + 13, x0, x0 + 17)
            if not np.array_equal(got, arrays[k][y0 : y0 + 13, x0 : x0 + 17]):
                return (k, y0, x0)
        return None

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(reads, range(8))) == [None] * 8
    for plane in planes:
        plane.close()


def test_butler_reader_uses_the_tile_reader(demo_repo):
    """Butler reads of the demo's lsst.images planes go through TiledPlane,
    give the Butler's own pixels, and tell the core not to read them whole."""
    from lsst.images import Box

    from lsst.analysis.ap.images.butler import butler_plane_reader

    visit, detector = demo_repo.data_ids[0]
    data_id = dict(instrument="DemoCam", visit=visit, detector=detector)
    with demo_repo.butler() as butler:
        reader = butler_plane_reader(butler, "difference_image", data_id)
        assert reader.shares_tiles is True
        box = Box.from_shape((30, 30), start=(reader.bbox.y.start + 40, reader.bbox.x.start + 50))
        array, array_box = reader.read(box)
        whole = butler.get("difference_image", data_id).image
        np.testing.assert_array_equal(array, whole[box].array)
        assert array_box == box
        reader.release()


def test_a_band_given_to_the_next_plane_never_shows_the_last_planes_pixels(tmp_path):
    """Planes of the same shape read one after the other (the bands of closed
    planes are reused): each read gives its own file's pixels, including
    rows the previous plane had inflated."""
    rng = np.random.default_rng(10)
    arrays = [rng.normal(size=(120, 64)).astype(np.float32) for _ in range(3)]
    paths = [
        _write(tmp_path / f"{i}.fits", a, compression_type="GZIP_2", tile_shape=(1, 64), quantize_level=0.0)
        for i, a in enumerate(arrays)
    ]
    for path, array in zip(paths + paths[::-1], arrays + arrays[::-1], strict=True):
        plane = open_plane(path, "IMAGE")
        for y0, y1, x0, x1 in [(0, 120, 0, 64), (30, 60, 5, 40), (100, 130, 50, 70)]:
            np.testing.assert_array_equal(plane.read(y0, y1, x0, x1), array[y0:y1, x0:x1])
        plane.close()


def _resident_bytes(array):
    """Bytes in memory of the memory map holding ``array`` (Linux smaps; the
    kernel may merge the map with its neighbours)."""
    address = array.ctypes.data
    with open("/proc/self/smaps") as smaps:
        inside = False
        for line in smaps:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                start, end = (int(part, 16) for part in head.split("-"))
                inside = start <= address < end
            elif inside and head == "Rss:":
                return int(line.split()[1]) * 1024
    raise AssertionError("the band is not in a memory map of this process")


@pytest.mark.skipif(not glob.glob("/proc/self/smaps"), reason="needs Linux's /proc/self/smaps")
def test_bands_kept_after_a_run_give_back_all_but_their_first_rows(tmp_path, monkeypatch):
    """At the end of a run the bands kept for the next run hold only their
    first rows in memory, and the next plane of the shape reads right."""
    monkeypatch.setattr(tiles, "KEPT_BAND_BYTES", 64 * 1024)
    tiles.release_bands()
    rng = np.random.default_rng(11)
    arrays = [rng.normal(size=(256, 1024)).astype(np.float32) for _ in range(2)]
    paths = [
        _write(tmp_path / f"{i}.fits", a, compression_type="GZIP_2", tile_shape=(1, 1024), quantize_level=0.0)
        for i, a in enumerate(arrays)
    ]
    plane = open_plane(paths[0], "IMAGE")
    np.testing.assert_array_equal(plane.read(0, 256, 0, 1024), arrays[0])
    band = plane._band
    resident = _resident_bytes(band)
    assert resident >= 256 * 4096
    plane.close()
    tiles.release_bands()
    assert resident - _resident_bytes(band) >= 256 * 4096 - 64 * 1024
    # The pages are freed, not kept aside: they read as zeros again.
    assert not band[16:].any()
    plane = open_plane(paths[1], "IMAGE")
    np.testing.assert_array_equal(plane.read(10, 200, 3, 900), arrays[1][10:200, 3:900])
    assert plane._band is band
    plane.close()
    tiles.release_bands()


@pytest.mark.parametrize("kind", ["plain", "rice"])
def test_boxes_outside_the_image_are_empty_in_the_planes_type(tmp_path, kind):
    """Boxes of the astropy reader are clipped as the tile reader's: a box
    above or left of the image is empty, not pixels of the other end."""
    array = np.arange(100 * 120, dtype=np.float32).reshape(100, 120)
    path = tmp_path / f"{kind}.fits"
    hdu = (
        fits.ImageHDU(array, name="IMAGE")
        if kind == "plain"
        else fits.CompImageHDU(array, name="IMAGE", compression_type="RICE_1", quantize_level=0.0)
    )
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    plane = open_plane(path, "IMAGE")
    assert not isinstance(plane, TiledPlane)
    for box, shape in [
        ((-50, -20, 0, 10), (0, 10)),
        ((0, 10, -50, -20), (10, 0)),
        ((10, 10, 0, 5), (0, 5)),
        ((5, 2, 0, 5), (0, 5)),
        ((150, 160, 0, 5), (0, 5)),
    ]:
        got = plane.read(*box)
        assert got.shape == shape and got.dtype == np.float32, (box, got.shape, got.dtype)
    np.testing.assert_array_equal(plane.read(-5, 3, 118, 130), array[0:3, 118:120])
    plane.close()


@pytest.mark.parametrize("compressed", [True, False])
def test_gzipped_files_of_unsigned_images(tmp_path, compressed):
    """A whole-file gzipped uint16 image (stored with BZERO) is read as
    astropy reads it."""
    import gzip

    array = (np.arange(100 * 120, dtype=np.uint16) * 5).reshape(100, 120)
    hdu = (
        fits.CompImageHDU(array, name="IMAGE", compression_type="GZIP_2")
        if compressed
        else fits.ImageHDU(array, name="IMAGE")
    )
    path = tmp_path / "u16.fits"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    zipped = tmp_path / "u16.fits.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    plane = open_plane(zipped, "IMAGE")
    got = plane.read(0, 2, 0, 3)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, array[:2, :3])
    plane.close()


def _with_descriptor(path, out, row, count=None, offset=None):
    """A copy of ``path`` with tile ``row``'s (P) descriptor changed."""
    import struct

    data = bytearray(path.read_bytes())
    _, table = tiles._find_hdu(path, "IMAGE")
    at = table + 8 * row
    old_count, old_offset = struct.unpack(">ii", data[at : at + 8])
    data[at : at + 8] = struct.pack(
        ">ii", old_count if count is None else count, old_offset if offset is None else offset
    )
    out.write_bytes(bytes(data))
    return out


def test_damaged_tile_tables_fail_naming_the_file_and_tile(tmp_path):
    """A tile table pointing outside the file, or cut short, and tile sizes
    that cannot be, fail with a ValueError naming the file (and the tile),
    without reading what the table says (2 GiB for a count of 2**31 - 1)."""
    array = np.arange(40 * 50, dtype=np.float32).reshape(40, 50)
    path = _write(
        tmp_path / "base.fits", array, compression_type="GZIP_2", tile_shape=(1, 50), quantize_level=0
    )
    _, table = tiles._find_hdu(path, "IMAGE")
    for name, changes in [
        ("negative_offset.fits", dict(offset=-100000)),
        ("negative_count.fits", dict(count=-5)),
        ("huge_count.fits", dict(count=2**31 - 1)),
        ("past_the_end.fits", dict(offset=2**31 - 1000)),
    ]:
        damaged = _with_descriptor(path, tmp_path / name, 3, **changes)
        plane = open_plane(damaged, "IMAGE")
        np.testing.assert_array_equal(plane.read(0, 2, 0, 50), array[:2])
        with pytest.raises(ValueError, match=rf"{name}: tile \(3, 0\) is damaged: .* outside the file"):
            plane.read(2, 5, 0, 50)
        plane.close()
    cut = tmp_path / "cut_table.fits"
    cut.write_bytes(path.read_bytes()[: table + 50])
    with pytest.raises(ValueError, match="cut_table.fits: the file ends inside its tile table"):
        open_plane(cut, "IMAGE")
    data = bytearray(path.read_bytes())
    at = data.find(b"ZTILE1  =")
    data[at : at + 80] = b"ZTILE1  =                    0".ljust(80)
    (tmp_path / "ztile0.fits").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"ztile0.fits: a tiled image of 50×40 pixels in tiles of 0×1"):
        open_plane(tmp_path / "ztile0.fits", "IMAGE")
    (tmp_path / "text.fits").write_text("not a FITS file\n" * 300)
    with pytest.raises(OSError, match="text.fits: not a readable FITS file"):
        open_plane(tmp_path / "text.fits", "IMAGE")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros(120, np.float32), name="IMAGE")]).writeto(
        tmp_path / "oned.fits"
    )
    with pytest.raises(ValueError, match=r"oned.fits: HDU 1 is not a 2-d image"):
        open_plane(tmp_path / "oned.fits", "IMAGE")


@pytest.mark.parametrize("split", [60, 100, 20])
def test_tiles_of_several_gzip_members_and_unnamed_hdus_read_as_astropy(tmp_path, split, inflater):
    """A tile stored as two gzip members (valid gzip, which astropy reads)
    is read whole; a compressed HDU without EXTNAME is found by astropy's
    name for it, COMPRESSED_IMAGE."""
    import gzip

    array = np.arange(20 * 30, dtype=np.float32).reshape(20, 30)
    rows = array.astype(">f4")
    payloads = [
        np.frombuffer(gzip.compress(row.tobytes()[:split]) + gzip.compress(row.tobytes()[split:]), np.uint8)
        for row in rows
    ]
    column = fits.Column(name="COMPRESSED_DATA", format="1PB", array=np.array([*payloads, None], object)[:-1])
    table = fits.BinTableHDU.from_columns([column])
    for key, value in [
        ("ZIMAGE", True),
        ("ZBITPIX", -32),
        ("ZNAXIS", 2),
        ("ZNAXIS1", 30),
        ("ZNAXIS2", 20),
        ("ZTILE1", 30),
        ("ZTILE2", 1),
        ("ZCMPTYPE", "GZIP_1"),
    ]:
        table.header[key] = value
    path = tmp_path / "members.fits"
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    np.testing.assert_array_equal(fits.getdata(path, 1), array)
    plane = open_plane(path, "COMPRESSED_IMAGE")
    assert isinstance(plane, TiledPlane)
    np.testing.assert_array_equal(plane.read(3, 9, 2, 29), array[3:9, 2:29])
    plane.close()


def test_a_tile_of_gzip_members_inflating_beyond_its_size_is_damaged_without_inflating_them(tmp_path):
    """A 60-byte member, then 64 MiB of zeros in a second: the tile is
    damaged, found so after its size (not after inflating 64 MiB)."""
    import gzip
    import resource

    row = np.arange(30, dtype=">f4").tobytes()
    bomb = gzip.compress(row[:60]) + gzip.compress(bytes(64 << 20)) + gzip.compress(row[60:])
    payload = np.frombuffer(bomb, np.uint8)
    column = fits.Column(name="COMPRESSED_DATA", format="1PB", array=np.array([payload, None], object)[:-1])
    table = fits.BinTableHDU.from_columns([column], name="IMAGE")
    for key, value in [("ZIMAGE", True), ("ZBITPIX", -32), ("ZNAXIS", 2), ("ZNAXIS1", 30), ("ZNAXIS2", 1)]:
        table.header[key] = value
    table.header["ZTILE1"], table.header["ZTILE2"], table.header["ZCMPTYPE"] = 30, 1, "GZIP_1"
    path = tmp_path / "bomb.fits"
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    plane = open_plane(path, "IMAGE")
    with pytest.raises(ValueError, match=r"bomb.fits: tile \(0, 0\)"):
        plane.read(0, 1, 0, 30)
    plane.close()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 32 * 1024  # KiB
