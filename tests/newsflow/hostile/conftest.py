"""Fixtures of the hostile-input suite (see ``_support``)."""

from tests.newsflow.hostile._support import canary, connect_spy, web

__all__ = ["canary", "connect_spy", "web"]
