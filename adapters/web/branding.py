"""A shop's branding in pixels: colour contrast (WCAG), logo re-encoding and the link preview card.

Everything the customer sees in the shop's colour puts white text on it (the Pay button), so a colour is
accepted only when white text on it reaches WCAG AA (4.5:1); otherwise the nearest colour of the same hue
that does is suggested. Logos are decoded and re-encoded by Pillow (never served as uploaded), at most
LOGO_SIZE pixels a side; SVG and anything Pillow cannot read as PNG or JPEG is refused.
"""

from __future__ import annotations

import colorsys
import io
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError
from sqlalchemy import select

from core.db import Database
from core.i18n import N_, TranslatableError
from core.models import Merchant, PaymentLink
from core.sql import table

HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
AA_NORMAL = 4.5
ON_BRAND = "#ffffff"
LOGO_MAX_BYTES = 1024 * 1024
LOGO_SIZE = 256
OG_SIZE = (1200, 630)
_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation"))


class BrandingError(TranslatableError, ValueError):
    """A colour or logo the settings page refuses; the message is a catalog msgid (`translated(t)`)."""

    def __init__(self, message: str, field: str, suggestion: str | None = None,
                 values: Mapping[str, object] | None = None) -> None:
        super().__init__(message, values)
        self.field = field
        self.suggestion = suggestion


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(colour: str) -> float:
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _hex(r: float, g: float, b: float) -> str:
    return "#" + "".join(f"{round(max(0.0, min(1.0, c)) * 255):02x}" for c in (r, g, b))


def nearest_passing(colour: str, text: str = ON_BRAND) -> str:
    """The colour of the same hue and saturation, darkened just enough for `text` on it to pass AA."""
    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    hue, light, sat = colorsys.rgb_to_hls(r, g, b)
    while light > 0:
        light = max(0.0, light - 0.005)
        candidate = _hex(*colorsys.hls_to_rgb(hue, light, sat))
        if contrast(candidate, text) >= AA_NORMAL:
            return candidate
    return "#000000"


def check_brand_colour(text: str) -> str:
    colour = text.strip()
    if not HEX_COLOUR.fullmatch(colour):
        raise BrandingError(N_("Give the colour as #RRGGBB, e.g. #1d4ed8."), "brand_color")
    colour = colour.lower()
    ratio = contrast(colour, ON_BRAND)
    if ratio < AA_NORMAL:
        suggestion = nearest_passing(colour)
        raise BrandingError(
            N_("White text on %(colour)s has a contrast of %(ratio)s:1, below the 4.5:1 WCAG AA asks for; "
               "the nearest colour that passes is %(suggestion)s."), "brand_color", suggestion,
            {"colour": colour, "ratio": f"{ratio:.2f}", "suggestion": suggestion})
    return colour


def hover_colour(colour: str) -> str:
    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    hue, light, sat = colorsys.rgb_to_hls(r, g, b)
    return _hex(*colorsys.hls_to_rgb(hue, max(0.0, light - 0.06), sat))


def reencode_logo(data: bytes) -> bytes:
    """PNG or JPEG bytes -> a PNG at most LOGO_SIZE a side, re-encoded from pixels (metadata dropped)."""
    if len(data) > LOGO_MAX_BYTES:
        raise BrandingError(N_("The logo is larger than 1 MB; upload a smaller PNG or JPEG."), "logo")
    if data.lstrip()[:5].lower() in (b"<?xml", b"<svg ") or b"<svg" in data[:512].lower():
        raise BrandingError(N_("SVG logos are not accepted (they can carry scripts); upload a PNG or JPEG."), "logo")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ("PNG", "JPEG"):
                raise BrandingError(N_("The logo must be a PNG or JPEG image."), "logo")
            if image.width * image.height > 40_000_000:
                raise BrandingError(N_("The logo has too many pixels; upload a smaller image."), "logo")
            image.load()
            picture = image.convert("RGBA")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise BrandingError(N_("That file is not a PNG or JPEG image I can read."), "logo") from None
    picture.thumbnail((LOGO_SIZE, LOGO_SIZE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, "PNG", optimize=True)
    return out.getvalue()


Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@lru_cache(maxsize=8)
def _font(size: int, bold: bool) -> Font:
    names = ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf") if bold else ("DejaVuSans.ttf",
                                                                              "LiberationSans-Regular.ttf")
    for directory in _FONT_DIRS:
        for name in names:
            if (directory / name).exists():
                return ImageFont.truetype(str(directory / name), size)
    return ImageFont.load_default(size)


def _fit(draw: ImageDraw.ImageDraw, text: str, size: int, bold: bool, width: int) -> tuple[str, Font]:
    font = _font(size, bold)
    while draw.textlength(text, font=font) > width and len(text) > 1:
        text = text[:-2].rstrip() + "…"
    return text, font


def og_card(*, shop: str, amount: str, description: str, status_label: str, colour: str,
            logo_png: bytes | None) -> bytes:
    """The 1200×630 link preview PNG: logo, shop name, amount, what it is for, and the link's state."""
    image = Image.new("RGB", OG_SIZE, "#ffffff")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, OG_SIZE[0], 24), fill=colour)
    left, width = 80, OG_SIZE[0] - 160
    top = 90
    if logo_png:
        with Image.open(io.BytesIO(logo_png)) as logo:
            mark = logo.convert("RGBA")
            mark.thumbnail((140, 140))
            image.paste(mark, (left, top), mark)
        name_left = left + 170
    else:
        name_left = left
    text, font = _fit(draw, shop, 56, True, OG_SIZE[0] - name_left - 80)
    draw.text((name_left, top + 40), text, fill="#111827", font=font)
    text, font = _fit(draw, amount, 120, True, width)
    draw.text((left, 270), text, fill="#111827", font=font)
    text, font = _fit(draw, description, 44, False, width)
    draw.text((left, 420), text, fill="#4b5563", font=font)
    label, font = _fit(draw, status_label, 40, True, width)
    box = draw.textbbox((0, 0), label, font=font)
    pill_w, pill_h = box[2] - box[0] + 56, 72
    draw.rounded_rectangle((left, 510, left + pill_w, 510 + pill_h), radius=36, fill=colour)
    draw.text((left + 28, 510 + (pill_h - (box[3] - box[1])) // 2 - box[1]), label, fill=ON_BRAND, font=font)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


# ---------------------------------------------------------------- the pages' branding context


def brand_context(*, merchant_id: str, name: str, brand_color: str | None, logo_version: str | None,
                  support_email: str | None, support_phone: str | None) -> dict[str, Any]:
    """What base.html shows of the shop on every page the customer sees: colour, logo, name, support."""
    return {
        "merchant_name": name,
        "brand_css": f"/brand/{merchant_id}.css?v={brand_color.lstrip('#')}" if brand_color else None,
        "logo_url": f"/brand/{merchant_id}/logo.png?v={logo_version}" if logo_version else None,
        "support_email": support_email,
        "support_phone": support_phone,
    }


async def link_branding(db: Database, link_id: str) -> dict[str, Any]:
    """brand_context of the shop of a link, for pages outside the pay page (checkout hand-off, the sandbox
    checkout, providers' return pages), with the shop's `merchant_locale` (the language those pages fall
    back to); empty when there is no such link."""
    links, merchants = table(PaymentLink), table(Merchant)
    async with db.read() as conn:
        row = (await conn.execute(
            select(merchants.c.id, merchants.c.name, merchants.c.brand_color, merchants.c.logo_version,
                   merchants.c.support_email, merchants.c.support_phone, merchants.c.locale)
            .join_from(links, merchants, merchants.c.id == links.c.merchant_id)
            .where(links.c.id == link_id))).first()
    if row is None:
        return {}
    return {**brand_context(merchant_id=row.id, name=row.name, brand_color=row.brand_color,
                            logo_version=row.logo_version, support_email=row.support_email,
                            support_phone=row.support_phone), "merchant_locale": row.locale}
