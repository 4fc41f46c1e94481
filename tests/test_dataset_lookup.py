"""The images of many visit × detectors looked up at once, against the
Butler's own one-by-one lookups, in a real repository (chained collections
and a shadowing run included)."""

from __future__ import annotations

import shutil

import lsst.daf.butler as dafButler
import pytest

from lsst.analysis.ap.datasets import DEFAULT_SCIENCE_TYPE, IMAGE_ROLES, image_dataset_types
from lsst.analysis.ap.images.butler import find_image_datasets
from lsst.analysis.ap.plotImageSubtractionCutouts import (
    PlotImageSubtractionCutoutsConfig,
    PlotImageSubtractionCutoutsTask,
)

TYPES = {
    role: name
    for role, name in image_dataset_types(DEFAULT_SCIENCE_TYPE, None).items()
    if role in IMAGE_ROLES
}


def data_ids(demo_repo):
    return [{"instrument": "DemoCam", "visit": v, "detector": d} for v, d in demo_repo.data_ids]


def test_every_dataset_found_as_the_butler_finds_it(demo_repo):
    with demo_repo.butler() as butler:
        found = find_image_datasets(
            butler, TYPES, data_ids(demo_repo) + [{**data_ids(demo_repo)[0], "visit": 99}]
        )
        assert set(found) == {("DemoCam", v, d) for v, d in demo_repo.data_ids}  # visit 99 has no images
        for (instrument, visit, detector), datasets in found.items():
            assert set(datasets) == set(TYPES)
            for role, name in TYPES.items():
                ref = butler.find_dataset(name, instrument=instrument, visit=visit, detector=detector)
                assert datasets[role].ref == ref
                assert datasets[role].uri == butler.getURI(ref)


@pytest.fixture(scope="module")
def shadowed(demo_repo, tmp_path_factory):
    """A copy of the demo repository whose chained collection puts, in
    front of the demo run, a run holding one negated difference image."""
    root = tmp_path_factory.mktemp("shadowed") / "repo"
    shutil.copytree(demo_repo.root, root)
    visit, detector = demo_repo.data_ids[0]
    with dafButler.Butler.from_config(str(root), writeable=True) as writer:
        data_id = {"instrument": "DemoCam", "visit": visit, "detector": detector}
        ref = writer.find_dataset(TYPES["difference"], data_id, collections=demo_repo.collection)
        image = writer.get(ref)
        image.image.array[...] = -image.image.array
        writer.collections.register("shadow")
        writer.put(image, TYPES["difference"], data_id, run="shadow")
        writer.collections.register("chain", dafButler.CollectionType.CHAINED)
        writer.collections.redefine_chain("chain", ["shadow", demo_repo.collection])
    return root, (visit, detector)


def test_roles_sharing_a_dataset_type_are_found_together(demo_repo):
    shared = {**TYPES, "template": TYPES["science"]}
    with demo_repo.butler() as butler:
        found = find_image_datasets(butler, shared, data_ids(demo_repo))
    assert set(found) == {("DemoCam", v, d) for v, d in demo_repo.data_ids}
    for datasets in found.values():
        assert datasets["template"] == datasets["science"]
        assert datasets["difference"].ref.datasetType.name == TYPES["difference"]


def test_one_dataset_reached_through_two_collections_is_found(demo_repo, tmp_path):
    """A tagged collection in front of the run holding the same datasets:
    each dataset is one dataset, found together with the others."""
    root = tmp_path / "repo"
    shutil.copytree(demo_repo.root, root)
    with dafButler.Butler.from_config(str(root), writeable=True) as writer:
        writer.collections.register("tagged", dafButler.CollectionType.TAGGED)
        for name in TYPES.values():
            writer.registry.associate("tagged", writer.query_datasets(name, collections=demo_repo.collection))
    with dafButler.Butler.from_config(str(root), collections=["tagged", demo_repo.collection]) as butler:
        found = find_image_datasets(butler, TYPES, data_ids(demo_repo))
    assert set(found) == {("DemoCam", v, d) for v, d in demo_repo.data_ids}


def test_the_first_dataset_in_collection_order_is_found(demo_repo, shadowed):
    root, (visit, detector) = shadowed
    with dafButler.Butler.from_config(str(root), collections=["chain"]) as butler:
        found = find_image_datasets(butler, TYPES, data_ids(demo_repo))
        assert set(found) == {("DemoCam", v, d) for v, d in demo_repo.data_ids}
        shadow = found[("DemoCam", visit, detector)]["difference"]
        assert shadow.ref.run == "shadow"
        assert shadow.ref == butler.find_dataset(
            TYPES["difference"], instrument="DemoCam", visit=visit, detector=detector
        )
        assert {datasets["difference"].ref.run for datasets in found.values()} == {
            "shadow",
            demo_repo.collection,
        }


def test_the_shadowing_run_is_drawn(demo_repo, demo_sources, shadowed, tmp_path, monkeypatch):
    """The task draws the first dataset in collection order (the negated
    difference image on the shadowed detector, the demo's elsewhere), as it
    does when every dataset is looked up one by one."""
    from lsst.analysis.ap import plotImageSubtractionCutouts

    root, (visit, detector) = shadowed

    def draw(name, collection):
        with dafButler.Butler.from_config(str(root), collections=[collection]) as butler:
            task = PlotImageSubtractionCutoutsTask(
                config=PlotImageSubtractionCutoutsConfig(), output_path=tmp_path / name
            )
            records = task.run(demo_sources, butler).records.set_index("diaSourceId")
        return {
            i: (tmp_path / name / row["path"]).read_bytes()
            for i, row in records.iterrows()
            if row["status"] == "written"
        }

    chain = draw("chain", "chain")
    plain = draw("plain", demo_repo.collection)
    monkeypatch.setattr(plotImageSubtractionCutouts, "find_image_datasets", lambda *args: {})
    one_by_one = draw("one_by_one", "chain")
    assert chain == one_by_one
    on_shadow = demo_sources.loc[
        (demo_sources["visit"] == visit) & (demo_sources["detector"] == detector), "diaSourceId"
    ]
    assert set(chain) == set(plain) and set(on_shadow) & set(chain)
    differ = {i for i, png in chain.items() if png != plain[i]}
    # Only the shadowed detector's cutouts change (all of them but sources
    # whose difference stamp has no valid pixels).
    assert differ <= set(on_shadow)
    assert len(differ) >= len(set(on_shadow) & set(chain)) - 2 > 0


def test_reopening_a_kind_of_file_reuses_its_tree_model(demo_repo):
    """pydantic keeps the archive-tree models lsst-images parameterizes only
    weakly: without the reader's hold, closing the last file of a kind and
    collecting it made the next open of that kind build its model again."""
    import gc
    import weakref

    from lsst.analysis.ap.images.butler import OpenArchiveGetter

    def tree_model(uri) -> type:
        getter = OpenArchiveGetter(uri, fallback=None)
        try:
            assert getter("bbox", None) is not None
            return type(getter._reader._tree)
        finally:
            getter.close()

    with demo_repo.butler() as butler:
        first = data_ids(demo_repo)[0]
        uri = butler.getURI(butler.find_dataset(TYPES["difference"], **first))
        model = weakref.ref(tree_model(uri))
        gc.collect()
        assert model() is not None
        assert tree_model(uri) is model()
