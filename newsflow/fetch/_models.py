"""What a successful fetch returns: :class:`FetchResponse`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from newsflow.fetch._decode import looks_binary

__all__ = ["FetchResponse"]


@dataclass(frozen=True, slots=True)
class FetchResponse:
    """A successful (2xx) or not-modified (304) answer, body already decompressed."""

    url: str
    """Final URL, after redirects."""
    status: int
    headers: Mapping[str, str]
    """Response headers, names lower-cased, repeated headers joined with ``", "``."""
    body: bytes
    content_type: str
    """Media type only, lower-case (``"text/html"``); empty when the server sent none."""
    encoding: str | None
    """Python codec name of the detected charset; ``None`` for non-text media types."""
    permanent_redirect: str | None
    """Where the leading run of 301/308 hops led, if the chain started with one."""
    elapsed: float
    """Seconds on the network, redirects and body included (not the wait for a slot)."""

    def text(self) -> str:
        """The body decoded with :attr:`encoding` (UTF-8 if none); bad bytes replaced."""
        try:
            text = self.body.decode(self.encoding or "utf-8", errors="replace")
        except LookupError:  # an encoding not named by the fetcher, which only names codecs
            text = self.body.decode("utf-8", errors="replace")
        return text.removeprefix("\ufeff")

    @property
    def is_html(self) -> bool:
        """Labelled HTML and not binary data (an image or archive served as a page)."""
        return self.content_type in ("text/html", "application/xhtml+xml") and not looks_binary(
            self.body, self.encoding
        )
