"""The command registry: every chat command declared once, and the grammar that finds it in a message.

A CommandSpec names the command, its aliases, its usage line, its /help line, its command-menu text and
the parser of the words after it, plus `handler`, the Conversation method that answers it. The /help
text, the conversation's dispatch, Telegram's command menu (setMyCommands) and Slack's `/paylinks`
sub-commands all read COMMANDS; tests check the Slack manifest against it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

from core import i18n, markup
from core.commands.amounts import rank_currencies, symbol_currencies
from core.commands.periods import parse_report
from core.commands.recurring import parse_charge_or_series, parse_invoice, parse_series
from core.commands.sell import parse_donate, parse_promo, parse_sell, parse_split
from core.commands.values import (
    Alerts,
    Cancel,
    Command,
    CommandError,
    Dashboard,
    Greeting,
    Help,
    Invite,
    Join,
    Links,
    ParseContext,
    RefundAsk,
    Remind,
    SetCurrency,
    SetLanguage,
    Shop,
    Start,
    Status,
)
from core.i18n import N_
from core.models import LinkStatus
from core.money import is_currency

Parser = Callable[[str, ParseContext], Command]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    usage: str  # "/charge 25 birthday cake"
    help: str  # the /help line (Reply markup)
    menu: str  # Telegram's command menu: one short line
    parse: Parser  # the words after the command word -> its value (raises CommandError)
    handler: str  # the Conversation method that answers it
    aliases: tuple[str, ...] = ()
    details: str | None = None  # `/help NAME` (default: usage and help line)
    listed: bool = True  # shown in the /help list (start and help themselves are not)
    needs_shop: bool = True  # identify (or open) the person's shop before answering


# ---------------------------------------------------------------- the small commands' parsers

_LINK_FILTERS: dict[str, LinkStatus | None] = {
    "": None, "all": None,
    "active": LinkStatus.ACTIVE, "open": LinkStatus.ACTIVE, "unpaid": LinkStatus.ACTIVE,
    "pending": LinkStatus.ACTIVE,
    "paid": LinkStatus.PAID,
    "expired": LinkStatus.EXPIRED,
    "cancelled": LinkStatus.CANCELLED, "canceled": LinkStatus.CANCELLED,
}


def _parse_links(rest: str, ctx: ParseContext) -> Links:
    word = rest.strip().casefold()
    if word not in _LINK_FILTERS:
        raise CommandError(
            N_("I can list active, paid, expired, cancelled or all links, not “%(typed)s”."),
            "/links paid", field="status", values={"typed": markup.escape(rest.strip())},
        )
    status = _LINK_FILTERS[word]
    return Links(status, status.value if status else "all")


_URL_ID = re.compile(r"/p/([a-z0-9]+)", re.IGNORECASE)


def _link_key(rest: str) -> str:
    key = rest.strip().split()[0] if rest.strip() else ""
    if (match := _URL_ID.search(key)) is not None:
        return match.group(1).lower()
    return key.strip("#<>()[]\"'.,;").strip()


def _which_link(rest: str, command: str) -> str:
    key = _link_key(rest)
    if not key:
        raise CommandError(N_("Which link? Give its id or reference."), f"/{command} INV-1042", field="id")
    return key


def _parse_status(rest: str, ctx: ParseContext) -> Status:
    return Status(_which_link(rest, "status"))


def _parse_cancel(rest: str, ctx: ParseContext) -> Cancel:
    return Cancel(_which_link(rest, "cancel"))


def _parse_refund(rest: str, ctx: ParseContext) -> RefundAsk:
    key = _which_link(rest, "refund")
    amount = rest.strip().split(None, 1)[1].strip() if len(rest.strip().split(None, 1)) > 1 else ""
    return RefundAsk(key, amount or None)


def _parse_remind(rest: str, ctx: ParseContext) -> Remind:
    return Remind(_which_link(rest, "remind"))


def _parse_alerts(rest: str, ctx: ParseContext) -> Alerts:
    word = rest.strip().casefold()
    if not word:
        return Alerts(None)
    if word in ("on", "yes", "enable", "start", "1", "true"):
        return Alerts(True)
    if word in ("off", "no", "disable", "stop", "0", "false"):
        return Alerts(False)
    raise CommandError(N_("Alerts can be on or off, not “%(typed)s”."), "/alerts on", field="alerts",
                       values={"typed": markup.escape(rest.strip())})


def _parse_currency(rest: str, ctx: ParseContext) -> SetCurrency:
    word = rest.strip()
    if not word:
        return SetCurrency(None)
    code = word.upper()
    if is_currency(code):
        return SetCurrency(code)
    found = symbol_currencies(word)
    if len(found) == 1:
        return SetCurrency(next(iter(found)))
    example = "/currency SGD" if ctx.default_currency != "SGD" else "/currency USD"
    if found:
        ranked = rank_currencies(found, ctx)
        raise CommandError(
            N_("“%(typed)s” is used by several currencies (%(codes)s); give the three-letter code."), example,
            field="currency", choices=ranked, values={"typed": markup.escape(word), "codes": ", ".join(ranked[:5])},
        )
    raise CommandError(N_("“%(typed)s” is not an ISO 4217 currency code."), example, field="currency",
                       values={"typed": markup.escape(word)})


_SHOP_SETTINGS = {"name": "name", "timezone": "timezone", "tz": "timezone", "zone": "timezone",
                  "locale": "locale", "language": "locale",
                  # What invoices print (core/invoices.py): the number's prefix, and the shop's address.
                  "prefix": "invoice_prefix", "invoice_prefix": "invoice_prefix", "address": "address"}


def _parse_shop(rest: str, ctx: ParseContext) -> Shop:
    word, _, value = rest.strip().partition(" ")
    if not word:
        return Shop()
    setting = _SHOP_SETTINGS.get(word.casefold())
    if setting is None:
        raise CommandError(N_("I can change the shop's name, timezone, locale, invoice prefix or address, "
                              "not “%(typed)s”."),
                           "/shop name Cake Corner", field="setting", values={"typed": markup.escape(word[:40])})
    if not value.strip():
        examples = {"name": "/shop name Cake Corner", "timezone": "/shop timezone Asia/Singapore",
                    "locale": "/shop locale id_ID", "invoice_prefix": "/shop prefix CC",
                    "address": "/shop address 1 Orchard Rd, Singapore 238801"}
        asks = {"name": N_("Give the shop's new name."), "timezone": N_("Give the shop's new time zone."),
                "locale": N_("Give the shop's new locale."), "invoice_prefix": N_("Give the new invoice prefix."),
                "address": N_("Give the shop's new address.")}
        raise CommandError(asks[setting], examples[setting], field=setting)
    return Shop(setting, value.strip())


def _parse_language(rest: str, ctx: ParseContext) -> SetLanguage:
    word = rest.strip()
    if not word:
        return SetLanguage(None)
    found = i18n.match_language(word) or next(
        (code for code, name in i18n.AUTONYMS.items() if name.casefold() == word.casefold()), None)
    if found is None:
        raise CommandError(N_("I don't speak “%(typed)s” yet. I speak %(choices)s."), "/language th",
                           field="language", values={"typed": markup.escape(word[:40]),
                                                     "choices": ", ".join(i18n.LANGUAGES)})
    return SetLanguage(found)


def _parse_join(rest: str, ctx: ParseContext) -> Join:
    code = re.sub(r"[\s-]", "", rest).upper()
    if not code:
        raise CommandError(N_("Give the invite code you were sent."), "/join ABCD2345", field="code")
    return Join(code)


def _parse_help(rest: str, ctx: ParseContext) -> Help:
    word = rest.strip().lstrip("/").casefold()
    return Help(topic=_ALIASES.get(word) if word else None)


CHARGE_DETAILS = N_("""**/charge** makes a payment link.
• Amount first: `25`, `25.50`, `1,250.00`, `USD 25`, `25 usd`, `S$25`, `Rp150.000`, `€25`
• Then what it is for: `/charge 25 for 2 birthday cakes`
• Optional: `to +65 9123 4567` / `to alice@example.com` / `to @alice`
• Optional: `exp 2h`, `expires in 3 days`, `valid 30m`, `exp 2026-12-31`
• Optional: `ref INV-1042` or `#INV-1042`
• Recurring: `every week`, `every 2 weeks`, `every month`, `every year`, then `for 6 months` (how many) or
  `until 2027-06`: a new link each period, sent to the customer; `/series` lists them
If an amount could mean two things (`1.000`, `25k`), I ask before making the link.
Example: `/charge 25 for 2 birthday cakes to +65 9123 4567 ref INV-1042 exp 3d`
Example: `/charge 150 tuition every month for 6 months to +65 9123 4567`""")

REFUND_DETAILS = N_("""**/refund** gives a customer's money back through the payment provider.
• `/refund INV-1042` refunds all that is left of the link's payment
• `/refund INV-1042 10.50` refunds part of it
I ask you to confirm first, because a refund cannot be undone; staff may ask, the owner confirms. \
I tell you when the provider confirms it.""")

INVOICE_DETAILS = N_("""**/invoice** makes an itemised payment link with a numbered PDF invoice.
First line: `/invoice to alice@example.com ref INV-77` (both optional). Then one line each:
• an item: `2 x cake 25`, `delivery 5`, `3x candles 1.50`
• `tax 9%` (on every item), `discount 10%` or `discount 5`
Totals are rounded per line, half to even. I answer with the link and the invoice PDF.
In the terminal chat (`paylinks chat`), end a line with `\\` to go on to the next one.""")

SELL_DETAILS = N_("""**Links many can pay** (each payment has its own receipt; the link message shows the count):
• `/sell 25 concert ticket stock 50`: 50 tickets, buyers pick how many
• `/sell 12 brownie box`: no limit · `/sell 30 workshop seat max 20`: at most 20 payments
• `/donate school library fund`: the donor chooses · `/donate flood relief min 5 suggest 10 20 50`
• `/split 120 dinner 4 ways` (or `between 4`, `for 4 people`): 4 exact shares, paid when all are in
Add `exp 3d` or `ref EVT-7` as with /charge; `/cancel` stops a link.""")

PROMO_DETAILS = N_("""**/promo** makes discount codes customers type on the pay page.
• `/promo SAVE10 10%` · `/promo WELCOME 5.00 uses 100 exp 30d`
• `/promo` lists them with how often each was used · `/promo off SAVE10` ends one (I ask first)""")

# ---------------------------------------------------------------- the registry

# `help`, `menu` and `details` are catalog msgids (core.i18n): /help shows them in the reader's language.
COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("charge", "/charge 25 birthday cake",
                N_("a payment link (add `to +65 9123 4567`, `ref INV-1042`, `exp 3d`)"),
                N_("Make a payment link: /charge 25 cake"), parse_charge_or_series, "charge", aliases=("bill",),
                details=CHARGE_DETAILS),
    CommandSpec("invoice", "/invoice to alice@example.com ref INV-77",
                N_("an itemised invoice: items on the next lines (`2 x cake 25`, `delivery 5`, `tax 9%`)"),
                N_("Itemised invoice with PDF: /invoice"), parse_invoice, "invoice", details=INVOICE_DETAILS),
    CommandSpec("series", "/series [stop ID]", N_("your recurring charges, or stop one (asks first)"),
                N_("Recurring charges: /series [stop ID]"), parse_series, "series", aliases=("recurring",)),
    CommandSpec("sell", "/sell 25 concert ticket stock 50",
                N_("a link many can pay (add `stock 50` or `max 20`)"),
                N_("Sell many times: /sell 25 ticket stock 50"), parse_sell, "sell", details=SELL_DETAILS),
    CommandSpec("donate", "/donate school library fund",
                N_("donations: the donor chooses (add `min 5 suggest 10 20 50`)"),
                N_("Donations: /donate flood relief min 5"), parse_donate, "sell", aliases=("donation",),
                details=SELL_DETAILS),
    CommandSpec("split", "/split 120 dinner 4 ways", N_("split a bill into shares (`between 4`, `for 4 people`)"),
                N_("Split a bill: /split 120 dinner 4 ways"), parse_split, "sell", details=SELL_DETAILS),
    CommandSpec("promo", "/promo SAVE10 10%", N_("promo codes: make, list (`/promo`), end (`/promo off SAVE10`)"),
                N_("Promo codes: /promo SAVE10 10%"), parse_promo, "promo", details=PROMO_DETAILS),
    CommandSpec("links", "/links [active|paid|expired|all]", N_("your recent links"),
                N_("Your recent links: /links [active|paid|expired|all]"), _parse_links, "links", aliases=("list",)),
    CommandSpec("status", "/status INV-1042", N_("one link, by id or reference"),
                N_("One link's status: /status <id or reference>"), _parse_status, "status"),
    CommandSpec("cancel", "/cancel INV-1042", N_("cancel an open link"),
                N_("Cancel an unpaid link: /cancel <id or reference>"), _parse_cancel, "cancel"),
    CommandSpec("remind", "/remind INV-1042", N_("remind the customer to pay (once per 12 h)"),
                N_("Remind the customer: /remind <id or reference>"), _parse_remind, "remind"),
    CommandSpec("refund", "/refund INV-1042 [amount]", N_("give a payment back, all of it or an amount (asks first)"),
                N_("Refund a payment: /refund <id or reference> [amount]"), _parse_refund, "refund",
                details=REFUND_DETAILS),
    CommandSpec("report", "/report [today|week|month|2026-11] [live|test]", N_("totals, paid versus open"),
                N_("Sales: /report [today|week|month|YYYY-MM] [live|test]"),
                lambda rest, ctx: parse_report(rest, ctx), "report", aliases=("sales",)),
    CommandSpec("currency", "/currency SGD", N_("your default currency"), N_("Default currency: /currency SGD"),
                _parse_currency, "currency"),
    CommandSpec("invite", "/invite", N_("a one-time code for staff, or for your other chat apps"),
                N_("Invite staff (one-time code)"), lambda rest, ctx: Invite(), "invite"),
    CommandSpec("join", "/join ABCD2345", N_("use an invite code"), N_("Join a shop: /join <code>"), _parse_join,
                "join", needs_shop=False),
    CommandSpec("alerts", "/alerts on|off", N_("paid alerts in this chat"),
                N_("Paid alerts in this chat: /alerts on|off"), _parse_alerts, "alerts", aliases=("alert",)),
    CommandSpec("shop", "/shop [name|timezone|locale VALUE]", N_("your shop's settings, or change one"),
                N_("Shop settings: /shop name Cake Corner"), _parse_shop, "shop"),
    CommandSpec("language", "/language th", N_("the language I answer you in"),
                N_("My language for you: /language th"), _parse_language, "language",
                aliases=("lang", "bahasa", "idioma", "ngonngu", "wika")),
    CommandSpec("dashboard", "/dashboard", N_("a private sign-in link to your shop's web dashboard"),
                N_("Sign in to the web dashboard"), lambda rest, ctx: Dashboard(), "dashboard",
                aliases=("web", "login")),
    CommandSpec("help", "/help", N_("what I can do"), N_("What I can do"), _parse_help, "help_command", listed=False,
                needs_shop=False),
    CommandSpec("start", "/start", N_("open your shop, or see it"), N_("Start (or see your shop)"),
                lambda rest, ctx: Start(), "start", listed=False),
)

BY_NAME: dict[str, CommandSpec] = {spec.name: spec for spec in COMMANDS}
_ALIASES: dict[str, str] = {word: spec.name for spec in COMMANDS for word in (spec.name, *spec.aliases)}
# Kept for importers of the old module: canonical name -> usage line.
USAGE: dict[str, str] = {spec.name: spec.usage for spec in COMMANDS}


# ---------------------------------------------------------------- finding the command word


@dataclass(frozen=True, slots=True)
class CommandWord:
    name: str | None  # canonical command; "unknown" for an unknown /word; None when not a command at all
    typed: str  # the word as written, e.g. "/Charge@PayBot"
    rest: str
    slash: bool


_WORD = re.compile(r"^\s*(/?)([^\s@/]*)(@\S*)?(?:\s+|$)(.*)$", re.DOTALL)


def split_command(text: str) -> CommandWord:
    """The command word of a message. The slash is optional; `@BotName` after it is dropped."""
    text = (text or "").strip()
    match = _WORD.match(text)
    if not match:
        slash = text.startswith("/")
        return CommandWord("unknown" if slash else None, text.split()[0] if slash else "", text, slash)
    if not match.group(1) and not match.group(2):
        return CommandWord(None, "", text, False)
    slash, word, rest = bool(match.group(1)), match.group(2), match.group(4).strip()
    typed = text[: len(text) - len(match.group(4))].strip() if match.group(4) else text
    name = _ALIASES.get(word.casefold())
    if name is None:
        return CommandWord("unknown" if slash else None, typed, rest if slash else text, slash)
    return CommandWord(name, typed, rest, slash)


def suggest(word: CommandWord) -> str | None:
    """"/chrage 25 cake" -> "/charge 25 cake": the command a mistyped word most likely meant."""
    typed = (word.typed.split("@")[0].lstrip("/") if word.slash else (word.rest.split() or [""])[0]).casefold()
    if len(typed) < 3:
        return None
    close = difflib.get_close_matches(typed, list(_ALIASES), n=1, cutoff=0.75)
    if not close:
        return None
    rest = word.rest if word.slash else word.rest[len(typed):].strip()
    return f"/{_ALIASES[close[0]]} {rest}".rstrip()


_GREETINGS = frozenset(
    "hi hello hey hiya heya yo hola hallo halo hai ciao salut bonjour ola oi sup morning evening gm "
    "good-morning good-afternoon good-evening good-day howdy greetings namaste".split()
)
_THANKS = frozenset("thanks thank-you thankyou thx ty tq tysm cheers danke merci gracias terima-kasih "
                    "arigato obrigado cảm-ơn".split())
_FILLER = re.compile(r"[\s!.,?~:;)(*^_\-–—'’\"]+")


def greeting(text: str) -> Greeting | None:
    """"hi", "Hello!", "thanks!", "thank you :)" -> a Greeting; anything longer or else -> None."""
    words = [w for w in _FILLER.split(text.casefold()) if w and not _is_emoji(w)]
    if not words or len(words) > 4:
        return None
    joined = "-".join(words)
    tail = {"there", "bot", "paylinks", "again", "so", "much", "a", "lot", "you", "all", "team"}
    for size in range(min(3, len(words)), 0, -1):
        head = "-".join(words[:size])
        if all(w in tail for w in words[size:]):
            if head in _THANKS or (head == "thank" and "you" in words[size:]):
                return Greeting(thanks=True)
            if head in _GREETINGS:
                return Greeting()
    return Greeting(thanks=True) if joined in _THANKS else None


def _is_emoji(word: str) -> bool:
    return all(not ch.isalnum() for ch in word)


def parse(text: str, ctx: ParseContext) -> Command | CommandError:
    """Any text -> a command, or the CommandError to show. Never raises."""
    try:
        return _parse(split_command(text), ctx)
    except CommandError as error:
        return error


def _parse(word: CommandWord, ctx: ParseContext) -> Command:
    if word.name is None or word.name == "unknown":
        found = greeting(word.rest if word.name is None else "")
        if found is not None:
            return found
        return Help(unknown=word.typed or None, suggestion=suggest(word))
    return BY_NAME[word.name].parse(word.rest, ctx)
