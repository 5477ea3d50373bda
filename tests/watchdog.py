"""A hang guard for the suite: a test (setup, call and teardown) that runs past HANG_S is reported with the
stack of every asyncio task and thread, and the run ends with exit code 70.

CI gives the suite 90 minutes; without this a single stuck await (a teardown waiting on a connection, say)
would spend all of them and print nothing useful. The asyncio stacks matter most: a stuck test's main
thread only shows the event loop's select().
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import traceback
from collections.abc import Iterator
from types import FrameType

import pytest

HANG_S = float(os.environ.get("PAYLINKS_TEST_HANG_S", "240"))
EXIT_CODE = 70


def _main_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop the main thread is running, found from its frames (the loop has no other handle
    outside its own thread)."""
    frame: FrameType | None = sys._current_frames().get(threading.main_thread().ident or 0)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, asyncio.AbstractEventLoop):
            return candidate
        frame = frame.f_back
    return None


_config: pytest.Config | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _config
    _config = config


def _dump(nodeid: str) -> None:
    # pytest captures file descriptor 2 into a temporary file that os._exit would throw away.
    capture = _config.pluginmanager.getplugin("capturemanager") if _config is not None else None
    if capture is not None:
        capture.suspend_global_capture(in_=False)
    out = sys.__stderr__
    assert out is not None
    # Threads first and briefly (their innermost frames); the asyncio tasks last, where a log's tail is read.
    print(f"\n\n=== HANG: {nodeid} ran past {HANG_S:.0f}s; threads, then asyncio tasks ===", file=out)
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident():
            continue
        print(f"--- thread {ident}", file=out)
        print("".join(traceback.format_stack(frame)[-6:]), end="", file=out)
    loop = _main_loop()
    tasks: list[asyncio.Task[object]] = []
    if loop is not None:
        for _ in range(3):  # the task set may change under us; this is only a report
            try:
                tasks = list(asyncio.all_tasks(loop))
                break
            except RuntimeError:
                continue
    for task in tasks:
        print(f"--- {task!r}", file=out)
        try:
            task.print_stack(limit=12, file=out)
        except Exception as exc:  # a diagnostic must not fail itself
            print(f"    (stack unavailable: {exc})", file=out)
    print(f"=== HANG: {nodeid}: {len(tasks)} asyncio tasks above ===", file=out)
    out.flush()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    def fire() -> None:
        _dump(item.nodeid)
        os._exit(EXIT_CODE)

    timer = threading.Timer(HANG_S, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
