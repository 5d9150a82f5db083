"""Benchmarks: they print and record figures; they assert nothing (``make bench``)."""
