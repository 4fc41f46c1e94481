"""Cutouts from image files given by path, without a Butler: lsst.images
files written by the demo repository's Butler, the same files as an image
cutout service trims them (no JSON tree; mask planes in ``MSKN``/``MSKM``
cards), afw Exposure files of both layouts (real HSC calexp and afw's
version-2 file), plain FITS images with a celestial WCS, and the
``plotFileCutouts`` command.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import astropy.wcs
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from lsst.analysis.ap.cli import files_main
from lsst.analysis.ap.geometry import stamp_box
from lsst.analysis.ap.images.legacy_fits import read_legacy_masked_image
from lsst.analysis.ap.plotImageSubtractionCutouts import (
    PlotImageSubtractionCutoutsConfig,
    PlotImageSubtractionCutoutsTask,
)
from lsst.analysis.ap.records import ReasonCode
from lsst.analysis.ap.standalone import make_file_cutouts

AFW = Path(__file__).parent / "data" / "afw"
ROLES = {
    "science": "preliminary_visit_image",
    "template": "template_detector",
    "difference": "difference_image",
}


def config(**overrides) -> PlotImageSubtractionCutoutsConfig:
    result = PlotImageSubtractionCutoutsConfig()
    for name, value in overrides.items():
        setattr(result, name, value)
    result.validate()
    return result


def chunk_png(out: Path, dia_source_id: int) -> Path:
    return out / "images" / str(dia_source_id // 10000 * 10000) / f"{dia_source_id}.png"


@pytest.fixture(scope="module")
def butler_run(demo_repo, demo_sources, tmp_path_factory):
    """The Butler path's PNGs of every demo source, and each image's file."""
    butler = demo_repo.butler()
    out = tmp_path_factory.mktemp("files") / "butler"
    sources = demo_sources.assign(instrument="DemoCam")
    result = PlotImageSubtractionCutoutsTask(config=config(save_as_numpy=True), output_path=out).run(
        sources, butler
    )
    files = {}
    for visit, detector in demo_repo.data_ids:
        data_id = {"instrument": "DemoCam", "visit": visit, "detector": detector}
        files[(visit, detector)] = {
            role: Path(butler.getURI(dataset_type, data_id).ospath) for role, dataset_type in ROLES.items()
        }
    return {"out": out, "result": result, "files": files, "sources": sources}


def test_lsst_images_files_by_path_give_the_butler_pngs(butler_run, tmp_path):
    sources = butler_run["sources"]
    expected = butler_run["result"].records.set_index("diaSourceId")
    for (visit, detector), paths in list(butler_run["files"].items())[:2]:
        group = sources[(sources["visit"] == visit) & (sources["detector"] == detector)]
        out = tmp_path / f"{visit}_{detector}"
        result = make_file_cutouts(group, out, config=config(), **{r: str(p) for r, p in paths.items()})
        assert len(result.records) == len(group)
        for record in result.records.to_dict("records"):
            assert record["status"] == expected.loc[record["diaSourceId"], "status"]
            if record["status"] == "written":
                ours = (out / record["path"]).read_bytes()
                assert ours == (butler_run["out"] / record["path"]).read_bytes()


def test_a_directory_per_role_finds_each_sources_file(butler_run, tmp_path, capsys):
    """One visit's detectors in a directory per role: each source is cut
    from the detector file that holds it.
    """
    sources = butler_run["sources"]
    visit = 1002
    dirs = {role: tmp_path / role for role in ROLES}
    for (v, _), paths in butler_run["files"].items():
        if v == visit:
            for role, path in paths.items():
                dirs[role].mkdir(exist_ok=True)
                shutil.copy(path, dirs[role] / path.name)
    group = sources[sources["visit"] == visit]
    assert group["detector"].nunique() == 2
    catalog = tmp_path / "sources.parquet"
    group.to_parquet(catalog)
    out = tmp_path / "out"
    argv = [str(catalog), str(out)] + [arg for role in ROLES for arg in (f"--{role}", str(dirs[role]))]
    assert files_main(argv) == 0
    assert f"Image files of each source: {out / 'image_files.csv'}\n" in capsys.readouterr().out
    expected = butler_run["result"].records.set_index("diaSourceId")
    records = pd.read_csv(out / "records.csv")
    assert len(records) == len(group)
    for record in records.to_dict("records"):
        assert record["status"] == expected.loc[record["diaSourceId"], "status"]
        if record["status"] == "written":
            assert (out / record["path"]).read_bytes() == (butler_run["out"] / record["path"]).read_bytes()


def trimmed_lsst_images_file(source: Path, target: Path) -> None:
    """An lsst.images file as a cutout service returns pixel planes: the
    IMAGE, MASK (``MSKN``/``MSKM`` cards) and VARIANCE HDUs without the
    JSON tree and index the lsst.images reader needs.
    """
    with fits.open(source) as hdus:
        kept = [fits.PrimaryHDU()]
        for name in ("IMAGE", "MASK", "VARIANCE"):
            kept.append(fits.ImageHDU(data=hdus[name].data, header=hdus[name].header, name=name))
        fits.HDUList(kept).writeto(target)


def test_files_with_mskn_mask_cards_are_read(butler_run, tmp_path):
    (visit, detector), paths = next(iter(butler_run["files"].items()))
    trimmed = {}
    for role, path in paths.items():
        trimmed[role] = tmp_path / f"{role}.fits"
        trimmed_lsst_images_file(path, trimmed[role])
    with fits.open(trimmed["template"]) as hdus:
        assert "MSKN0000" in hdus["MASK"].header and not any(k.startswith("MP_") for k in hdus["MASK"].header)
    # The legacy reader takes the plane names from the MSKN/MSKM cards.
    masked = read_legacy_masked_image(trimmed["template"])
    with fits.open(paths["template"]) as hdus:
        names = [hdus["MASK"].header[f"MSKN{n:04d}"] for n in range(3)]
        raw = hdus["MASK"].data
    for bit, name in enumerate(names):
        np.testing.assert_array_equal(masked.mask.get(name), (raw & (1 << bit)) != 0)
    sources = butler_run["sources"]
    group = sources[(sources["visit"] == visit) & (sources["detector"] == detector)]
    out = tmp_path / "out"
    result = make_file_cutouts(group, out, config=config(save_as_numpy=True), **trimmed)
    written = result.records[result.records["status"] == "written"]
    assert (
        len(written)
        == (
            butler_run["result"].records.set_index("diaSourceId").loc[group["diaSourceId"], "status"]
            == "written"
        ).sum()
    )
    for record in written.to_dict("records"):
        # Same pixels as through the Butler (the FITS WCS of these demo
        # images is their exact projection, so the same boxes are cut).
        chunk = Path(record["path"]).parent.name
        for role in ("sci", "temp", "diff"):
            name = f"{record['diaSourceId']}_{role}_30.npy"
            np.testing.assert_array_equal(
                np.load(out / "numpy" / chunk / name), np.load(butler_run["out"] / "numpy" / chunk / name)
            )


def plain_fits_image(source: Path, target: Path, x0: int, y0: int, size: int) -> None:
    """A section of an image written as the image cutout service writes a
    plain image: an empty primary HDU and an image HDU with the celestial
    WCS of the section and its parent origin in ``LTV1/2``.
    """
    with fits.open(source) as hdus:
        data = np.asarray(hdus["IMAGE"].data)[y0 : y0 + size, x0 : x0 + size]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = astropy.wcs.WCS(hdus["IMAGE"].header)
    header = wcs[y0 : y0 + size, x0 : x0 + size].to_header()
    header["LTV1"], header["LTV2"] = -x0, -y0
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data=data, header=header)]).writeto(target)


X0, Y0, SIZE = 50, 30, 180


def test_plain_fits_sections_with_a_wcs(butler_run, tmp_path):
    (visit, detector), paths = next(iter(butler_run["files"].items()))
    sections = {}
    for role, path in paths.items():
        sections[role] = tmp_path / f"{role}.fits"
        plain_fits_image(path, sections[role], X0, Y0, SIZE)
    sources = butler_run["sources"]
    group = sources[(sources["visit"] == visit) & (sources["detector"] == detector)]
    out = tmp_path / "out"
    result = make_file_cutouts(group, out, config=config(save_as_numpy=True), **sections)
    records = result.records.set_index("diaSourceId")
    expected = butler_run["result"].records.set_index("diaSourceId")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wcs = astropy.wcs.WCS(fits.getheader(paths["science"], "IMAGE"))
    x, y = wcs.world_to_pixel_values(group["ra"].to_numpy(), group["dec"].to_numpy())
    inside = (x >= X0 + 15) & (x < X0 + SIZE - 15) & (y >= Y0 + 15) & (y < Y0 + SIZE - 15)
    outside = (x < X0 - 1) | (y < Y0 - 1) | (x > X0 + SIZE) | (y > Y0 + SIZE)
    assert inside.sum() >= 2 and outside.sum() >= 2
    for dia_source_id in group["diaSourceId"][inside]:
        if expected.loc[dia_source_id, "status"] != "written":
            continue
        assert records.loc[dia_source_id, "status"] == "written"
        chunk = str(dia_source_id // 10000 * 10000)
        for role in ("sci", "temp", "diff"):
            name = f"{dia_source_id}_{role}_30.npy"
            np.testing.assert_array_equal(
                np.load(out / "numpy" / chunk / name), np.load(butler_run["out"] / "numpy" / chunk / name)
            )
    for dia_source_id in group["diaSourceId"][outside]:
        assert records.loc[dia_source_id, "reason_code"] == "off_image"
        reason = records.loc[dia_source_id, "reason"]
        assert any(f"image {path} (x " in reason for path in sections.values()), reason


def afw_catalog(path: Path, positions: list[tuple[float, float]]) -> pd.DataFrame:
    """DiaSources at parent pixel positions of an afw file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path) as hdus:
            wcs = astropy.wcs.WCS(hdus[1].header)
            x0, y0 = -hdus[1].header.get("LTV1", 0), -hdus[1].header.get("LTV2", 0)
    ra, dec = wcs.pixel_to_world_values([x - x0 for x, _ in positions], [y - y0 for _, y in positions])
    return pd.DataFrame(
        {
            "diaSourceId": np.arange(len(positions)) + 1000,
            "visit": 1,
            "detector": 1,
            "ra": ra,
            "dec": dec,
        }
    )


@pytest.mark.parametrize(
    "name, positions, size",
    [
        ("HSC-0908120-056-small.fits", [(150.0, 150.0), (130.2, 240.7), (290.0, 110.0)], 21),
        ("exposure-version-2.fits", [(4.0, 5.0), (6.3, 3.8)], 5),
    ],
)
def test_afw_files_of_both_layouts(name, positions, size, tmp_path):
    path = AFW / name
    catalog = afw_catalog(path, positions)
    out = tmp_path / "out"
    result = make_file_cutouts(
        catalog,
        out,
        science=path,
        template=path,
        difference=path,
        config=config(sizes=[size], save_as_numpy=True),
        instrument="HSC",
    )
    assert result.summary["written"] == len(positions)
    whole = read_legacy_masked_image(path).image
    for dia_source_id, (x, y) in zip(catalog["diaSourceId"], positions, strict=True):
        assert chunk_png(out, dia_source_id).exists()
        stamp = np.load(
            out / "numpy" / str(dia_source_id // 10000 * 10000) / f"{dia_source_id}_sci_{size}.npy"
        )[0]
        cx, cy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        bbox = whole.bbox
        assert stamp[size // 2, size // 2] == whole.array[cy - bbox.y.start, cx - bbox.x.start]


def test_files_without_a_wcs_fail_naming_the_file(tmp_path):
    path = tmp_path / "nowcs.fits"
    fits.PrimaryHDU(np.ones((20, 20), dtype=np.float32)).writeto(path)
    catalog = pd.DataFrame({"diaSourceId": [1, 2], "visit": 1, "detector": 1, "ra": [10.0, 10.1], "dec": 5.0})
    result = make_file_cutouts(
        catalog, tmp_path / "out", science=path, template=path, difference=path, instrument="X"
    )
    assert (result.records["status"] == "failed").all()
    assert result.records["reason"].str.contains(f"{path}: the image HDU has no celestial WCS").all()
    assert set(result.records["reason_code"]) == {"no_wcs"}
    failures = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert sorted(failures["diaSourceId"]) == [1, 2]


def test_command_refuses_missing_files(tmp_path, capsys):
    catalog = tmp_path / "c.csv"
    pd.DataFrame({"diaSourceId": [1], "visit": 1, "detector": 1, "ra": [1.0], "dec": [1.0]}).to_csv(catalog)
    argv = [str(catalog), str(tmp_path / "out"), "--science", str(tmp_path / "none.fits")]
    argv += ["--template", str(tmp_path / "none.fits"), "--difference", str(tmp_path / "none.fits")]
    assert files_main(argv + ["--instrument", "X"]) == 2
    assert f"template image {tmp_path / 'none.fits'} does not exist" in capsys.readouterr().err


# Files of several visits overlapping on the sky ---------------------------------------


def _on_image(path: Path, ra: float, dec: float) -> tuple[bool, bool, float]:
    """(centre pixel on the image, whole stamp of the default size on the
    image, distance to the image centre) of a position, from the file's own
    FITS WCS.
    """
    size = max(config().sizes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path) as hdus:
            header = hdus["IMAGE"].header
    wcs = astropy.wcs.WCS(header)
    x, y = wcs.all_world2pix(ra, dec, 0)
    ny, nx = header["NAXIS2"], header["NAXIS1"]
    cx, cy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
    holds = 0 <= cx < nx and 0 <= cy < ny
    stamp = stamp_box(float(x), float(y), size)
    whole = 0 <= stamp.x0 and stamp.x0 + size <= nx and 0 <= stamp.y0 and stamp.y0 + size <= ny
    return holds, whole, float(np.hypot(x - (nx - 1) / 2, y - (ny - 1) / 2))


def _role_dirs(butler_run, tmp_path: Path, visits, transform=shutil.copy) -> dict[str, Path]:
    dirs = {role: tmp_path / role for role in ROLES}
    for (visit, _), paths in butler_run["files"].items():
        if visit in visits:
            for role, path in paths.items():
                dirs[role].mkdir(exist_ok=True)
                transform(path, dirs[role] / path.name)
    return dirs


def test_overlapping_visits_cut_each_source_from_its_own_visit(butler_run, tmp_path):
    """lsst.images files of two overlapping visits given together: every
    source is cut from its own visit × detector's files (its data ID), so
    each PNG is the Butler's, even for sources that also lie on the other
    visit's images (which the first file holding the source would give).
    """
    sources = butler_run["sources"]
    files = butler_run["files"]
    group = sources[sources["visit"].isin([1001, 1002])]
    # The visits overlap: sources of 1002 lie on 1001's science images.
    on_other = [
        row["diaSourceId"]
        for row in group[group["visit"] == 1002].to_dict("records")
        if any(_on_image(files[(1001, d)]["science"], row["ra"], row["dec"])[0] for d in (0, 1))
    ]
    assert len(on_other) >= 3
    dirs = _role_dirs(butler_run, tmp_path, (1001, 1002))
    out = tmp_path / "out"
    result = make_file_cutouts(group, out, config=config(), **{r: str(d) for r, d in dirs.items()})
    expected = butler_run["result"].records.set_index("diaSourceId")
    assert len(result.records) == len(group)
    for record in result.records.to_dict("records"):
        assert record["status"] == expected.loc[record["diaSourceId"], "status"]
        if record["status"] == "written":
            assert (out / record["path"]).read_bytes() == (butler_run["out"] / record["path"]).read_bytes()
    chosen = pd.read_csv(out / "image_files.csv").set_index("diaSourceId")
    assert sorted(chosen.index) == sorted(group["diaSourceId"])
    for row in group.to_dict("records"):
        entry = chosen.loc[row["diaSourceId"]]
        for role in ROLES:
            assert entry[role] == str(dirs[role] / files[(row["visit"], row["detector"])][role].name)
        assert "visit and detector (the lsst.images Butler data ID)" in entry["choice"]
        assert not entry["ambiguous"]


def test_sources_of_a_visit_without_files_fail_naming_the_files(butler_run, tmp_path):
    sources = butler_run["sources"]
    dirs = _role_dirs(butler_run, tmp_path, (1001,))
    group = sources[sources["visit"].isin([1001, 1002])]
    result = make_file_cutouts(
        group, tmp_path / "out", config=config(), **{r: str(d) for r, d in dirs.items()}
    )
    records = result.records.set_index("diaSourceId")
    other = group[group["visit"] == 1002]
    assert (records.loc[other["diaSourceId"], "status"] == "failed").all()
    assert (records.loc[other["diaSourceId"], "reason_code"] == ReasonCode.MISSING_IMAGE).all()
    for row in other.to_dict("records"):
        reason = records.loc[row["diaSourceId"], "reason"]
        assert reason.startswith(
            f"no template file is of visit 1002, detector {row['detector']}: the 2 given are "
        )
        for (visit, detector), paths in butler_run["files"].items():
            if visit == 1001:
                name = dirs["template"] / paths["template"].name
                assert f"{name} (visit 1001, detector {detector})" in reason
    mine = group[group["visit"] == 1001]["diaSourceId"]
    assert (records.loc[mine, "status"] != "failed").sum() == (
        butler_run["result"].records.set_index("diaSourceId").loc[mine, "status"] != "failed"
    ).sum()
    failures = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert set(other["diaSourceId"]) <= set(failures["diaSourceId"])


def test_files_without_ids_prefer_the_whole_stamp_then_the_nearest_centre(butler_run, tmp_path, caplog):
    """Trimmed files (no data ID) of two overlapping visits: a source on
    both is cut from the file where its whole stamp lies, then from the one
    whose centre is nearest; the choice is recorded as ambiguous.
    """
    sources = butler_run["sources"]
    dirs = _role_dirs(butler_run, tmp_path, (1001, 1002), transform=trimmed_lsst_images_file)
    group = sources[sources["visit"].isin([1001, 1002])]
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        result = make_file_cutouts(group, out, config=config(), **{r: str(d) for r, d in dirs.items()})
    chosen = pd.read_csv(out / "image_files.csv").set_index("diaSourceId")
    science = sorted(dirs["science"].iterdir())
    n_ambiguous = n_whole_rule = 0
    for row in group.to_dict("records"):
        placed = {path: _on_image(path, row["ra"], row["dec"]) for path in science}
        holders = [path for path, (holds, _, _) in placed.items() if holds]
        if not holders:
            assert row["diaSourceId"] not in chosen.index
            continue
        best = min(holders, key=lambda p: (not placed[p][1], placed[p][2]))
        entry = chosen.loc[row["diaSourceId"]]
        assert entry["science"] == str(best), row["diaSourceId"]
        assert bool(entry["ambiguous"]) == (len(holders) > 1)
        if len(holders) > 1:
            n_ambiguous += 1
            others = [str(p) for p in holders if p != best]
            assert all(other in entry["choice"] for other in others)
            if placed[best][1] and not all(placed[p][1] for p in holders):
                n_whole_rule += 1
                assert "science: the whole stamp on the image (also on" in entry["choice"]
            else:
                assert "science: the image centre nearest the source (also on" in entry["choice"]
    assert n_ambiguous >= 3 and n_whole_rule >= 1
    assert f"{n_ambiguous} source(s) lie on several image files" in caplog.text
    assert result.summary["total"] == len(group)


def test_file_identity_of_real_files(butler_run, tmp_path):
    """The data ID of an lsst.images file, the Butler's header cards of an
    afw file, and nothing for a file that says nothing.
    """
    from lsst.analysis.ap.images.files import FileIdentity, file_identity

    for (visit, detector), paths in butler_run["files"].items():
        for path in paths.values():
            assert file_identity(path) == FileIdentity(visit, detector, "the lsst.images Butler data ID")
    hsc = AFW / "HSC-0908120-056-small.fits"
    assert file_identity(hsc) == FileIdentity()
    tagged = tmp_path / "calexp.fits"
    with fits.open(hsc) as hdus:
        hdus[0].header["HIERARCH LSST BUTLER DATAID VISIT"] = 908120
        hdus[0].header["HIERARCH LSST BUTLER DATAID DETECTOR"] = 56
        hdus.writeto(tagged)
    assert file_identity(tagged) == FileIdentity(908120, 56, "the LSST BUTLER DATAID header cards")
    trimmed = tmp_path / "trimmed.fits"
    trimmed_lsst_images_file(butler_run["files"][(1001, 0)]["science"], trimmed)
    assert not file_identity(trimmed).known


def test_choose_file_rules_for_mixed_and_repeated_files():
    """The rule itself: files without ids are the fallback when no file is
    the source's visit (a coadd template next to visit templates); two
    files of the source's visit × detector are told apart by position, and
    the choice is marked ambiguous.
    """
    from lsst.analysis.ap.images.files import FileIdentity, Placement, choose_file

    a, b, coadd = Path("a.fits"), Path("b.fits"), Path("coadd.fits")
    ids = {a: FileIdentity(1, 0, "cards"), b: FileIdentity(1, 0, "cards"), coadd: FileIdentity()}
    calls = []

    def place(paths):
        calls.append(list(paths))
        spots = {a: Placement(a, True, False, 10.0), b: Placement(b, True, True, 50.0)}
        return [spots[p] for p in paths if p in spots], []

    choice = choose_file("template", 2, 0, [a, coadd], ids, place)
    assert (choice.path, choice.rule, calls) == (coadd, "the only file without visit/detector ids", [])
    choice = choose_file("template", 1, 0, [a, b, coadd], ids, place)
    assert choice.path == b and choice.others == (a,) and choice.ambiguous
    assert choice.rule == "visit and detector, then the whole stamp on the image"
    assert calls == [[a, b]]
    choice = choose_file("template", 1, 5, [a, b], ids, place)
    assert choice.path is None
    assert choice.reason == (
        "no template file is of visit 1, detector 5: the 2 given are a.fits (visit 1, detector 0); "
        "b.fits (visit 1, detector 0)"
    )


def test_a_directory_is_searched_recursively(butler_run, tmp_path):
    """Each detector's files in a subdirectory of the role's directory."""
    sources = butler_run["sources"]
    visit = 1002
    dirs = {role: tmp_path / role for role in ROLES}
    for (v, detector), paths in butler_run["files"].items():
        if v == visit:
            for role, path in paths.items():
                nested = dirs[role] / f"detector{detector}" / "calib"
                nested.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, nested / path.name)
    group = sources[sources["visit"] == visit]
    out = tmp_path / "out"
    result = make_file_cutouts(group, out, config=config(), **{role: str(d) for role, d in dirs.items()})
    assert len(result.records) == len(group)
    expected = butler_run["result"].records.set_index("diaSourceId")
    for record in result.records.to_dict("records"):
        assert record["status"] == expected.loc[record["diaSourceId"], "status"], record["reason"]
    assert set(result.image_files["science"].map(lambda p: Path(p).parent.parent.name)) == {
        "detector0",
        "detector1",
    }


def test_a_file_given_twice_is_one_candidate(butler_run, tmp_path, monkeypatch):
    """The template given as a directory, again as one of its files by
    another spelling, and through a link: each file is a candidate once, so
    no source is marked ambiguous and no file is listed as its own
    alternative.
    """
    from lsst.analysis.ap.images.files import role_files

    sources = butler_run["sources"]
    dirs = _role_dirs(butler_run, tmp_path, (1001,), transform=trimmed_lsst_images_file)
    one = sorted(dirs["template"].iterdir())[0]
    link = tmp_path / "link.fits"
    link.symlink_to(one)
    monkeypatch.chdir(tmp_path)
    spellings = [str(dirs["template"]), f"./template/{one.name}", str(link)]
    assert role_files(spellings, "template") == sorted(dirs["template"].iterdir())
    group = sources[sources["visit"] == 1001]
    out = tmp_path / "out"
    result = make_file_cutouts(
        group,
        out,
        config=config(),
        science=str(dirs["science"]),
        difference=str(dirs["difference"]),
        template=spellings,
    )
    chosen = pd.read_csv(out / "image_files.csv")
    assert len(chosen) >= 5 and result.summary["written"] == len(chosen)
    assert not chosen["ambiguous"].any(), chosen.loc[chosen["ambiguous"], "choice"].tolist()
    assert not chosen["choice"].str.contains("also on").any()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_image_file_fails_its_sources_as_corrupt_naming_it(butler_run, tmp_path, damage):
    sources = butler_run["sources"]
    (visit, detector), paths = next(iter(butler_run["files"].items()))
    group = sources[(sources["visit"] == visit) & (sources["detector"] == detector)]
    data = paths["science"].read_bytes()
    corrupt = tmp_path / "science.fits"
    if damage == "truncated":
        corrupt.write_bytes(data[: len(data) // 3])
    else:
        corrupt.write_bytes(b"SIMPLE  =  garbage" + bytes(len(data) // 2))
    roles = {role: str(path) for role, path in paths.items()} | {"science": str(corrupt)}
    result = make_file_cutouts(group, tmp_path / "out", config=config(), **roles)
    records = result.records
    assert len(records) == len(group)
    assert set(records["status"]) == {"failed"}
    assert set(records["reason_code"]) == {ReasonCode.CORRUPT_IMAGE}, records["reason"].tolist()
    assert records["reason"].str.contains(str(corrupt), regex=False).all()
    failures = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert set(failures["reason_code"]) == {"corrupt_image"}


TAN_CARDS = dict(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRPIX1=40.5, CRPIX2=30.5, CRVAL1=150.0, CRVAL2=2.0)
TAN_CARDS |= dict(CD1_1=-5e-5, CD1_2=0.0, CD2_1=0.0, CD2_2=5e-5)
"""A 4.5-arcsecond-pixel TAN WCS centred on (150, 2) degrees."""

ONE_SOURCE = pd.DataFrame({"diaSourceId": [7], "visit": 1, "detector": 1, "ra": [150.0], "dec": [2.0]})
"""A catalog of one source at the centre of `TAN_CARDS`."""


def _image_file(
    path: Path, cards: dict, shape: tuple[int, ...] = (60, 80), extname: str | None = "IMAGE"
) -> Path:
    """A FITS file of ones with an empty primary HDU and one image HDU."""
    image = fits.ImageHDU(np.ones(shape, dtype=np.float32), name=extname)
    image.header.update(cards)
    fits.HDUList([fits.PrimaryHDU(), image]).writeto(path)
    return path


@pytest.mark.parametrize("card", ["CRVAL1", "CRPIX2", "CD1_1", "LTV1", "CROTA2", "PV2_1"])
def test_a_wcs_card_that_is_not_a_number_fails_the_file_naming_the_card(tmp_path, card):
    """astropy takes a WCS card holding text as absent, which moved every
    position (the sources failed as off the image, or were drawn at the
    wrong place); the file is corrupt and the reason names the card."""
    cards = TAN_CARDS | dict(LTV1=0, LTV2=0)
    if card in ("CROTA2", "PV2_1"):  # a rotation and a ZPN term instead of the CD matrix
        cards = {key: value for key, value in cards.items() if not key.startswith("CD")}
        cards |= dict(CDELT1=-5e-5, CDELT2=5e-5, CROTA2=30.0, CTYPE1="RA---ZPN", CTYPE2="DEC--ZPN", PV2_1=1.0)
    good = _image_file(tmp_path / "good.fits", cards)
    bad = _image_file(tmp_path / "bad.fits", cards | {card: "n/a"})
    result = make_file_cutouts(ONE_SOURCE, tmp_path / "out", science=bad, template=good, difference=good)
    (record,) = result.records.to_dict("records")
    assert record["reason_code"] == "corrupt_image"
    assert f"{bad}: header card {card} = 'n/a' is not a number" in record["reason"], record["reason"]


@pytest.mark.parametrize(("shape", "name"), [((80,), "IMAGE"), ((80,), None), ((3, 60, 80), None)])
def test_an_image_that_is_not_2d_fails_its_file_as_corrupt(tmp_path, shape, name):
    """A file that is there but whose image is a line or a cube, named
    IMAGE or not: corrupt (not missing), naming the file."""
    good = _image_file(tmp_path / "good.fits", TAN_CARDS)
    bad = _image_file(tmp_path / "bad.fits", TAN_CARDS, shape, name)
    result = make_file_cutouts(ONE_SOURCE, tmp_path / "out", science=good, template=good, difference=bad)
    (record,) = result.records.to_dict("records")
    assert record["reason_code"] == "corrupt_image", record["reason"]
    assert str(bad) in record["reason"]


def test_a_source_on_the_far_side_of_the_sky_fails_as_off_its_image_naming_it(tmp_path):
    """A source 180° from a TAN image has no pixel position at all: it fails
    as off the image, naming the file, and the source on it is drawn."""
    path = _image_file(tmp_path / "image.fits", TAN_CARDS)
    catalog = pd.DataFrame(
        {"diaSourceId": [7, 8], "visit": 1, "detector": 1, "ra": [330.0, 150.0], "dec": [-2.0, 2.0]}
    )
    result = make_file_cutouts(catalog, tmp_path / "out", science=path, template=path, difference=path)
    records = result.records.set_index("diaSourceId")
    assert records.loc[8, "status"] == "written"
    assert records.loc[7, "reason_code"] == "off_image"
    assert records.loc[7, "reason"] == f"sky position has no pixel position near the template image {path}"


def test_an_image_hdu_without_pixels_is_passed_over_for_the_image(tmp_path):
    """A primary HDU labelled EXTTYPE = IMAGE but holding no pixels, ahead
    of the real image: the sources are cut from the image, not failed for
    a missing WCS."""
    primary = fits.PrimaryHDU()
    primary.header["EXTTYPE"] = "IMAGE"
    image = fits.ImageHDU(np.arange(60 * 80, dtype=np.float32).reshape(60, 80))
    cards = dict(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRPIX1=40.5, CRPIX2=30.5, CRVAL1=150.0, CRVAL2=2.0)
    cards |= dict(CD1_1=-5e-5, CD1_2=0.0, CD2_1=0.0, CD2_2=5e-5)
    image.header.update(cards)
    path = tmp_path / "empty_primary.fits"
    fits.HDUList([primary, image]).writeto(path)
    catalog = pd.DataFrame({"diaSourceId": [7], "visit": 1, "detector": 1, "ra": [150.0], "dec": [2.0]})
    result = make_file_cutouts(
        catalog, tmp_path / "out", science=path, template=path, difference=path, instrument="X"
    )
    assert result.records["status"].tolist() == ["written"], result.records["reason"].tolist()
    assert (tmp_path / "out" / result.records["path"].iloc[0]).stat().st_size > 0


def test_an_image_hdu_without_pixels_is_never_replaced_by_the_mask(tmp_path):
    """An HDU named IMAGE without pixels, beside a MASK plane with a WCS:
    the file fails, rather than stamps being cut from the mask."""
    mask = fits.ImageHDU(np.ones((60, 80), dtype=np.int32), name="MASK")
    mask.header.update(
        dict(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRPIX1=40.5, CRPIX2=30.5, CRVAL1=150.0, CRVAL2=2.0)
        | dict(CD1_1=-5e-5, CD1_2=0.0, CD2_1=0.0, CD2_2=5e-5)
    )
    path = tmp_path / "empty_image.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(name="IMAGE"), mask]).writeto(path)
    catalog = pd.DataFrame({"diaSourceId": [7], "visit": 1, "detector": 1, "ra": [150.0], "dec": [2.0]})
    result = make_file_cutouts(
        catalog, tmp_path / "out", science=path, template=path, difference=path, instrument="X"
    )
    assert result.records["status"].tolist() == ["failed"]
