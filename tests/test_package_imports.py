"""The package's names: the tasks are imported on first use, so a process
that needs only the modules below them does not import the pipeline
machinery."""

import subprocess
import sys
import textwrap


def _python(code: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    )
    return completed.stdout.strip()


def test_modules_below_the_tasks_do_not_import_pipe_base():
    loaded = _python(
        """
        import sys
        import lsst.analysis.ap.core
        import lsst.analysis.ap.outputs.manifests
        import lsst.analysis.ap.vetting
        tasks = "lsst.analysis.ap.plotImageSubtractionCutouts"
        print("lsst.pipe.base" in sys.modules, tasks in sys.modules)
        """
    )
    assert loaded == "False False"


def test_the_tasks_are_names_of_the_package():
    names = _python(
        """
        import lsst.analysis.ap as ap
        from lsst.analysis.ap import CutoutPath, PlotImageSubtractionCutoutsTask as Task
        from lsst.utils import doImport
        assert doImport("lsst.analysis.ap.PlotImageSubtractionCutoutsTask") is Task
        assert ap.plotImageSubtractionCutouts.PlotImageSubtractionCutoutsTask is Task
        star = {}
        exec("from lsst.analysis.ap import *", star)
        public = sorted(name for name in star if not name.startswith("_"))
        print(public == sorted(ap.__all__), "PlotImageSubtractionCutoutsTask" in dir(ap))
        """
    )
    assert names == "True True"


def test_an_unknown_name_is_an_attribute_error():
    message = _python(
        """
        import lsst.analysis.ap as ap
        try:
            ap.NoSuchTask
        except AttributeError as error:
            print(error)
        """
    )
    assert message == "module 'lsst.analysis.ap' has no attribute 'NoSuchTask'"
