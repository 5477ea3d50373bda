"""Building blocks of settings sections (pydantic models), shared by the programs and the plug-ins.

A section is a `Section` model: strict types (a TOML `"yes"` is not a boolean, `"80"` is not a port),
unknown keys refused. Durations are written like "30m" and read as timedelta; rates like "20/s" are
checked when loaded and kept as text (the dispatcher parses them). bots/config.py assembles the whole
file from these sections and turns validation errors into messages naming the key.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr

from core.durations import parse_duration
from core.pacing import RateError, parse_rate


class Section(BaseModel):
    """One `[section]` of the settings file."""

    # Strict: file values must have the type the key documents (env text is converted before, in
    # bots/config.py). Mutable on purpose: tests and tools adjust a loaded Settings in place.
    model_config = ConfigDict(extra="forbid", strict=True)


class PluginSection(Section):
    """The section of a chat platform plug-in: `enabled` turns the platform on."""

    enabled: bool = False


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as \"7d\", got {value!r}")
    return parse_duration(value)


def _rate(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a rate; write it like \"1/s\" or \"20/min\"")
    try:
        parse_rate(value)
    except RateError as exc:
        raise ValueError(str(exc)) from None
    return value


# "30m", "7d", "1h30m" in the file; a timedelta in the program.
Duration = Annotated[timedelta, BeforeValidator(_duration)]
# "20/s", "300/min", "1/3s" or "unlimited"; kept as written, checked on load.
RateText = Annotated[str, BeforeValidator(_rate)]

NO_SECRET = SecretStr("")


def reveal(secret: SecretStr | str) -> str:
    """The text of a secret setting (adapters accept plain strings too, as their tests pass them)."""
    return secret.get_secret_value() if isinstance(secret, SecretStr) else str(secret)
