"""DiaObject sequences on the real demo repository."""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lsst.analysis.ap.datasets import IMAGE_ROLES
from lsst.analysis.ap.images.butler import butler_plane_reader
from lsst.analysis.ap.sequences import PlotDiaObjectSequencesConfig, PlotDiaObjectSequencesTask
from lsst.analysis.ap.sequences.align import common_grid, cut_aligned, grids_agree, local_grid
from lsst.analysis.ap.sequences.epochs import choose_epochs
from lsst.analysis.ap.sequences.products import contact_sheet_size
from lsst.analysis.ap.sequences.task import EPOCH_COLUMNS


@pytest.fixture(scope="module")
def sources(demo_sources):
    frame = demo_sources.copy()
    frame["instrument"] = "DemoCam"
    return frame


@pytest.fixture(scope="module")
def multi_epoch_object(sources):
    counts = sources.groupby("diaObjectId").size()
    return int(counts[counts >= 3].index[0])


def _run(demo_repo, sources, ids, tmp_path, njobs=0, window=None, **overrides):
    config = PlotDiaObjectSequencesConfig()
    config.url_root = "https://example.org/seq/"
    for key, value in overrides.items():
        setattr(config, key, value)
    task = PlotDiaObjectSequencesTask(config=config, output_path=tmp_path)
    with demo_repo.butler() as butler:
        return task.run(ids, butler, sources, njobs=njobs, window=window)


def test_epochs_are_ordered_and_capped():
    epochs = pd.DataFrame({"midpointMjdTai": [5.0, 1.0, 3.0, 2.0, 4.0], "band": list("rgrgr")})
    assert list(choose_epochs(epochs, max_epochs=None)["midpointMjdTai"]) == [1, 2, 3, 4, 5]
    assert list(choose_epochs(epochs, max_epochs=2, choice="latest")["midpointMjdTai"]) == [4, 5]
    assert list(choose_epochs(epochs, max_epochs=3, choice="even")["midpointMjdTai"]) == [1, 3, 5]
    grouped = choose_epochs(epochs, max_epochs=None, group_by_band=True)
    assert list(grouped["band"]) == ["g", "g", "r", "r", "r"]
    with pytest.raises(ValueError, match="midpointMjdTai"):
        choose_epochs(epochs.drop(columns="midpointMjdTai"), max_epochs=None)


def test_object_stays_at_one_canvas_position_across_rotated_visits(demo_repo, sources, multi_epoch_object):
    rows = sources[sources["diaObjectId"] == multi_epoch_object]
    ra, dec = float(rows["ra"].mean()), float(rows["dec"].mean())
    size = 41
    with demo_repo.butler() as butler:
        readers = [
            butler_plane_reader(
                butler, "difference_image", dict(instrument="DemoCam", visit=int(v), detector=int(d))
            )
            for v, d in zip(rows["visit"], rows["detector"], strict=True)
        ]
        cds = [local_grid(r, ra, dec) for r in readers]
        assert not grids_agree(cds), "the demo visits should differ in rotation"
        scale = 3600 * float(np.sqrt(abs(np.linalg.det(cds[0]))))
        grid = common_grid(ra, dec, scale, size)
        peaks = []
        for reader in readers:
            stamp = cut_aligned(reader, ra, dec, size, grid)
            assert stamp.resampled
            centre = np.abs(np.nan_to_num(stamp.array))[
                size // 2 - 6 : size // 2 + 7, size // 2 - 6 : size // 2 + 7
            ]
            peaks.append(np.unravel_index(np.argmax(centre), centre.shape))
            reader.release()
    peaks = np.array(peaks)
    assert np.abs(peaks - peaks[0]).max() <= 1, peaks


def test_products_manifests_and_shared_normalisation(demo_repo, sources, multi_epoch_object, tmp_path):
    result = _run(demo_repo, sources, [multi_epoch_object], tmp_path, frame_duration_ms=250)
    record = result.objects.iloc[0]
    assert record["status"] == "written" and record["resampled"]
    n = int(record["n_epochs"])
    assert n == int((sources["diaObjectId"] == multi_epoch_object).sum())
    for key in ("gif", "apng"):
        with Image.open(tmp_path / record[key]) as animation:
            assert animation.n_frames == n
            animation.seek(1)
            assert animation.info["duration"] == 250
    sheet = Image.open(tmp_path / record["contact_sheet"])
    assert sheet.height > n * 160
    manifest = pd.read_csv(tmp_path / "sequences" / "manifest.csv")
    locations = [manifest.loc[0, f"location:{i + 1}"] for i in range(n)]
    frames = record["frames"].split(";")
    assert locations == ["https://example.org/seq/" + f for f in frames]
    assert all((tmp_path / f).is_file() for f in frames)
    epochs = result.epochs
    assert list(epochs["mjd"]) == sorted(epochs["mjd"])
    assert manifest.loc[0, "#diaObjectId"] == multi_epoch_object
    panoptes = pd.read_csv(tmp_path / "sequences" / "panoptes_manifest.csv")
    assert [panoptes.loc[0, f"file:{i + 1}"] for i in range(n)] == frames


def test_same_value_same_level_in_every_frame(demo_repo, sources, multi_epoch_object, tmp_path):
    config = PlotDiaObjectSequencesConfig()
    task = PlotDiaObjectSequencesTask(config=config, output_path=tmp_path)
    rows = sources[sources["diaObjectId"] == multi_epoch_object]
    ra, dec = float(rows["ra"].mean()), float(rows["dec"].mean())
    with demo_repo.butler() as butler:
        readers = [
            {
                role: butler_plane_reader(
                    butler, t, dict(instrument="DemoCam", visit=int(v), detector=int(d))
                )
                for role, t in zip(
                    IMAGE_ROLES,
                    ("template_detector", "preliminary_visit_image", "difference_image"),
                    strict=True,
                )
            }
            for v, d in zip(rows["visit"], rows["detector"], strict=True)
        ]
        stamps = [{role: cut_aligned(r[role], ra, dec, 41, None) for role in IMAGE_ROLES} for r in readers]
    renderer = task._renderer(stamps)
    for k, role in enumerate(IMAGE_ROLES):
        limits = {renderer.scalings[k].interval.get_limits(s[role].array) for s in stamps}
        assert len(limits) == 1, (role, limits)
    # Frame by frame limits would differ: the shared limits are not one frame's own.
    own = {tuple(np.nanpercentile(s["science"].array, [0, 100])) for s in stamps}
    assert len(own) > 1


def test_non_detection_epochs_and_failures(demo_repo, sources, multi_epoch_object, tmp_path):
    rows = sources[sources["diaObjectId"] == multi_epoch_object]
    dropped_visit = int(rows["visit"].iloc[0])
    kept = sources.drop(index=rows.index[0])
    new_id = int(sources["diaSourceId"].max())
    # off every image
    far = rows.iloc[[0]].assign(diaObjectId=777, diaSourceId=new_id + 1, ra=rows["ra"].iloc[0] + 5.0)
    missing = rows.iloc[[0]].assign(
        diaObjectId=888, diaSourceId=new_id + 2, visit=424242
    )  # no such visit image
    catalog = pd.concat([kept, far, missing], ignore_index=True)
    single = int(sources.groupby("diaObjectId").size().pipe(lambda c: c[c == 1].index[0]))
    result = _run(
        demo_repo, catalog, [multi_epoch_object, 777, 888, single, 999], tmp_path, include_non_detections=True
    )
    objects = result.objects.set_index("diaObjectId")
    assert objects.loc[multi_epoch_object, "status"] == "written"
    epochs = result.epochs[result.epochs["diaObjectId"] == multi_epoch_object]
    nondet = epochs[~epochs["detected"]]
    assert dropped_visit in set(nondet["visit"]) and (nondet["status"] == "written").all()
    sheet_text_epochs = objects.loc[multi_epoch_object, "n_detected"]
    assert sheet_text_epochs == len(epochs) - len(nondet)
    assert objects.loc[777, "status"] == "failed" and "off" in objects.loc[777, "reason"]
    # The missing visit image fails its own epoch; the object is still drawn from the other
    # visits that cover it (non-detections).
    lost = result.epochs[(result.epochs["diaObjectId"] == 888) & (result.epochs["visit"] == 424242)]
    assert list(lost["status"]) == ["failed"] and "424242" in lost["reason"].iloc[0]
    assert objects.loc[888, "reason"] == "1 epoch(s) not drawn"
    assert objects.loc[999, "status"] == "failed" and "no DiaSources" in objects.loc[999, "reason"]
    assert objects.loc[single, "status"] == "written" and objects.loc[single, "n_epochs"] >= 1
    failures = pd.read_csv(tmp_path / "sequences" / "failures.csv")
    assert set(failures["diaObjectId"]) == {777, 999}


@pytest.mark.parametrize("njobs", [0, 2])
def test_non_detections_stay_in_the_epoch_window(demo_repo, sources, multi_epoch_object, tmp_path, njobs):
    """With a band or time window, the visits added as non-detections are
    those of the window only, and never a visit where the object has a
    DiaSource outside it (those were drawn as "not detected")."""
    from lsst.analysis.ap.apdb import DiaSourceSelection

    rows = sources[sources["diaObjectId"] == multi_epoch_object]
    dropped = rows.iloc[0]  # a visit that covers the object without a DiaSource of it
    catalog = sources.drop(index=rows.index[0])
    observed = set(rows["visit"]) - {dropped["visit"]}
    band = str(dropped["band"])
    mjd_max = float(rows["midpointMjdTai"].median())
    windows = {
        "band": DiaSourceSelection(bands=(band,)),
        "time": DiaSourceSelection(mjd_max=mjd_max),
        "nothing": DiaSourceSelection(bands=("zz",)),
    }
    for name, window in windows.items():
        result = _run(
            demo_repo,
            catalog,
            [multi_epoch_object, int(sources["diaObjectId"].iloc[-1])],
            tmp_path / name,
            njobs=njobs,
            window=window,
            include_non_detections=True,
            max_epochs=None,
        )
        assert tuple(result.epochs.columns) == EPOCH_COLUMNS
        epochs = result.epochs[result.epochs["diaObjectId"] == multi_epoch_object]
        missed = epochs[~epochs["detected"].astype(bool)]
        assert not set(missed["visit"]) & observed, (name, missed)
        if name == "band":
            assert set(epochs["band"]) == {band}
            assert int(dropped["visit"]) in set(missed["visit"])
            assert set(epochs.loc[epochs["detected"], "visit"]) == set(
                rows.loc[rows["band"] == band, "visit"]
            ) - {dropped["visit"]}
        elif name == "time":
            assert (epochs["mjd"] <= mjd_max + 0.01).all() and len(epochs) > 1
        else:
            (record,) = result.objects[result.objects["diaObjectId"] == multi_epoch_object].to_dict("records")
            assert record["status"] == "failed" and epochs.empty
            assert "is in the epoch window (band in ['zz'])" in record["reason"], record["reason"]


def test_an_unreadable_table_of_an_earlier_run_is_kept_beside(
    demo_repo, sources, multi_epoch_object, tmp_path, caplog
):
    """objects.csv edited by hand into something that is not a table: the
    next run keeps it beside (its rows would be lost otherwise), says where,
    and writes its own table."""
    _run(demo_repo, sources, [multi_epoch_object], tmp_path)
    table = tmp_path / "sequences" / "objects.csv"
    edited = table.read_bytes() + b"note: checked by AB,,,\n"
    table.write_bytes(edited)
    other = int(sources.loc[sources["diaObjectId"] != multi_epoch_object, "diaObjectId"].iloc[0])
    with caplog.at_level("WARNING"):
        _run(demo_repo, sources, [other], tmp_path)
    (kept,) = (tmp_path / "sequences").glob("objects.csv.unreadable-*")
    assert kept.read_bytes() == edited
    assert f"it is kept as sequences/{kept.name}" in caplog.text
    assert pd.read_csv(table)["diaObjectId"].tolist() == [other]


@pytest.mark.parametrize(("name", "column"), [("epochs.csv", "path"), ("objects.csv", "frames")])
def test_an_earlier_table_without_a_column_the_merge_needs_is_kept_beside(
    demo_repo, sources, multi_epoch_object, tmp_path, caplog, name, column
):
    """An earlier table cut to its first columns (an edited or truncated
    copy) that lacks a column the merge needs: it is kept beside and
    replaced, as an unreadable one.  Before, a missing ``path`` stopped this
    run and every later one with a KeyError, and a missing ``frames`` gave
    manifest rows whose file was "nan"."""
    _run(demo_repo, sources, [multi_epoch_object], tmp_path)
    table = tmp_path / "sequences" / name
    edited = pd.read_csv(table).drop(columns=[column])
    edited.to_csv(table, index=False)
    other = int(sources.loc[sources["diaObjectId"] != multi_epoch_object, "diaObjectId"].iloc[0])
    with caplog.at_level("WARNING"):
        result = _run(demo_repo, sources, [other], tmp_path)
    assert result.objects["status"].tolist() == ["written"]
    (kept,) = (tmp_path / "sequences").glob(f"{name}.unreadable-*")
    assert f"it has no '{column}' column" in caplog.text
    assert f"it is kept as sequences/{kept.name}" in caplog.text
    assert other in pd.read_csv(table)["diaObjectId"].tolist()
    manifest = pd.read_csv(tmp_path / "sequences" / "panoptes_manifest.csv", keep_default_na=False)
    assert "nan" not in manifest.to_numpy().astype(str)


def test_a_redrawn_object_keeps_no_epoch_image_of_an_unlisted_drawing(
    demo_repo, sources, multi_epoch_object, tmp_path
):
    """Epoch images a killed run left in an object's directory (no table
    lists them) are removed when the object is drawn again, and so are
    the partial files of interrupted writes."""
    import os

    from lsst.analysis.ap.outputs.atomic import STALE_TEMPORARY_SECONDS, TEMP_SUFFIX

    first = _run(demo_repo, sources, [multi_epoch_object], tmp_path)
    directory = tmp_path / "sequences" / str(multi_epoch_object)
    orphan = directory / "epoch041_visit9999.png"
    orphan.write_bytes((directory / "contact_sheet.png").read_bytes())
    partial = directory / f".animation.gif.someone{TEMP_SUFFIX}"
    partial.write_bytes(b"GIF8")
    old = time.time() - STALE_TEMPORARY_SECONDS - 60
    os.utime(partial, (old, old))
    again = _run(demo_repo, sources, [multi_epoch_object], tmp_path)
    assert again.objects["status"].tolist() == ["written"]
    assert not orphan.exists() and not partial.exists()
    drawn = sorted(p.relative_to(tmp_path).as_posix() for p in directory.glob("epoch*.png"))
    assert drawn == sorted(first.epochs["path"]) == sorted(again.epochs["path"])


def test_an_object_that_fails_while_its_products_are_written_keeps_none(
    demo_repo, sources, multi_epoch_object, tmp_path, monkeypatch
):
    """An error after the contact sheet was written (here the animation
    encoder failing, a fault no real input makes now that the frame time
    is bounded) fails the object and removes what it had written."""
    from lsst.analysis.ap.sequences import task as task_module

    def failing(*args, **kwargs):
        raise RuntimeError("encoder failed")

    monkeypatch.setattr(task_module, "animation_bytes", failing)
    result = _run(demo_repo, sources, [multi_epoch_object], tmp_path)
    reason = "cannot draw the sequence: RuntimeError: encoder failed"
    assert result.objects["status"].tolist() == ["failed"]
    assert result.objects["reason"].tolist() == [reason]
    assert not list((tmp_path / "sequences" / str(multi_epoch_object)).glob("*.*"))
    epochs = pd.read_csv(tmp_path / "sequences" / "epochs.csv", keep_default_na=False)
    assert len(epochs) > 1
    assert epochs["status"].tolist() == ["failed"] * len(epochs)
    assert epochs["reason"].tolist() == [reason] * len(epochs)
    assert epochs["path"].tolist() == [""] * len(epochs)


def test_a_frame_time_beyond_what_gif_stores_is_refused():
    """GIF stores a frame's time in hundredths of a second, in 16 bits:
    655350 ms at most (a larger value failed every object)."""
    import lsst.pex.config as pexConfig

    config = PlotDiaObjectSequencesConfig()
    config.frame_duration_ms = 655_350
    with pytest.raises(pexConfig.FieldValidationError, match="frame_duration_ms"):
        config.frame_duration_ms = 655_351


def test_the_tables_lock_is_checked_before_any_drawing_and_never_followed(
    demo_repo, sources, multi_epoch_object, tmp_path
):
    """A lock file that is a link is not followed (nothing is created where
    it points), and a lock file that cannot be made stops the run before
    any object is drawn, with the system's own reason."""
    import subprocess

    from lsst.analysis.ap.outputs.store import OutputError

    (tmp_path / "sequences").mkdir()
    target = tmp_path / "elsewhere" / "lock"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "sequences" / ".tables.lock").symlink_to(target)
    with pytest.raises(OutputError, match=r"cannot open the lock file .*\.tables\.lock: "):
        _run(demo_repo, sources, [multi_epoch_object], tmp_path)
    assert not target.exists()
    assert not (tmp_path / "sequences" / str(multi_epoch_object)).exists()

    locked_out = tmp_path / "immutable"
    (locked_out / "sequences").mkdir(parents=True)
    if subprocess.run(["chattr", "+i", str(locked_out / "sequences")]).returncode:
        pytest.skip("chattr +i is not available on this file system")
    try:
        with pytest.raises(OutputError, match=r"\.tables\.lock: Operation not permitted$"):
            _run(demo_repo, sources, [multi_epoch_object], locked_out)
    finally:
        subprocess.run(["chattr", "-i", str(locked_out / "sequences")], check=True)
    assert not (locked_out / "sequences" / str(multi_epoch_object)).exists()


def test_manifests_keep_object_ids_beyond_int64_beside_negative_ones():
    """The manifests' ``#diaObjectId`` is exact for ids beyond 2**63 - 1,
    also beside a negative id (it was -1, or an OverflowError)."""
    from lsst.analysis.ap.sequences.products import sequence_manifests

    objects = pd.DataFrame(
        {
            "diaObjectId": pd.Series([2**64 - 1, -5], dtype=object),
            "ra": [1.0, 2.0],
            "dec": [3.0, 4.0],
            "frames": ["sequences/a/epoch000_visit1.png", float("nan")],
        }
    )
    subject_set, panoptes = sequence_manifests(objects, "https://example.org/")
    assert panoptes["#diaObjectId"].tolist() == [2**64 - 1, -5]
    assert subject_set["#diaObjectId"].tolist() == [2**64 - 1, -5]
    assert panoptes["file:1"].tolist() == ["sequences/a/epoch000_visit1.png", ""]
    assert panoptes["#n_epochs"].tolist() == [1, 0]


def test_an_emptied_table_of_an_earlier_run_is_said(demo_repo, sources, multi_epoch_object, tmp_path, caplog):
    """objects.csv emptied (0 bytes) since the last run: the next run says
    that the earlier objects are no longer listed (it was silent)."""
    _run(demo_repo, sources, [multi_epoch_object], tmp_path)
    (tmp_path / "sequences" / "objects.csv").write_bytes(b"")
    other = int(sources.loc[sources["diaObjectId"] != multi_epoch_object, "diaObjectId"].iloc[0])
    with caplog.at_level("WARNING"):
        _run(demo_repo, sources, [other], tmp_path)
    assert (
        f"sequences/objects.csv of an earlier run is empty; the objects earlier runs drew into {tmp_path} "
        "are no longer listed (their products stay)."
    ) in caplog.text
    assert pd.read_csv(tmp_path / "sequences" / "objects.csv")["diaObjectId"].tolist() == [other]


def test_an_object_with_more_epochs_than_a_contact_sheet_holds_fails_before_its_pixels_are_read(
    demo_repo, sources, multi_epoch_object, tmp_path, monkeypatch
):
    """Image readers open images of up to `PIL.Image.MAX_IMAGE_PIXELS`
    (lowered here to rows of one or a few epochs).  An object with more
    epochs to draw than a contact sheet can hold fails as soon as one too
    many is opened: no pixel is read, the epochs left are not opened, and
    the object and every epoch say why, with the largest max_epochs that
    fits.  An epoch whose images are missing does not count, and keeps its
    own reason; without a limit (None) every epoch is drawn."""
    from lsst.analysis.ap.images.butler import ImageUnavailableError
    from lsst.analysis.ap.sequences import task as task_module

    opened, cut = [], []
    readers = PlotDiaObjectSequencesTask._readers
    missing = set()

    def counted(self, butler, epoch):
        opened.append(int(epoch["visit"]))
        if int(epoch["visit"]) in missing:
            raise ImageUnavailableError(f"no images of visit {epoch['visit']} (removed)")
        return readers(self, butler, epoch)

    cut_aligned = task_module.cut_aligned

    def counted_cut(reader, *args, **kwargs):
        cut.append(reader)
        return cut_aligned(reader, *args, **kwargs)

    monkeypatch.setattr(PlotDiaObjectSequencesTask, "_readers", counted)
    monkeypatch.setattr(task_module, "cut_aligned", counted_cut)
    default = PlotDiaObjectSequencesTask(config=PlotDiaObjectSequencesConfig(), output_path=tmp_path / "d")
    # The figure the config's and the sequences page's text give.
    assert default._most_sheet_epochs() == 633
    row = default._canvas_size
    visits = sorted(int(v) for v in sources.loc[sources["diaObjectId"] == multi_epoch_object, "visit"])
    assert len(visits) >= 3

    def pixels(n_epochs):
        width, height = contact_sheet_size(row, n_epochs)
        return width * height

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pixels(1))  # one epoch
    result = _run(demo_repo, sources, [multi_epoch_object], tmp_path / "one")
    epochs = result.epochs
    assert len(epochs) == len(visits) and set(epochs["status"]) == {"failed"}
    assert opened == visits[:2] and cut == []
    reason = (
        "more than 1 epoch to draw: a contact sheet holds at most 1 at this size and panel_pixels, as "
        f"image readers open no image of more than {pixels(1):,} pixels; set max_epochs to at most 1"
    )
    assert result.objects["reason"].tolist() == [reason]
    assert epochs["reason"].tolist() == [reason] * len(visits)
    written = pd.read_csv(tmp_path / "one" / "sequences" / "epochs.csv")
    assert written["reason"].tolist() == [reason] * len(visits)

    # Room for all epochs but one, and the first epoch's images missing:
    # the sheet is drawn, exactly at the limit.
    opened.clear()
    missing.add(visits[0])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pixels(len(visits) - 1))
    result = _run(demo_repo, sources, [multi_epoch_object], tmp_path / "missing")
    assert result.objects["status"].tolist() == ["written"], result.objects["reason"].tolist()
    epochs = result.epochs.set_index("visit")
    assert epochs.loc[visits[0], "reason"] == f"no images of visit {visits[0]} (removed)"
    assert (epochs.loc[visits[1:], "status"] == "written").all()
    with Image.open(tmp_path / "missing" / result.objects["contact_sheet"].iloc[0]) as sheet:
        assert sheet.width * sheet.height == pixels(len(visits) - 1)

    opened.clear()
    missing.clear()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    result = _run(demo_repo, sources, [multi_epoch_object], tmp_path / "unlimited")
    assert result.objects["status"].tolist() == ["written"] and opened == visits
    assert set(result.epochs["status"]) == {"written"}


def test_workers_beyond_the_cores_are_capped_with_one_warning(
    demo_repo, sources, multi_epoch_object, tmp_path, monkeypatch, caplog
):
    from lsst.analysis.ap import parallel

    monkeypatch.setattr(parallel, "available_cores", lambda: 1)
    with caplog.at_level(logging.WARNING):
        result = _run(demo_repo, sources, [multi_epoch_object], tmp_path, njobs=3)
    assert result.objects["status"].tolist() == ["written"]
    warned = [r.getMessage() for r in caplog.records if "njobs" in r.getMessage()]
    assert warned == ["njobs=3 is more than the 1 core(s) this process may run on; using njobs=1."]


def test_command_line(demo_repo, tmp_path):
    import subprocess
    import sys

    command = [
        sys.executable,
        "-m",
        "lsst.analysis.ap.sequences.cli",
        str(demo_repo.root),
        str(tmp_path),
        "--collections",
        demo_repo.collection,
        "--sqlitefile",
        str(demo_repo.apdb_file),
        "--most-epochs",
        "2",
        "-c",
        "frame_duration_ms=300",
        "-j",
        "2",
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "2 DiaObject(s): 2 written, 0 failed" in done.stdout
    objects = pd.read_csv(tmp_path / "sequences" / "objects.csv")
    for gif in objects["gif"]:
        with Image.open(tmp_path / gif) as animation:
            animation.seek(1)
            assert animation.info["duration"] == 300
    bad = subprocess.run(command[:7], capture_output=True, text=True)  # no objects asked for
    assert bad.returncode == 2 and "give DiaObjects" in bad.stderr


def test_a_table_without_times_is_refused_before_any_work(demo_repo, sources, multi_epoch_object, tmp_path):
    """No midpointMjdTai column: refused as a table error (the command's exit
    2), not a failure of every object (exit 3)."""
    from lsst.analysis.ap.sources import SourceTableError

    with pytest.raises(SourceTableError, match="catalog x.csv has no 'midpointMjdTai' column"):
        task = PlotDiaObjectSequencesTask(config=PlotDiaObjectSequencesConfig(), output_path=tmp_path)
        with demo_repo.butler() as butler:
            task.run(
                [multi_epoch_object], butler, sources.drop(columns="midpointMjdTai"), origin="catalog x.csv"
            )
    assert not (tmp_path / "sequences").exists()
    for asked in (3.5, True, "x7"):
        with pytest.raises(SourceTableError, match=f"diaObjectId {asked!r} asked for is not an integer"):
            with demo_repo.butler() as butler:
                task.run([multi_epoch_object, asked], butler, sources)
    assert not (tmp_path / "sequences").exists()


def test_sources_left_out_for_their_coordinates_are_epochs_with_a_reason(
    demo_repo, sources, multi_epoch_object, tmp_path
):
    """A DiaSource whose position cannot be used is an epoch of its object
    that was not drawn, with the reason, not only a log line; an object all
    of whose DiaSources are such fails with them."""
    rows = sources[sources["diaObjectId"] == multi_epoch_object]
    catalog = sources.copy()
    catalog.loc[rows.index[0], "ra"] = np.nan
    single = sources.groupby("diaObjectId").size().pipe(lambda c: c[c == 1].index[0])
    catalog.loc[catalog["diaObjectId"] == single, "dec"] = np.inf
    result = _run(
        demo_repo, catalog, [multi_epoch_object, int(single)], tmp_path, include_non_detections=True
    )
    epochs = result.epochs
    bad = int(rows["diaSourceId"].iloc[0])
    mine = epochs[epochs["diaObjectId"] == multi_epoch_object]
    assert len(mine) == len(rows)
    # Its visit is not a non-detection as well.
    assert not epochs.duplicated(["diaObjectId", "visit", "detector"]).any(), epochs
    (lost,) = mine[mine["status"] == "failed"].to_dict("records")
    assert lost["reason"] == f"diaSourceId {bad} cannot be drawn: 'ra' is null or NaN"
    objects = result.objects.set_index("diaObjectId")
    assert objects.loc[multi_epoch_object, "status"] == "written"
    assert objects.loc[multi_epoch_object, "n_epochs_failed"] == 1
    assert objects.loc[single, "status"] == "failed"
    assert "'dec' inf is not finite" in objects.loc[single, "reason"]
    assert epochs.loc[epochs["diaObjectId"] == single, "status"].tolist() == ["failed"]


def test_an_object_across_ra_zero_is_placed_near_ra_zero(demo_repo, sources, multi_epoch_object, tmp_path):
    """DiaSources 0.7 arcsec apart on both sides of RA 0/360: the object is
    placed at RA 0, not at RA 180 (the mean of the angles)."""
    catalog = sources.copy()
    rows = catalog["diaObjectId"] == multi_epoch_object
    catalog.loc[rows, "ra"] = np.where(np.arange(rows.sum()) % 2, 359.9999, 0.0001)
    result = _run(demo_repo, catalog, [multi_epoch_object], tmp_path)
    (record,) = result.objects.to_dict("records")
    assert min(record["ra"], 360.0 - record["ra"]) < 1e-4, record["ra"]


def test_command_refuses_an_object_id_beyond_64_bits(demo_repo, tmp_path, capsys):
    from lsst.analysis.ap.sequences.cli import main

    with pytest.raises(SystemExit) as stop:
        main([str(demo_repo.root), str(tmp_path), "--diaObjectId", str(2**64)])
    assert stop.value.code == 2
    assert "expects an integer from -9223372036854775808 to 18446744073709551615" in capsys.readouterr().err


def test_command_refuses_an_apdb_of_another_instrument(demo_repo, tmp_path, capsys):
    """An APDB whose metadata names an instrument the repository lacks stops
    the command before any work, as plotImageSubtractionCutouts does (every
    epoch failed with "not found" before)."""
    import shutil
    import sqlite3

    from lsst.analysis.ap.sequences.cli import main

    apdb = tmp_path / "apdb.sqlite3"
    shutil.copy(demo_repo.apdb_file, apdb)
    with sqlite3.connect(apdb) as connection:
        connection.execute("UPDATE metadata SET value = 'HSC' WHERE name = 'instrument'")
    argv = [str(demo_repo.root), str(tmp_path / "out"), "--collections", demo_repo.collection]
    assert main([*argv, "--sqlitefile", str(apdb), "--diaObjectId", "1"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"plotDiaObjectSequences: APDB sqlite:///{apdb} holds DiaSources of instrument 'HSC', which Butler "
        f"repository {demo_repo.root} does not have (it has: {demo_repo.spec.instrument})."
    )
    assert not (tmp_path / "out" / "sequences").exists()


@pytest.mark.parametrize("big_ids", [False, True])
def test_vetting_page_shows_the_frames(demo_repo, sources, multi_epoch_object, tmp_path, big_ids):
    """The page of the cutout run in the same directory gives each source
    of the object its frames, with object ids beyond 2**63 - 1 too (they
    were wrapped, or refused with a warning, and no frame shown)."""
    from lsst.analysis.ap import PlotImageSubtractionCutoutsTask

    object_id = 2**63 + 9 if big_ids else multi_epoch_object
    table = sources.copy()
    if big_ids:
        ids = [object_id if int(i) == multi_epoch_object else int(i) for i in table["diaObjectId"]]
        table["diaObjectId"] = np.array(ids, dtype=np.uint64)
    with demo_repo.butler() as butler:
        PlotImageSubtractionCutoutsTask(output_path=tmp_path).run(table, butler)
    result = _run(demo_repo, table, [object_id], tmp_path)
    page_data = (tmp_path / "vetting" / "records.js").read_text()
    frames = result.objects.iloc[0]["frames"]
    assert frames and page_data.count(frames) == int((table["diaObjectId"] == object_id).sum())
    assert result.objects.iloc[0]["contact_sheet"] in page_data


def test_a_later_cutout_run_keeps_the_frames_on_the_page(
    demo_repo, sources, multi_epoch_object, tmp_path, caplog
):
    """Cutouts, then sequences, then cutouts again into one directory: the
    page the last run writes still gives each source of the object its
    frames (it showed none: the page was rebuilt from that run's sources,
    which have no frames)."""
    import warnings

    from lsst.analysis.ap import PlotImageSubtractionCutoutsTask
    from lsst.analysis.ap.vetting import cli as vetting_cli
    from lsst.analysis.ap.vetting import write_output_vetting_page

    with demo_repo.butler() as butler:
        PlotImageSubtractionCutoutsTask(output_path=tmp_path).run(sources, butler)
        result = _run(demo_repo, sources, [multi_epoch_object], tmp_path)
        frames = result.objects.iloc[0]["frames"]
        assert frames
        after_sequences = _page_rows(tmp_path)
        PlotImageSubtractionCutoutsTask(output_path=tmp_path).run(sources, butler)
    page = _page_rows(tmp_path)
    of_object = page["diaObjectId"] == str(multi_epoch_object)
    assert of_object.sum() == (sources["diaObjectId"] == multi_epoch_object).sum()
    assert set(page.loc[of_object, "frame_paths"]) == {frames}
    assert set(page.loc[~of_object, "frame_paths"]) == {""}
    assert page["sequence_path"].tolist() == after_sequences["sequence_path"].tolist()
    # Without a catalog, the epochs drawn say which sources are the
    # object's (cutoutVetting page took the frames off).
    assert vetting_cli.main(["page", str(tmp_path)]) == 0
    page = _page_rows(tmp_path)
    detected = result.epochs[result.epochs["detected"]]
    with_frames = page["frame_paths"] == frames
    assert sorted(page.loc[with_frames, "diaSourceId"]) == sorted(str(i) for i in detected["diaSourceId"])
    assert set(page.loc[~with_frames, "frame_paths"]) == {""}
    # A catalog's own frames stay on the sources of objects without a
    # sequence here, and ids that are not integers ("+-5", null) get none.
    catalog = sources.assign(frame_paths="mine/a.png;mine/b.png", sequence_path="mine/sheet.png")
    catalog["diaObjectId"] = catalog["diaObjectId"].astype(object)
    catalog.loc[catalog.index[:2], "diaObjectId"] = ["+-5", None]
    write_output_vetting_page(tmp_path, catalog)
    page = _page_rows(tmp_path)
    of_object = page["diaObjectId"] == str(multi_epoch_object)
    assert set(page.loc[of_object, "frame_paths"]) == {frames}
    assert set(page.loc[~of_object, "frame_paths"]) == {"mine/a.png;mine/b.png"}
    assert set(page.loc[~of_object, "sequence_path"]) == {"mine/sheet.png"}
    # A wide catalog read from CSV (over 100 columns, as an APDB export):
    # pandas warned against inserting the frame columns into it.
    wide = pd.concat(
        [sources, pd.DataFrame({f"extra{i}": 0.5 for i in range(100)}, index=sources.index)], axis=1
    )
    wide.to_csv(tmp_path / "wide.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        assert vetting_cli.main(["page", str(tmp_path), "--catalog", str(tmp_path / "wide.csv")]) == 0
    assert set(_page_rows(tmp_path).loc[of_object, "frame_paths"]) == {frames}
    # An object of sequences/objects.csv whose id is not one is named.
    objects_file = tmp_path / "sequences" / "objects.csv"
    objects = pd.read_csv(objects_file, dtype=str, keep_default_na=False)
    pd.concat([objects, objects.assign(diaObjectId="x7")]).to_csv(objects_file, index=False)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lsst.analysis.ap.vetting.page"):
        write_output_vetting_page(tmp_path, sources)
    assert [r.getMessage() for r in caplog.records if r.name == "lsst.analysis.ap.vetting.page"] == [
        f"{objects_file}: 1 written object(s) have a diaObjectId that is not an integer ('x7'); the page "
        "shows no frames for them."
    ]
    assert set(_page_rows(tmp_path).loc[of_object, "frame_paths"]) == {frames}


def test_sources_without_instrument_are_of_the_repositorys_only_instrument(
    demo_repo, demo_sources, multi_epoch_object, tmp_path
):
    assert "instrument" not in demo_sources.columns
    result = _run(demo_repo, demo_sources, [multi_epoch_object], tmp_path)
    record = result.objects.iloc[0]
    assert record["status"] == "written", record["reason"]
    assert int(record["n_epochs"]) == int((demo_sources["diaObjectId"] == multi_epoch_object).sum())


def test_repeated_dia_source_ids_are_refused_naming_the_rows(
    demo_repo, sources, multi_epoch_object, tmp_path
):
    from lsst.analysis.ap.sources import SourceTableError

    rows = sources[sources["diaObjectId"] == multi_epoch_object]
    repeated = pd.concat([rows, rows.iloc[[0]]], ignore_index=True)
    with pytest.raises(
        SourceTableError, match=r"^DiaSource table: column 'diaSourceId' must be unique.*rows 0, "
    ):
        _run(demo_repo, repeated, [multi_epoch_object], tmp_path)
    assert not (tmp_path / "sequences").exists()


def test_sources_without_dia_object_id_are_refused_naming_the_column(demo_repo, sources, tmp_path):
    import subprocess
    import sys

    from lsst.analysis.ap.sources import SourceTableError

    with pytest.raises(SourceTableError, match=r"^DiaSource table: no 'diaObjectId' column"):
        _run(demo_repo, sources.drop(columns="diaObjectId"), [1], tmp_path)
    catalog = tmp_path / "no_object_ids.csv"
    sources.drop(columns="diaObjectId").to_csv(catalog, index=False)
    for asked in (["--diaObjectId", "5"], ["--most-epochs", "1"]):
        command = [sys.executable, "-m", "lsst.analysis.ap.sequences.cli", str(demo_repo.root)]
        command += [str(tmp_path / "out"), "--collections", demo_repo.collection, "--catalog", str(catalog)]
        done = subprocess.run([*command, *asked], capture_output=True, text=True)
        assert done.returncode == 2, done.stderr
        assert f"plotDiaObjectSequences: catalog {catalog}: no 'diaObjectId' column" in done.stderr
        assert "Traceback" not in done.stderr


def test_command_epoch_window_and_log_options(demo_repo, sources, multi_epoch_object, tmp_path):
    """--mjd-min on a catalog whose midpointMjdTai holds text stops with one
    line naming the column and row; --log-level and --log-file work as in
    the other commands, and a bad level is a usage error."""
    import subprocess
    import sys

    table = sources.copy()
    table["midpointMjdTai"] = table["midpointMjdTai"].astype(object)
    table.loc[4, "midpointMjdTai"] = "tonight"
    catalog = tmp_path / "sources.csv"
    table.to_csv(catalog, index=False)
    command = [
        sys.executable,
        "-m",
        "lsst.analysis.ap.sequences.cli",
        str(demo_repo.root),
        str(tmp_path / "out"),
    ]
    command += ["--collections", demo_repo.collection, "--catalog", str(catalog)]
    command += ["--diaObjectId", str(multi_epoch_object), "--mjd-min", "0"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"plotDiaObjectSequences: catalog {catalog}: cannot select on 'midpointMjdTai': not a number in "
        f"row 4 (diaSourceId {int(table['diaSourceId'].iloc[4])}) ('tonight'; selection: "
        "midpointMjdTai >= 0.0)."
    ]
    sources.to_csv(catalog, index=False)
    log = tmp_path / "run.log"
    line = f"lsst.plotDiaObjectSequences: diaObjectId {multi_epoch_object}: written"
    logged = subprocess.run([*command, "--log-file", str(log)], capture_output=True, text=True)
    assert logged.returncode == 0, logged.stderr
    assert line in logged.stderr and line in log.read_text()
    quiet = subprocess.run([*command, "--log-level", "WARNING"], capture_output=True, text=True)
    assert quiet.returncode == 0, quiet.stderr
    assert line not in quiet.stderr
    bad = subprocess.run([*command, "--log-level", "LOUD"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "--log-level 'LOUD': unknown level 'LOUD'" in bad.stderr


@pytest.mark.parametrize("fluxes", [(-7226.0, -3809.0, -4952.0), (12.5, 250000.0, 3.0e7)])
def test_light_curve_points_and_labels_stay_in_their_places(fluxes):
    """Every point lies inside the frame, clear of its edges, at its band's
    colour; the flux labels lie wholly left of the frame; the legend is in
    wavelength order."""
    from lsst.analysis.ap.sequences.products import BAND_RGB, EpochLabel, light_curve

    labels = [
        EpochLabel(mjd=61000.1 + i, band=band, flux=flux, detected=True, visit=1001 + i, detector=0)
        for i, (band, flux) in enumerate(zip("gir", fluxes, strict=True))
    ]
    pixels = np.asarray(light_curve(labels, 712, 120)).astype(int)
    frame_grey = np.all(pixels == 150, axis=2)
    columns = np.flatnonzero(frame_grey.sum(axis=0) > 60)
    rows = np.flatnonzero(frame_grey.sum(axis=1) > 300)
    left, right, top, bottom = columns.min(), columns.max(), rows.min(), rows.max()
    for band in "gri":
        ys, xs = np.nonzero(np.all(pixels == BAND_RGB[band], axis=2)[top:, :])
        ys = ys + top  # the legend's dots are above the frame
        assert len(xs) > 10, band
        assert left + 3 <= xs.min() and xs.max() <= right - 3, band
        assert top + 3 <= ys.min() and ys.max() <= bottom - 3, band
    legend = [
        np.flatnonzero(np.all(pixels[:top] == BAND_RGB[band], axis=2).any(axis=0)).min() for band in "gri"
    ]
    assert legend == sorted(legend)  # in wavelength order, g r i
    text = np.all(pixels < 100, axis=2)
    text[: top - 2] = False  # the title
    text[bottom + 1 :] = False  # the MJD labels
    ys, xs = np.nonzero(text)
    assert len(xs) > 20 and xs.max() < left - 2


@pytest.mark.parametrize("mjd", [61000.1, -1.0e300])
def test_a_light_curve_of_one_time_puts_its_points_at_the_left(mjd):
    """Epochs all at one time are drawn at the frame's left edge, also at a
    time so large that a day more is the same number (a ZeroDivisionError
    failed the object)."""
    from lsst.analysis.ap.sequences.products import BAND_RGB, EpochLabel, light_curve

    labels = [
        EpochLabel(mjd=mjd, band=band, flux=flux, detected=True, visit=1001 + i, detector=0)
        for i, (band, flux) in enumerate(zip("gr", (150.0, 300.0), strict=True))
    ]
    pixels = np.asarray(light_curve(labels, 712, 120)).astype(int)
    frame_grey = np.all(pixels == 150, axis=2)
    columns = np.flatnonzero(frame_grey.sum(axis=0) > 60)
    rows = np.flatnonzero(frame_grey.sum(axis=1) > 300)
    left, top = columns.min(), rows.min()
    for band in "gr":
        ys, xs = np.nonzero(np.all(pixels == BAND_RGB[band], axis=2)[top:, :])
        assert len(xs) > 10 and left + 3 <= xs.min() and xs.max() <= left + 20, band


def test_epochs_without_a_time_are_recorded_not_placed(demo_repo, sources, multi_epoch_object, tmp_path):
    """An epoch whose midpointMjdTai is NaN or infinite cannot be ordered:
    it is not drawn (and never taken for the latest), it is listed in
    epochs.csv with the reason, and the light curve keeps the others."""
    rows = sources[sources["diaObjectId"] == multi_epoch_object].sort_values("midpointMjdTai")
    table = sources.copy()
    table.loc[rows.index[0], "midpointMjdTai"] = np.nan
    table.loc[rows.index[1], "midpointMjdTai"] = np.inf
    result = _run(demo_repo, table, [multi_epoch_object], tmp_path, max_epochs=2)
    epochs = result.epochs
    drawn = epochs[epochs["status"] == "written"]
    timed = [int(v) for v in rows["visit"].iloc[2:]]
    assert list(drawn["visit"]) == timed[-2:]  # the latest timed ones
    failed = epochs[epochs["status"] == "failed"].set_index("visit")
    assert sorted(failed.index) == sorted(int(v) for v in rows["visit"].iloc[:2])
    assert failed.loc[int(rows["visit"].iloc[0]), "reason"] == (
        "midpointMjdTai is nan, not a finite MJD: the epoch has no time"
    )
    record = result.objects.iloc[0]
    assert record["status"] == "written" and int(record["n_epochs_failed"]) == 2
    sheet = np.asarray(Image.open(tmp_path / record["contact_sheet"]).convert("RGB"))
    from lsst.analysis.ap.sequences.products import BAND_RGB

    curve = sheet[20:120]
    for band in drawn["band"]:
        assert np.all(curve == BAND_RGB[band], axis=2).sum() > 10, band


def test_runs_into_one_directory_keep_each_others_objects(demo_repo, sources, tmp_path):
    """A second run adds its objects to the directory's tables and
    manifests; an object drawn again replaces its rows, and its epoch
    images the new run did not draw are removed."""
    counts = sources.groupby("diaObjectId").size()
    first, second = (int(i) for i in counts[counts >= 3].index[:2])
    _run(demo_repo, sources, [first], tmp_path)
    _run(demo_repo, sources, [second], tmp_path)
    objects = pd.read_csv(tmp_path / "sequences" / "objects.csv")
    assert list(objects["diaObjectId"]) == [first, second]
    manifest = pd.read_csv(tmp_path / "sequences" / "manifest.csv")
    assert list(manifest["#diaObjectId"]) == [first, second]
    before = sorted((tmp_path / "sequences" / str(second)).glob("epoch*.png"))
    again = _run(demo_repo, sources, [second], tmp_path, max_epochs=1)
    assert again.summary["objects"] == 1
    objects = pd.read_csv(tmp_path / "sequences" / "objects.csv")
    assert list(objects["diaObjectId"]) == [first, second]
    assert list(objects["n_epochs"]) == [counts[first], 1]
    epochs = pd.read_csv(tmp_path / "sequences" / "epochs.csv")
    assert (epochs["diaObjectId"] == first).sum() == counts[first]
    assert (epochs["diaObjectId"] == second).sum() == 1
    after = sorted((tmp_path / "sequences" / str(second)).glob("epoch*.png"))
    assert len(before) == counts[second] and [p.relative_to(tmp_path).as_posix() for p in after] == list(
        epochs.loc[epochs["diaObjectId"] == second, "path"]
    )
    summary = json.loads((tmp_path / "sequences" / "summary.json").read_text())
    assert summary["objects"] == 2 and summary["epochs_drawn"] == counts[first] + 1


def test_runs_at_the_same_time_keep_each_others_objects(demo_repo, sources, tmp_path, monkeypatch):
    """Two runs into one directory at once, each merging its object into
    the tables while the other does (the time between reading and writing
    the tables widened to a second, as on slow storage): both objects stay
    listed.  Without the tables' lock, the run that wrote last dropped the
    other's object."""
    import threading

    counts = sources.groupby("diaObjectId").size()
    first, second = (int(i) for i in counts[counts >= 3].index[:2])
    merge = PlotDiaObjectSequencesTask._merge_earlier

    def slow_merge(self, objects, epochs):
        merged = merge(self, objects, epochs)  # the earlier tables are read
        time.sleep(1.0)
        return merged

    monkeypatch.setattr(PlotDiaObjectSequencesTask, "_merge_earlier", slow_merge)
    errors = []

    def run(object_id):
        try:
            _run(demo_repo, sources, [object_id], tmp_path)
        except Exception as error:
            errors.append(error)

    runs = [threading.Thread(target=run, args=(object_id,)) for object_id in (first, second)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(timeout=300)
    assert not errors
    objects = pd.read_csv(tmp_path / "sequences" / "objects.csv")
    assert sorted(objects["diaObjectId"]) == sorted([first, second])
    epochs = pd.read_csv(tmp_path / "sequences" / "epochs.csv")
    assert sorted(set(epochs["diaObjectId"])) == sorted([first, second])
    manifest = pd.read_csv(tmp_path / "sequences" / "manifest.csv")
    assert sorted(manifest["#diaObjectId"]) == sorted([first, second])


def test_object_ids_as_text_are_read_and_fractions_refused(demo_repo, sources, multi_epoch_object, tmp_path):
    """A catalog whose diaObjectId column holds integer text (and nulls)
    draws its objects; a fraction stops the run naming the column and rows
    (it was truncated to another object)."""
    from lsst.analysis.ap.sources import SourceTableError

    as_text = sources.assign(diaObjectId=[str(int(i)) for i in sources["diaObjectId"]])
    as_text.loc[as_text.index[-1], "diaObjectId"] = None
    result = _run(demo_repo, as_text, [multi_epoch_object], tmp_path)
    record = result.objects.iloc[0]
    assert record["status"] == "written", record["reason"]
    expected = sources.iloc[:-1]
    assert int(record["n_epochs"]) == int((expected["diaObjectId"] == multi_epoch_object).sum())
    fraction = sources.assign(diaObjectId=sources["diaObjectId"].astype(float))
    fraction.loc[fraction.index[2], "diaObjectId"] = multi_epoch_object + 0.7
    with pytest.raises(
        SourceTableError,
        match=rf"^DiaSource table: column 'diaObjectId' must hold integers \(or nulls\): row 2: "
        rf"{multi_epoch_object + 0.7!r} is not a whole number",
    ):
        _run(demo_repo, fraction, [multi_epoch_object], tmp_path / "f")


def test_merged_tables_keep_big_object_ids_and_a_failed_redraw_leaves_no_products(
    demo_repo, sources, multi_epoch_object, tmp_path
):
    """Object ids beyond 2**63 - 1 stay exact when runs are merged (they
    became floats); an object that fails when drawn again keeps no product
    of its earlier drawing (its contact sheet and animations stayed)."""
    big = 2**63 + 9
    table = sources.copy()
    table["diaObjectId"] = [big if int(i) == multi_epoch_object else int(i) for i in table["diaObjectId"]]
    table["diaObjectId"] = table["diaObjectId"].astype(np.uint64)
    other = int(sources.loc[sources["diaObjectId"] != multi_epoch_object, "diaObjectId"].iloc[0])
    _run(demo_repo, table, [big, other], tmp_path)
    _run(demo_repo, table, [big], tmp_path)
    objects = pd.read_csv(tmp_path / "sequences" / "objects.csv", dtype={"diaObjectId": str})
    assert sorted(objects["diaObjectId"]) == sorted([str(big), str(other)])
    products = tmp_path / "sequences" / str(other)
    assert (products / "contact_sheet.png").exists()
    failing = table[table["diaObjectId"] != other]  # the object has no DiaSource now
    again = _run(demo_repo, failing, [other], tmp_path)
    assert again.objects.iloc[0]["status"] == "failed"
    assert not list(products.glob("*.png")) and not list(products.glob("*.gif"))
    objects = pd.read_csv(tmp_path / "sequences" / "objects.csv", dtype={"diaObjectId": str})
    assert dict(zip(objects["diaObjectId"], objects["status"], strict=True)) == {
        str(big): "written",
        str(other): "failed",
    }


def _apdb_copy(demo_repo, tmp_path, *statements):
    """A copy of the demo APDB with ``statements`` applied."""
    import shutil
    import sqlite3

    apdb = tmp_path / "apdb.sqlite3"
    shutil.copy(demo_repo.apdb_file, apdb)
    with sqlite3.connect(apdb) as connection:
        for statement in statements:
            connection.execute(statement)
    return apdb


def test_sources_of_no_object_are_never_drawn_as_one(demo_repo, sources, tmp_path, capsys):
    """diaObjectId 0 marks the DiaSources association left without an
    object (Solar System sources): --most-epochs, --ra/--dec and the task
    never take them for one object's epochs (the 0 "object" had the most
    sources and was drawn first), and asking for it says why not."""
    from lsst.analysis.ap.sequences.cli import main

    # Seven sources of different objects become sources of no object: more
    # than any object has.
    unassociated = sources.drop_duplicates("diaObjectId").head(7)
    listed = ", ".join(str(int(i)) for i in unassociated["diaSourceId"])
    apdb = _apdb_copy(
        demo_repo, tmp_path, f"UPDATE DiaSource SET diaObjectId = 0 WHERE diaSourceId IN ({listed})"
    )
    catalog = tmp_path / "catalog.parquet"
    table = sources.copy()
    table.loc[table["diaSourceId"].isin(unassociated["diaSourceId"]), "diaObjectId"] = 0
    table.to_parquet(catalog)
    counts = table[table["diaObjectId"] != 0].groupby("diaObjectId").size()
    most = int(counts.sort_values(ascending=False, kind="stable").index[0])
    argv = [str(demo_repo.root), "--collections", demo_repo.collection]
    for origin in (["--sqlitefile", str(apdb)], ["--catalog", str(catalog)]):
        out = tmp_path / origin[0].strip("-")
        assert main([argv[0], str(out), *argv[1:], *origin, "--most-epochs", "1"]) == 0
        objects = pd.read_csv(out / "sequences" / "objects.csv")
        assert objects["diaObjectId"].tolist() == [most]
        # Only a source of no object at this position: nothing matches.
        row = unassociated.iloc[0]
        near = ["--ra", repr(float(row["ra"])), "--dec", repr(float(row["dec"])), "--radius", "0.01"]
        assert main([argv[0], str(out), *argv[1:], *origin, *near]) == 2
        assert "no DiaObject of" in capsys.readouterr().err
        assert main([argv[0], str(out), *argv[1:], *origin, "--diaObjectId", "0"]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line == (
            "plotDiaObjectSequences: --diaObjectId 0 is not a DiaObject: it marks the DiaSources that "
            "belong to no DiaObject (such as those of Solar System objects)"
        )
    result = _run(demo_repo, table, [0, most], tmp_path / "task")
    assert result.objects["status"].tolist() == ["failed", "written"]
    assert result.objects.iloc[0]["reason"].startswith("diaObjectId 0 is not a DiaObject")
    assert not (tmp_path / "task" / "sequences" / "0").exists()


def test_an_apdb_is_asked_for_the_objects_sources_only(demo_repo, sources, multi_epoch_object, tmp_path):
    """The command asks an APDB, in SQL, for the DiaSources of the objects
    it draws and of the visits of the cutout run whose page it rewrites;
    it never reads the DiaSource table whole.  A damaged row of another
    object (an id stored as text) stopped the whole command before, as
    every row was read; the page keeps the catalog values of the other
    objects' sources."""
    import sqlalchemy

    from lsst.analysis.ap.cli import main as cutouts_main
    from lsst.analysis.ap.sequences.cli import main

    apdb = _apdb_copy(demo_repo, tmp_path)
    out = tmp_path / "out"
    argv = [str(demo_repo.root), str(out), "--collections", demo_repo.collection, "--sqlitefile", str(apdb)]
    assert cutouts_main([*argv, "--all"]) == 0
    before = _page_rows(out)
    other = sources[sources["diaObjectId"] != multi_epoch_object].iloc[0]
    _apdb_copy(
        demo_repo,
        tmp_path,
        f"UPDATE DiaSource SET diaObjectId = 'x{int(other['diaObjectId'])}' "
        f"WHERE diaSourceId = {int(other['diaSourceId'])}",
    )
    statements = []

    def seen(connection, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()))

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", seen)
    try:
        assert main([*argv, "--diaObjectId", str(multi_epoch_object)]) == 0
        assert main([*argv, "--most-epochs", "2"]) == 0
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", seen)
    reads = [s for s in statements if 'FROM "DiaSource"' in s and "count(*)" not in s]
    assert reads and all(" WHERE " in s for s in reads), reads
    assert any(f'"diaObjectId" IN ({multi_epoch_object})' in s for s in reads), reads
    visits = ", ".join(str(v) for v in sorted(sources["visit"].unique()))
    assert any(f'"DiaSource".visit IN ({visits})' in s for s in reads), reads
    objects = pd.read_csv(out / "sequences" / "objects.csv").set_index("diaObjectId")
    drawn = objects[objects["status"] == "written"]
    assert multi_epoch_object in drawn.index and len(drawn) == 2
    after = _page_rows(out)
    for object_id, row in drawn.iterrows():
        of_object = after["diaObjectId"] == str(object_id)
        assert set(after.loc[of_object, "frame_paths"]) == {row["frames"]}
    # Every other value of the page is as the cutout run wrote it, the
    # catalog values of every source included.
    kept = [name for name in before.columns if name not in ("frame_paths", "sequence_path")]
    assert len(kept) > 15 and {"reliability", "psfFlux"} <= set(kept)
    unchanged = after["diaSourceId"] != str(int(other["diaSourceId"]))
    pd.testing.assert_frame_equal(before.loc[unchanged, kept], after.loc[unchanged, kept])


def test_a_page_whose_sources_cannot_be_read_is_left_as_it_was(
    demo_repo, multi_epoch_object, tmp_path, capsys
):
    """When the visits of the cutout run in the directory cannot be read
    (a damaged records.csv), the sequences are drawn and its page is left
    as it was, with a warning; it was rewritten with the objects' sources
    only, which took every other source's catalog values off it."""
    from lsst.analysis.ap.cli import main as cutouts_main
    from lsst.analysis.ap.sequences.cli import main

    out = tmp_path / "out"
    argv = [str(demo_repo.root), str(out), "--collections", demo_repo.collection]
    argv += ["--sqlitefile", str(demo_repo.apdb_file)]
    assert cutouts_main([*argv, "--all"]) == 0
    page = (out / "vetting" / "records.js").read_bytes()
    records = pd.read_csv(out / "records.csv", dtype=str, keep_default_na=False)
    expected = f"The vetting page of the cutout run in {out} is not rewritten with the sequences: its "
    damaged = {
        "a visit that is not a number": (
            records.assign(visit=["abc", *records["visit"].iloc[1:]]),
            f"{out / 'records.csv'}: column 'visit' must hold integers: row 0: 'abc' is not an integer.",
        ),
        "no visit column": (
            records.rename(columns={"visit": "vizit"}),
            f"{out / 'records.csv'}: Usecols do not match columns",
        ),
    }
    for table, reason in damaged.values():
        table.to_csv(out / "records.csv", index=False)
        capsys.readouterr()
        assert main([*argv, "--diaObjectId", str(multi_epoch_object)]) == 0
        assert (out / "vetting" / "records.js").read_bytes() == page
        warned = [line for line in capsys.readouterr().err.splitlines() if " WARNING " in line]
        assert len(warned) == 1 and f"{expected}DiaSources cannot be read ({reason}" in warned[0], warned
    objects = pd.read_csv(out / "sequences" / "objects.csv")
    assert objects["status"].tolist() == ["written"]


def test_a_damaged_row_of_an_object_not_asked_for_is_not_read(demo_repo, sources, tmp_path, capsys):
    """A diaObjectId stored as text in a row of another object, at the
    declination of --ra/--dec but outside its radius, no longer stops the
    command; when --most-epochs counts it, the message names its
    diaSourceId (the band's row number meant nothing)."""
    import shutil
    import sqlite3

    from lsst.analysis.ap.sequences.cli import main

    target, other = sources.drop_duplicates("diaObjectId").iloc[[0, 1]].to_dict("records")
    apdb = tmp_path / "apdb.sqlite3"
    shutil.copy(demo_repo.apdb_file, apdb)
    with sqlite3.connect(apdb) as connection:
        connection.execute(
            'UPDATE DiaSource SET "diaObjectId" = \'abc\', dec = ? WHERE "diaSourceId" = ?',
            (float(target["dec"]), int(other["diaSourceId"])),
        )
    argv = [str(demo_repo.root), str(tmp_path / "out"), "--collections", demo_repo.collection]
    argv += ["--sqlitefile", str(apdb)]
    near = ["--ra", repr(float(target["ra"])), "--dec", repr(float(target["dec"])), "--radius", "0.5"]
    assert main([*argv, *near]) == 0
    objects = pd.read_csv(tmp_path / "out" / "sequences" / "objects.csv")
    assert objects["diaObjectId"].tolist() == [int(target["diaObjectId"])]
    capsys.readouterr()
    assert main([*argv, "--most-epochs", "1000"]) == 2
    (line,) = [
        line for line in capsys.readouterr().err.splitlines() if line.startswith("plotDiaObjectSequences:")
    ]
    assert line == (
        f"plotDiaObjectSequences: APDB sqlite:///{apdb}: column 'diaObjectId' must hold integers (or nulls): "
        f"'abc' is not an integer id (diaSourceId {int(other['diaSourceId'])}); the DiaSources of each "
        "DiaObject cannot be counted."
    )


def _page_rows(output):
    """The vetting page's table (its data file), one row per record."""
    text = (output / "vetting" / "records.js").read_text()
    data = json.loads(text[text.index("{") : text.rindex("}") + 1])
    names = [column["name"] for column in data["columns"]]
    return pd.DataFrame(dict(zip(names, data["values"], strict=True)))
