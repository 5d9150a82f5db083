"""How search hits look on a terminal (``newsflow search`` and the demo share it)."""

from __future__ import annotations

import re

from rich.console import Console
from rich.text import Text

from connectors.store import SearchResult

__all__ = ["print_hits"]

_MATCH = re.compile(r"\[\[(.*?)\]\]")


def _snippet(snippet: str) -> Text:
    text = Text("   ")
    for number, part in enumerate(_MATCH.split(" ".join(snippet.split()))):
        text.append(part, style="bold yellow" if number % 2 else "")
    return text


def print_hits(console: Console, result: SearchResult, query: str) -> None:
    """Ranked hits: title, source · date · URL (· copies), the snippet with matches marked."""
    if result.articles is not None and result.articles != result.total:
        console.print(
            f"{result.total} stories ({result.articles} articles) for {query!r}", highlight=False
        )
    else:
        console.print(f"{result.total} hits for {query!r}", highlight=False)
    for number, hit in enumerate(result.hits, 1):
        date = hit.published_at.date().isoformat() if hit.published_at else "undated"
        console.print(Text(f"{number}. {hit.title}", style="bold"))
        copies = f" · +{hit.copies} cop{'y' if hit.copies == 1 else 'ies'}" if hit.copies else ""
        console.print(Text(f"   {hit.source or '?'} · {date} · {hit.url}{copies}"))
        console.print(_snippet(hit.snippet))
