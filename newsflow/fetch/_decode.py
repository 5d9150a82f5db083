"""Reading a response body: bounded decompression, the body cap, and charset detection.

Only codings whose output can be bounded per input chunk are offered
(:data:`ACCEPT_ENCODING`); :func:`read_body` stops reading once the decoded body passes its
cap, and :func:`media_type_and_encoding` names the codec a text body is decoded with.
"""

from __future__ import annotations

import codecs
import re
import time
import zlib

import charset_normalizer
import httpx
import webencodings

from newsflow.errors import PermanentFetchError, TransientFetchError
from newsflow.fetch._errors import BodyTooLarge, translated

__all__ = ["ACCEPT_ENCODING", "looks_binary", "media_type_and_encoding", "read_body"]

# Only codings whose output we can bound per input chunk (zlib's max_length); httpx's own
# decoders expand a whole network read at once, which lets a gzip bomb allocate ~1000x it.
ACCEPT_ENCODING = "gzip, deflate"
_SNIFF_BYTES = 4096
_DETECT_BYTES = 64 * 1024


class _Decoder:
    """Content-Encoding decoder whose output per call is bounded (gzip bombs)."""

    def __init__(self, url: str, content_encoding: str) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        self._wbits: int | None
        if not codings:
            self._wbits = None
        elif codings in (["gzip"], ["x-gzip"]):
            self._wbits = 16 + zlib.MAX_WBITS
        elif codings == ["deflate"]:
            self._wbits = zlib.MAX_WBITS
        else:
            raise PermanentFetchError(f"{url}: unsupported Content-Encoding {content_encoding!r}")
        self._url = url
        self._started = False
        self._zlib = None if self._wbits is None else zlib.decompressobj(self._wbits)

    def decode(self, data: bytes, max_length: int) -> bytes:
        """Up to ``max_length`` decoded bytes of ``data`` (the rest is not needed)."""
        if self._zlib is None:
            return data[:max_length]
        try:
            out = self._zlib.decompress(data, max_length)
        except zlib.error as exc:
            if self._started or self._wbits != zlib.MAX_WBITS:
                raise PermanentFetchError(f"{self._url}: corrupt compressed body") from exc
            # Many servers send raw deflate (no zlib header) as "deflate".
            self._wbits = -zlib.MAX_WBITS
            self._zlib = zlib.decompressobj(self._wbits)
            return self.decode(data, max_length)
        self._started = True
        return out

    def flush(self) -> bytes:
        return b"" if self._zlib is None else self._zlib.flush()


_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9_.\-]+)""", re.I)
# The byte order is named: a reader told plain "utf-16" after the BOM has been looked at
# (feedparser is one) may assume little-endian and misread a big-endian body.
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Detection results are Python's own codec names; browsers read these two as windows-1252.
_BROWSER_ALIASES = {"iso8859-1": "cp1252", "ascii": "cp1252"}


def _python_codec(name: str) -> str | None:
    """``name``'s canonical Python codec, if it is one that decodes bytes to text."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    # base64, rot13, zlib, uu, hex ... are codecs too, but not text encodings.
    return info.name if getattr(info, "_is_text_encoding", True) else None


def _codec(label: str | bytes | None, *, in_document: bool = False) -> str | None:
    """The Python codec of a charset label sent by a server, or ``None``.

    Only labels of the WHATWG Encoding Standard count (what browsers accept, and how they
    read them: ``latin1`` is windows-1252); anything else is as if no label were given.
    """
    if isinstance(label, bytes):
        label = label.decode("ascii", errors="replace")
    if not label:
        return None
    encoding = webencodings.lookup(label.strip().strip("\"'"))
    if encoding is None:
        return None
    # "replacement" and "x-user-defined" have no codec of Python's own: detect instead.
    name = _python_codec(str(encoding.codec_info.name))
    if in_document and name is not None and name.startswith("utf-16"):
        return "utf-8"  # a label we could read as ASCII bytes is not UTF-16 (WHATWG)
    return name


def _guessed_codec(name: str | None) -> str | None:
    found = _python_codec(name) if name else None
    return _BROWSER_ALIASES.get(found, found) if found else None


def _parse_content_type(value: str) -> tuple[str, str | None]:
    media_type, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset":
            charset = val
    return media_type.strip().lower(), charset


def _is_text(media_type: str) -> bool:
    return (
        not media_type
        or media_type.startswith("text/")
        or media_type.endswith(("/xml", "+xml", "/json", "+json"))
        or media_type in ("application/javascript", "application/ecmascript")
    )


def _detect_encoding(body: bytes, header_charset: str | None) -> str:
    """BOM, then HTTP charset, then in-document declaration, then UTF-8 or a guess.

    A BOM beats the header, as in browsers: it cannot be there by accident.
    """
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    found = _codec(header_charset)
    if found:
        return found
    head = body[:_SNIFF_BYTES]
    for pattern in (_XML_ENCODING, _META_CHARSET):
        match = pattern.match(head) if pattern is _XML_ENCODING else pattern.search(head)
        found = _codec(match.group(1), in_document=True) if match else None
        if found:
            return found
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A body cut by a cap may end inside a character; that is still UTF-8.
        if exc.start < len(body) - 3:
            best = charset_normalizer.from_bytes(body[:_DETECT_BYTES]).best()
            guess = _guessed_codec(best.encoding) if best is not None else None
            if guess:
                return guess
    return "utf-8"


# WHATWG MIME Sniffing: bytes that never occur in text (\t \n \f \r and ESC excepted),
# looked for in the resource header, its first 1445 bytes.
_BINARY_BYTES = (
    frozenset(range(0x09)) | {0x0B} | frozenset(range(0x0E, 0x1B)) | frozenset(range(0x1C, 0x20))
)
_RESOURCE_HEADER = 1445


def looks_binary(body: bytes, encoding: str | None) -> bool:
    """Whether ``body``, labelled as text, is binary data (an image, an archive, ...).

    UTF-16 and UTF-32 text is full of NUL bytes, so those encodings are never binary.
    """
    if encoding is not None and encoding.startswith(("utf-16", "utf-32")):
        return False
    return not _BINARY_BYTES.isdisjoint(body[:_RESOURCE_HEADER])


def media_type_and_encoding(content_type: str, body: bytes) -> tuple[str, str | None]:
    """The lower-case media type of ``content_type`` and the codec of ``body``.

    The codec is ``None`` for media types that are not text.
    """
    media_type, charset = _parse_content_type(content_type)
    return media_type, _detect_encoding(body, charset) if _is_text(media_type) else None


def read_body(
    url: str, response: httpx.Response, deadline_at: float, max_bytes: int, *, truncate: bool
) -> bytes:
    """The decompressed body of ``response``, read until ``deadline_at``.

    A body over ``max_bytes`` raises :class:`BodyTooLarge`, or with ``truncate`` is cut to
    its first ``max_bytes``.
    """
    length = response.headers.get("content-length", "")
    if not truncate and length.isdigit() and int(length) > max_bytes:
        raise BodyTooLarge(f"{url}: Content-Length {length} exceeds {max_bytes} bytes")
    decoder = _Decoder(url, response.headers.get("content-encoding", ""))
    body = bytearray()
    with translated(url, deadline_at):
        for chunk in response.iter_raw():
            # One byte more than fits tells "too large" from "exactly full".
            body += decoder.decode(chunk, max_bytes - len(body) + 1)
            if len(body) > max_bytes:
                break
            if time.monotonic() > deadline_at:
                raise TransientFetchError(f"{url}: deadline exceeded")
        else:
            body += decoder.flush()
    if len(body) > max_bytes:
        if not truncate:
            raise BodyTooLarge(f"{url}: body exceeds {max_bytes} bytes")
        del body[max_bytes:]
    return bytes(body)
