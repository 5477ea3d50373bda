"""The chat command grammar: text in, a command value (or a CommandError value) out.

Pure: no I/O, no clock of its own (the ParseContext carries "now", the merchant's locale, currency and
time zone). Generous in what it reads — slash optional, `/charge@SomeBot`, any case, amounts written the
way people in the merchant's locale write them, currency codes and symbols before or after — and exact in
what it produces: amounts go through core.money.to_minor, never floats. A /charge whose amount could mean
two things comes back as a Choice, so the conversation asks before making anything.

Every user mistake is a CommandError that says what was wrong and carries a corrected example built from
what the seller typed. `parse()` returns it as a value; the helpers raise it. Nothing else escapes.

Modules: `registry` (every command declared once, the command word, greetings and "did you mean"),
`amounts` (numbers and currencies), `charge` (the /charge phrase and its doubts), `expiry`, `contacts`,
`periods` (/report), `values` (what they all produce).
"""

from __future__ import annotations

from core.commands.amounts import (
    COMMON_CODES,
    SYMBOL_LOCALES,
    format_amount_text,
    grouping_alternative,
    parse_decimal,
    parse_money,
    symbol_currencies,
)
from core.commands.charge import parse_charge
from core.commands.periods import parse_period
from core.commands.registry import (
    BY_NAME,
    COMMANDS,
    USAGE,
    CommandSpec,
    CommandWord,
    greeting,
    parse,
    split_command,
    suggest,
)
from core.commands.values import (
    Alerts,
    Cancel,
    Charge,
    Choice,
    Command,
    CommandError,
    Dashboard,
    Doubt,
    Greeting,
    Help,
    Invite,
    Join,
    Links,
    ParseContext,
    Period,
    RefundAsk,
    Remind,
    Report,
    SetCurrency,
    SetLanguage,
    Shop,
    Start,
    Status,
)
from core.locales import babel_locale, territory_of

__all__ = [
    "BY_NAME",
    "COMMANDS",
    "COMMON_CODES",
    "SYMBOL_LOCALES",
    "USAGE",
    "Alerts",
    "Cancel",
    "Charge",
    "Choice",
    "Command",
    "CommandError",
    "CommandSpec",
    "CommandWord",
    "Dashboard",
    "Doubt",
    "Greeting",
    "Help",
    "Invite",
    "Join",
    "Links",
    "ParseContext",
    "Period",
    "RefundAsk",
    "Remind",
    "Report",
    "SetCurrency",
    "SetLanguage",
    "Shop",
    "Start",
    "Status",
    "babel_locale",
    "format_amount_text",
    "greeting",
    "grouping_alternative",
    "parse",
    "parse_charge",
    "parse_decimal",
    "parse_money",
    "parse_period",
    "split_command",
    "suggest",
    "symbol_currencies",
    "territory_of",
]
