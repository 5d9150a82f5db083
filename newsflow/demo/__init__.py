"""``newsflow demo``: the whole pipeline, offline, on a bundled news site.

The package holds the site (``site/``: pages and feeds, rendered from ``stories.toml`` by
``_sitegen``), the server that plays it on 127.0.0.1 (:mod:`newsflow.demo.server`) and
the run itself (:mod:`newsflow.demo.runner`).
"""

from newsflow.demo.runner import Check, Cycle, DemoResult, print_hits, run_demo

__all__ = ["Check", "Cycle", "DemoResult", "print_hits", "run_demo"]
