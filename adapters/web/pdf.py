"""Invoice and receipt PDFs, drawn with fpdf2 from plain values (no database, no I/O but the font files).

Why fpdf2: pure Python (no Cairo/Pango system libraries as WeasyPrint needs, no C extension), actively
released, and it embeds and subsets TrueType/OpenType fonts, with per-glyph fallback fonts, so one
document can hold a Latin shop name, a Thai customer and Japanese items. Amounts and dates are formatted by
Babel in the shop's locale (core/money.py, babel.dates) before they get here.

Fonts: Noto (SIL Open Font License), from Debian's fonts-noto-core and fonts-noto-cjk, which `make`
installs (see the Makefile's `fonts` target). Noto Sans covers Latin (Vietnamese too), Greek and Cyrillic;
Noto Sans Thai and Noto Sans CJK are fallbacks per glyph. Without them: DejaVu Sans if present (no Thai
or CJK glyphs), else the PDF core font Helvetica with text outside Latin-1 shown as "?" — the document
is still made, and `fonts_found()` says what is missing (logged once at start-up).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import FontFace

log = logging.getLogger("paylinks.pdf")

NOTO_DIRS = (Path("/usr/share/fonts/truetype/noto"), Path("/usr/share/fonts/opentype/noto"))
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
DEJAVU_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
# (family, regular file, bold file, collection index): the main face first, then the fallbacks.
_FACES = (
    ("NotoSans", "NotoSans-Regular.ttf", "NotoSans-Bold.ttf", 0),
    ("NotoSansThai", "NotoSansThai-Regular.ttf", "NotoSansThai-Bold.ttf", 0),
    # Index 0 of Noto Sans CJK's collection is its Japanese face; it has the Han, kana and Hangul glyphs.
    ("NotoSansCJK", "NotoSansCJK-Regular.ttc", "NotoSansCJK-Bold.ttc", 0),
)


@dataclass(frozen=True, slots=True)
class Fonts:
    main: str
    fallbacks: tuple[str, ...]
    files: tuple[tuple[str, str, Path, int], ...]  # (family, style, file, collection index)
    unicode: bool


def _find(name: str, dirs: Sequence[Path]) -> Path | None:
    for directory in dirs:
        if (directory / name).is_file():
            return directory / name
    return None


@cache
def fonts_found(dirs: tuple[Path, ...] = NOTO_DIRS) -> Fonts:
    files: list[tuple[str, str, Path, int]] = []
    families: list[str] = []
    for family, regular, bold, index in _FACES:
        reg, bld = _find(regular, dirs), _find(bold, dirs)
        if reg is None:
            continue
        families.append(family)
        files.append((family, "", reg, index))
        files.append((family, "B", bld or reg, index))
    if families and families[0] == "NotoSans":
        missing = [f for f, *_ in _FACES if f not in families]
        if missing:
            log.warning("invoice PDFs: fonts %s not found (install fonts-noto-core fonts-noto-cjk); those "
                        "scripts print as empty boxes", ", ".join(missing))
        return Fonts("NotoSans", tuple(families[1:]), tuple(files), True)
    if DEJAVU.is_file():
        log.warning("invoice PDFs: Noto fonts not found, using DejaVu Sans (no Thai or CJK glyphs); "
                    "install fonts-noto-core fonts-noto-cjk")
        dejavu = (("DejaVu", "", DEJAVU, 0), ("DejaVu", "B", DEJAVU_BOLD if DEJAVU_BOLD.is_file() else DEJAVU, 0))
        return Fonts("DejaVu", tuple(families), (*dejavu, *files), True)
    log.warning("invoice PDFs: no Unicode font found; text outside Latin-1 prints as '?'")
    return Fonts("helvetica", (), (), False)


@dataclass(frozen=True, slots=True)
class PdfLine:
    name: str
    quantity: str
    unit: str
    tax_rate: str  # "9 %", or "" for none
    amount: str


@dataclass(frozen=True, slots=True)
class PdfDocument:
    """Everything a page shows, already formatted in the shop's locale."""

    kind: str  # "invoice" | "receipt"
    title: str  # "Invoice" / "Receipt"
    number: str | None
    shop_name: str
    shop_address: str | None
    shop_contact: str | None
    logo_png: bytes | None
    customer: tuple[str, ...]  # name, email, phone: those given
    issued: str
    due: str | None
    status: str
    description: str
    reference: str | None
    lines: tuple[PdfLine, ...]
    totals: tuple[tuple[str, str], ...]  # ("Subtotal", "S$55.00"), …, ("Total", "S$53.55") last
    payment: tuple[tuple[str, str], ...] = ()  # ("Paid on", …), ("Payment ID", …) …
    test_mode: bool = False
    labels: dict[str, str] = field(default_factory=dict)


def _text(fonts: Fonts, value: str) -> str:
    if fonts.unicode:
        return value
    return value.encode("latin-1", "replace").decode("latin-1")


class _Pdf(FPDF):
    def use(self, family: str, style: str, size: float) -> None:
        """set_font that always takes effect.

        fpdf2 2.8 makes a fallback font the current one when a line starts with one of its glyphs (a Thai
        name), and set_font of the font already "set" then returns early, so the next Latin line would be
        drawn with the Thai font's glyph ids (garbage). Forgetting the family forces the real switch.
        """
        self.font_family = ""
        self.set_font(family, style, size)


def render(doc: PdfDocument, fonts: Fonts | None = None) -> bytes:
    """The PDF's bytes (A4, one or more pages)."""
    fonts = fonts or fonts_found()
    pdf = _Pdf(format="A4", unit="mm")
    pdf.set_margins(18, 18, 18)
    pdf.set_auto_page_break(True, margin=18)
    pdf.set_title(_text(fonts, f"{doc.title} {doc.number or ''}".strip()))
    pdf.set_author(_text(fonts, doc.shop_name))
    pdf.set_creator("paylinks")
    for family, style, path, index in fonts.files:
        pdf.add_font(family, style, str(path), collection_font_number=index)
    if fonts.fallbacks:
        pdf.set_fallback_fonts(list(fonts.fallbacks))
    pdf.add_page()
    t = lambda value: _text(fonts, value)  # noqa: E731  # short: used on every string below
    width = pdf.epw

    # Head: logo and shop on the left, the document's title and number on the right.
    top = pdf.get_y()
    if doc.logo_png:
        try:
            pdf.image(io.BytesIO(doc.logo_png), x=pdf.l_margin, y=top, h=16)
            pdf.set_y(top + 18)
        except Exception:  # a logo the PDF library cannot read is left out, never a failed document
            log.warning("invoice PDF: the shop's logo could not be embedded")
    pdf.use(fonts.main, "B", 15)
    pdf.multi_cell(width * 0.6, 7, t(doc.shop_name), new_x="LMARGIN", new_y="NEXT")
    pdf.use(fonts.main, "", 9)
    for extra in (doc.shop_address, doc.shop_contact):
        if extra:
            pdf.use(fonts.main, "", 9)
            pdf.multi_cell(width * 0.6, 4.5, t(extra), new_x="LMARGIN", new_y="NEXT")
    left_bottom = pdf.get_y()
    pdf.set_xy(pdf.l_margin + width * 0.6, top)
    pdf.use(fonts.main, "B", 18)
    pdf.cell(width * 0.4, 9, t(doc.title), align="R", new_x="LEFT", new_y="NEXT")
    pdf.use(fonts.main, "", 10)
    for label, value in ((doc.labels.get("number", "No."), doc.number), (doc.labels.get("issued", "Date"),
                         doc.issued), (doc.labels.get("due", "Due"), doc.due),
                         (doc.labels.get("status", "Status"), doc.status)):
        if value:
            pdf.use(fonts.main, "", 10)
            pdf.set_x(pdf.l_margin + width * 0.6)
            pdf.cell(width * 0.4, 5.5, t(f"{label}: {value}"), align="R", new_x="LEFT", new_y="NEXT")
    if doc.test_mode:
        pdf.set_x(pdf.l_margin + width * 0.6)
        pdf.set_text_color(176, 96, 0)
        pdf.cell(width * 0.4, 5.5, t(doc.labels.get("test", "TEST MODE: no real money")), align="R",
                 new_x="LEFT", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
    pdf.set_y(max(left_bottom, pdf.get_y()) + 6)

    # Bill to, and what it is for.
    if doc.customer:
        pdf.use(fonts.main, "B", 10)
        pdf.cell(0, 5.5, t(doc.labels.get("bill_to", "Bill to")), new_x="LMARGIN", new_y="NEXT")
        pdf.use(fonts.main, "", 10)
        for part in doc.customer:
            pdf.use(fonts.main, "", 10)
            pdf.multi_cell(width * 0.6, 5, t(part), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
    pdf.use(fonts.main, "", 10)
    pdf.multi_cell(0, 5, t(doc.description), new_x="LMARGIN", new_y="NEXT")
    if doc.reference:
        pdf.use(fonts.main, "", 10)
        pdf.multi_cell(0, 5, t(f"{doc.labels.get('reference', 'Reference')}: {doc.reference}"),
                       new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    # Items.
    header = (doc.labels.get("item", "Item"), doc.labels.get("qty", "Qty"), doc.labels.get("unit", "Unit price"),
              doc.labels.get("tax", "Tax"), doc.labels.get("amount", "Amount"))
    pdf.use(fonts.main, "", 9.5)
    with pdf.table(col_widths=(46, 10, 18, 10, 18), text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
                   headings_style=FontFace(emphasis="BOLD", fill_color=(240, 240, 240)), line_height=6,
                   first_row_as_headings=True,
                   borders_layout="HORIZONTAL_LINES") as table:
        row = table.row()
        for cell in header:
            row.cell(t(cell))
        for line in doc.lines:
            row = table.row()
            for cell in (line.name, line.quantity, line.unit, line.tax_rate, line.amount):
                row.cell(t(cell))
    pdf.ln(3)
    for i, (label, value) in enumerate(doc.totals):
        last = i == len(doc.totals) - 1
        pdf.use(fonts.main, "B" if last else "", 11 if last else 10)
        pdf.set_x(pdf.l_margin + width * 0.45)
        pdf.cell(width * 0.3, 6.5, t(label), align="R")
        pdf.use(fonts.main, "B" if last else "", 11 if last else 10)
        pdf.cell(width * 0.25, 6.5, t(value), align="R", new_x="LMARGIN", new_y="NEXT")

    if doc.payment:
        pdf.ln(6)
        pdf.use(fonts.main, "B", 10)
        pdf.cell(0, 5.5, t(doc.labels.get("payment", "Payment")), new_x="LMARGIN", new_y="NEXT")
        pdf.use(fonts.main, "", 10)
        for label, value in doc.payment:
            pdf.use(fonts.main, "", 10)
            pdf.multi_cell(0, 5, t(f"{label}: {value}"), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
