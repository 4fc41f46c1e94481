"""The demo repository: a simulated camera, sky and DiaSources written to a
Butler repository and an APDB (``makeCutoutDemoRepo PATH``).

`repo` writes the repository, `scene` simulates the pixels and sources of
each visit × detector, `camera` describes the demo camera.
"""

from .repo import (
    DEFAULT_COLLECTION,
    DIA_SOURCE_TYPE,
    DemoRepo,
    build_demo_repo,
    main,
    store_apdb_sources,
    write_apdb,
)
from .scene import DemoSpec

__all__ = (
    "DEFAULT_COLLECTION",
    "DIA_SOURCE_TYPE",
    "DemoRepo",
    "DemoSpec",
    "build_demo_repo",
    "main",
    "store_apdb_sources",
    "write_apdb",
)
