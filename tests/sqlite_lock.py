"""Hold SQLite's write lock from a REAL second process (`BEGIN EXCLUSIVE` in python's sqlite3), as
`sqlite3 paylinks.db 'BEGIN EXCLUSIVE'`, `paylinks worker` or a CLI beside `paylinks serve` would."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_HOLDER = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()  # held until the test writes a line (or goes away)
con.execute("ROLLBACK")
print("released", flush=True)
"""


class HeldLock:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    @property
    def held(self) -> bool:
        return self.proc.poll() is None

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            assert self.proc.stdout.readline().strip() == "released"
            self.proc.wait(timeout=10)


def db_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


@contextmanager
def write_lock_held(path: Path) -> Iterator[HeldLock]:
    """The lock is held when this is entered, and released (by the holder itself) when it ends."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    lock = HeldLock(proc)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked", "the holder could not take the write lock"
        yield lock
    finally:
        try:
            lock.release()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
