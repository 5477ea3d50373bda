"""`make bench`, part 3: the server under another process's SQLite write lock (issue 11.1).

A second process holds `BEGIN EXCLUSIVE` on the database of a running `paylinks serve` for 10 s (as
`sqlite3 paylinks.db 'BEGIN EXCLUSIVE'`, a `paylinks worker` or a CLI could). Meanwhile wrk loads
GET /healthz, GET /p/{id} and GET /api/v1/links/{id} in turn (target p99 <= 100 ms: they must keep
answering at once), while a client keeps POSTing /api/v1/links: each such write must wait for
database.busy_timeout and get 503 database_busy with Retry-After. After the lock goes, a write must get 201.
The same reads are first measured without the lock, for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.run import BENCH_LIMITS, BIN, Result, free_port, paylinks, wait_for, wrk

HOLD_S = 10
P99_TARGET_MS = 100.0

_HOLDER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("ROLLBACK")
"""


@dataclass
class Write:
    status: int
    seconds: float
    code: str = ""
    retry_after: str | None = None


@dataclass
class Writer:
    """POSTs a link again and again (one at a time) until told to stop."""

    url: str
    key: str
    done: list[Write] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def post(self) -> Write:
        body = json.dumps({"amount": "25.00", "description": "Chocolate cake"}).encode()
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {self.key}"})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                resp.read()
                return Write(resp.status, time.perf_counter() - started)
        except urllib.error.HTTPError as exc:
            payload = json.loads(exc.read() or b"{}")
            return Write(exc.code, time.perf_counter() - started, payload.get("error", {}).get("code", ""),
                         exc.headers.get("Retry-After"))

    def run(self) -> None:
        while not self.stop.is_set():
            self.done.append(self.post())


def lua_get(path: Path, headers: dict[str, str]) -> Path:
    path.write_text("".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items()))
    return path


def measure_reads(base: str, link_id: str, api_script: Path, seconds: int, connections: int) -> list[Result]:
    return [
        wrk("GET /healthz", f"{base}/healthz", seconds=seconds, connections=connections),
        wrk("GET /p/{id}", f"{base}/p/{link_id}", seconds=seconds, connections=connections),
        wrk("GET /api/v1/links/{id}", f"{base}/api/v1/links/{link_id}", seconds=seconds,
            connections=connections, script=api_script),
    ]


def run(connections: int, busy_timeout: str) -> str:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk, or `make bench` installs it)")
    workdir = Path(tempfile.mkdtemp(prefix="paylinks-bench-lock-"))
    db_file = workdir / "paylinks.db"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update({
        "PAYLINKS_DATABASE__URL": f"sqlite+aiosqlite:///{db_file}",
        "PAYLINKS_DATABASE__BUSY_TIMEOUT": busy_timeout,
        "PAYLINKS_SERVER__PORT": str(port),
        "PAYLINKS_SERVER__PUBLIC_BASE_URL": base,
        "PAYLINKS_SERVER__LOG_LEVEL": "error",
        **BENCH_LIMITS,  # the reads under wrk must measure the lock, not the API's per-key limit
    })
    merchant = paylinks(env, "merchant", "create", "--name", "Bench Cakes", "--currency", "SGD", "--locale", "en_SG")
    key = paylinks(env, "apikey", "create", "--merchant", merchant)
    link_id = paylinks(env, "link", "create", "--merchant", merchant, "25", "Chocolate cake").rsplit("/", 1)[-1]
    api_script = lua_get(workdir / "api.lua", {"Authorization": f"Bearer {key}"})
    per_read_s = max(1, (HOLD_S - 1) // 3)  # the three read loads fit inside the hold
    server = subprocess.Popen([str(BIN / "paylinks"), "serve"], env=env, cwd=workdir)
    holder: subprocess.Popen[str] | None = None
    try:
        wait_for(f"{base}/healthz")
        wrk("warm-up", f"{base}/p/{link_id}", seconds=2, connections=connections)
        free = measure_reads(base, link_id, api_script, per_read_s, connections)

        holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(db_file), str(HOLD_S)],
                                  stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        locked_at = time.perf_counter()
        writer = Writer(f"{base}/api/v1/links", key)
        thread = threading.Thread(target=writer.run, daemon=True)
        thread.start()
        time.sleep(0.2)  # a write is waiting for the lock before the reads start
        held = measure_reads(base, link_id, api_script, per_read_s, connections)
        reads_end = time.perf_counter() - locked_at
        writer.stop.set()
        thread.join(timeout=60)
        holder.wait(timeout=30)
        after = writer.post()
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    lines = [
        f"under a {HOLD_S} s BEGIN EXCLUSIVE from another process (wrk -t1 -c{connections} -d{per_read_s}s each, "
        f"database.busy_timeout={busy_timeout}; reads ended {reads_end:.1f} s into the hold)",
        f"{'read':26} {'req/s free':>10} {'p99 free':>9} {'req/s held':>10} {'p99 held':>9} {'target':>8} "
        f"{'errors':>6}",
    ]
    for before, during in zip(free, held, strict=True):
        lines.append(
            f"{during.name:26} {before.rps:10.0f} {before.p99_ms:7.2f}ms {during.rps:10.0f} {during.p99_ms:7.2f}ms "
            f"{'<=' + format(P99_TARGET_MS, '.0f') + 'ms':>8} {during.errors:6d}"
            + ("  FROZEN (no answers)" if during.rps == 0 else "" if during.p99_ms <= P99_TARGET_MS
               else "  OVER TARGET")
        )
    busy = [w for w in writer.done if w.status == 503 and w.code == "database_busy" and w.retry_after]
    waits = sorted(w.seconds for w in busy)
    others = sorted(w.status for w in writer.done if w not in busy)
    lines.append(
        f"writes during the hold: {len(writer.done)}; 503 database_busy with Retry-After: {len(busy)}"
        + (f" (each waited {waits[0]:.2f}-{waits[-1]:.2f} s)" if waits else "")
        + f"; others: {others or 'none'} (201 = went through once the lock was released)"
    )
    lines.append(f"first write after the lock was released: {after.status} in {after.seconds * 1000:.1f} ms")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--busy-timeout", default="5s")
    args = parser.parse_args()
    print(run(args.connections, args.busy_timeout))


if __name__ == "__main__":
    main()
