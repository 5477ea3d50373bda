"""Memory benchmark (issue 19, point 5): RSS of `paylinks serve` with every plug-in enabled.

Three rounds of N link creations (POST /api/v1/links) and N pay-page views (GET /p/{id} over the links
just made, so the page caches see many distinct links); RSS is read from /proc after each round. Target:
at most 200 MB after the rounds, and no growth between the second and third (caches are bounded).
Platforms point at a closed local port: nothing leaves the machine, and nothing needs to.

    python -m bench.memory [--count 100000]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.run import BENCH_LIMITS, free_port, paylinks, wait_for

BIN = Path(sys.executable).parent
TARGET_MB = 200.0
GROWTH_MB = 10.0  # "not growing": round 3 within this of round 2 (allocator noise)

PLUGINS = {
    # Every chat platform on, each at a closed port on this machine (no network, no SDK call succeeds).
    "PAYLINKS_TELEGRAM__ENABLED": "true",
    "PAYLINKS_TELEGRAM__TOKEN": "123456:bench-token",
    "PAYLINKS_TELEGRAM__WEBHOOK_SECRET": "bench-secret",
    "PAYLINKS_SLACK__ENABLED": "true",
    "PAYLINKS_SLACK__BOT_TOKEN": "xoxb-bench",
    "PAYLINKS_SLACK__SIGNING_SECRET": "bench-signing-secret",
    "PAYLINKS_WHATSAPP__ENABLED": "true",
    "PAYLINKS_WHATSAPP__ACCOUNT_SID": "AC" + "0" * 32,
    "PAYLINKS_WHATSAPP__AUTH_TOKEN": "bench-auth-token",
    "PAYLINKS_WHATSAPP__FROM_NUMBER": "whatsapp:+14155238886",
    "PAYLINKS_EMAIL__ENABLED": "true",
}


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else float("nan")


def wrk_count(url: str, count: int, script: Path, connections: int = 32) -> int:
    """Run wrk in 5 s slices until `count` requests were answered; returns how many were."""
    done = 0
    while done < count:
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", "-d5s", "-s", str(script), url],
                             capture_output=True, text=True, check=True).stdout
        found = re.search(r"(\d+) requests in", out)
        done += int(found.group(1)) if found else 0
    return done


def measure(count: int) -> list[tuple[int, float]]:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk, or `make bench` installs it)")
    workdir = Path(tempfile.mkdtemp(prefix="paylinks-memory-"))
    port, dead = free_port(), free_port()
    database = workdir / "paylinks.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINKS_")}
    env.update({
        "PAYLINKS_DATABASE__URL": f"sqlite+aiosqlite:///{database}",
        "PAYLINKS_SERVER__PORT": str(port),
        "PAYLINKS_SERVER__PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "PAYLINKS_SERVER__LOG_LEVEL": "warning",
        "PAYLINKS_TELEGRAM__API_BASE_URL": f"http://127.0.0.1:{dead}",
        "PAYLINKS_SLACK__API_BASE_URL": f"http://127.0.0.1:{dead}/api/",
        "PAYLINKS_WHATSAPP__API_BASE_URL": f"http://127.0.0.1:{dead}",
        **PLUGINS,
        **BENCH_LIMITS,
    })
    merchant = paylinks(env, "merchant", "create", "--name", "Bench", "--currency", "SGD")
    key = paylinks(env, "apikey", "create", "--merchant", merchant)
    post = workdir / "post.lua"
    post.write_text('wrk.method = "POST"\nwrk.body = \'{"amount": "25.00", "description": "Chocolate cake"}\'\n'
                    'wrk.headers["Content-Type"] = "application/json"\n'
                    f'wrk.headers["Authorization"] = "Bearer {key}"\n')
    figures: list[tuple[int, float]] = []
    proc = subprocess.Popen([str(BIN / "paylinks"), "serve"], env=env, cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz")
        figures.append((0, rss_mb(proc.pid)))
        made = 0
        for round_ in range(1, 4):
            made += wrk_count(f"http://127.0.0.1:{port}/api/v1/links", count, post)
            with sqlite3.connect(database) as conn:
                ids = [row[0] for row in conn.execute("SELECT id FROM payment_link ORDER BY created_at DESC LIMIT ?",
                                                      (count,))]
            views = workdir / "views.lua"
            views.write_text("paths = {" + ",".join(f'"/p/{i}"' for i in ids) + "}\n"
                             "n = 0\nrequest = function()\n  n = n % #paths + 1\n"
                             "  return wrk.format(nil, paths[n])\nend\n")
            wrk_count(f"http://127.0.0.1:{port}/", count, views)
            figures.append((round_, rss_mb(proc.pid)))
            print(f"  round {round_}: {made} links made, RSS {figures[-1][1]:.0f} MB", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(workdir, ignore_errors=True)
    return figures


def report(figures: list[tuple[int, float]], count: int) -> str:
    last, second = figures[-1][1], figures[-2][1]
    growth = last - second
    lines = [f"memory (paylinks serve, every plug-in on, {count:,} creations + {count:,} views a round; "
             f"load {os.getloadavg()[0]:.2f})",
             "  RSS MB: " + ", ".join(f"{'start' if r == 0 else f'round {r}'} {mb:.0f}" for r, mb in figures),
             f"  RSS after round 3 {last:.0f} MB (target <= {TARGET_MB:.0f})  "
             f"{'PASS' if last <= TARGET_MB else 'FAIL'}",
             f"  growth round 2 -> 3 {growth:+.1f} MB (target <= {GROWTH_MB:.0f})  "
             f"{'PASS' if growth <= GROWTH_MB else 'FAIL'}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args()
    print(report(measure(args.count), args.count), flush=True)


if __name__ == "__main__":
    main()
