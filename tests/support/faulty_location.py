"""A storemon code location whose reports are wrong: the product's definitions, with one row of
each report run's newest partition corrupted after the engine saved it (support/faults.py).
Loaded by tests/e2e/test_blocking_checks.py's workspace (working directory tests/), so its run
workers load it too."""

import storemon_pipeline.defs.assets as assets
from support.faults import corrupting, saver_of

setattr(assets, saver_of(assets), corrupting(getattr(assets, saver_of(assets))))

from storemon_pipeline.definitions import defs  # noqa: E402

__all__ = ["defs"]
