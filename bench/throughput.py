"""Superseded by :mod:`bench.pipeline` (issue 11); kept as an alias for old commands.

.venv/bin/python -m bench.throughput [--pages 300]  ==  python -m bench.pipeline --articles 300
"""

from __future__ import annotations

import sys

from bench.pipeline import main

if __name__ == "__main__":
    argv = ["--articles" if arg == "--pages" else arg for arg in sys.argv[1:]]
    main(argv)
