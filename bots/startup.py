"""The collector held back while a process starts (bots/cli.py main, until build_services is done).

Start-up creates a few hundred thousand objects (models, settings, SQLAlchemy's and pydantic's classes) that
live as long as the process; the collector would scan them again and again while they are made (~50 ms of a
database command's ~0.65 s). They are frozen once built, so later collections in `serve` skip them too.
"""

from __future__ import annotations

import gc

_normal: tuple[int, int, int] | None = None


def hold_collector() -> None:
    global _normal
    if _normal is None:
        _normal = gc.get_threshold()
        gc.set_threshold(100_000, *_normal[1:])  # not off: a command that never reaches finished() still collects


def finished() -> None:
    """Everything start-up made is kept: freeze it and collect as usual from here on."""
    global _normal
    if _normal is not None:
        gc.freeze()
        gc.set_threshold(*_normal)
        _normal = None
