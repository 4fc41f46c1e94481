"""The ``lsst-task-topic`` directive of the LSST Science Pipelines
documentation (documenteer), for plain Sphinx builds.

documenteer marks a task's topic page with ``.. lsst-task-topic:: <class>``
so that task listings can find it.  Here the directive puts a link target
named for the task at the top of the page (``:ref:`lsst.analysis.ap.X``` and
``lsst-task-<class>`` reach it) and checks that the class can be imported,
so the page states a task that exists.
"""

from __future__ import annotations

import importlib

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


class TaskTopicDirective(SphinxDirective):
    """``.. lsst-task-topic:: lsst.analysis.ap.PlotImageSubtractionCutoutsTask``"""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0].strip()
        module_name, _, class_name = name.rpartition(".")
        try:
            getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as error:
            raise self.error(f"lsst-task-topic: cannot import task {name}: {error}") from None
        target = nodes.target("", "", ids=[nodes.make_id(f"lsst-task-{name}")])
        self.env.domaindata.setdefault("lsst_task_topics", {})[name] = self.env.docname
        std = self.env.get_domain("std")
        std.note_hyperlink_target(name, self.env.docname, target["ids"][0], name)
        return [target]


def setup(app: Sphinx) -> dict:
    """Register the directive."""
    app.add_directive("lsst-task-topic", TaskTopicDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
