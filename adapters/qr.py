"""QR codes of pay URLs, rendered only by the adapters that show or send them (the pay page's qr.png and
qr.svg, Telegram's photo after a /charge card).

A link's URL never changes, so each (URL, kind, scale) is rendered once and kept in a bounded cache.
Rendering a PNG costs about 10 ms of CPU, so code on the event loop calls `render_qr`, which does it in
a worker thread.
"""

from __future__ import annotations

import asyncio
import io
from functools import lru_cache
from typing import Literal

import segno

QrKind = Literal["png", "svg"]
BORDER = 4  # quiet zone in modules, as the QR standard asks
CACHE_SIZE = 512


@lru_cache(maxsize=CACHE_SIZE)
def qr_code(url: str, kind: QrKind = "png", scale: int = 8) -> bytes:
    """The QR code of `url` as PNG or SVG bytes, `scale` pixels (SVG units) per module."""
    out = io.BytesIO()
    code = segno.make(url, error="m", micro=False)
    if kind == "svg":
        code.save(out, kind="svg", scale=scale, border=BORDER, title="QR code of the payment link",
                  svgclass=None, lineclass=None)
    else:
        code.save(out, kind="png", scale=scale, border=BORDER)
    return out.getvalue()


async def render_qr(url: str, kind: QrKind = "png", scale: int = 8) -> bytes:
    """`qr_code` in a worker thread, so a cache miss never stalls the event loop (lru_cache is thread-safe)."""
    return await asyncio.to_thread(qr_code, url, kind, scale)
