"""The HTML vetting page of a cutout run: browse, filter and label every
cutout in a browser, and read the labels back.

`write_vetting_page` writes ``index.html`` and its assets into a run's output
directory; `read_labels` and `merge_labels` bring the labels exported from the
page back to the record table (the ``cutoutVetting`` command does both from
the command line).
"""

from .labels import (
    LABEL_NAMES,
    LABELLED_RECORDS_FILE,
    LABELS,
    Label,
    LabelFileError,
    merge_labels,
    read_labels,
    with_earlier_labels,
)
from .page import (
    PAGE_FILE,
    STATIC_DIR,
    VettingPageFiles,
    page_table,
    write_output_vetting_page,
    write_vetting_page,
)

__all__ = (
    "LABELLED_RECORDS_FILE",
    "LABELS",
    "LABEL_NAMES",
    "PAGE_FILE",
    "STATIC_DIR",
    "Label",
    "LabelFileError",
    "VettingPageFiles",
    "merge_labels",
    "page_table",
    "read_labels",
    "with_earlier_labels",
    "write_output_vetting_page",
    "write_vetting_page",
)
