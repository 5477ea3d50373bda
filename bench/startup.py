"""Start-up benchmark (issue 19, point 6): wall time of `paylinks` commands, from exec to exit.

`paylinks --help` (target <= 0.3 s) and commands that open the database (<= 0.6 s: `merchant list`,
`link create`) on a migrated SQLite file, in interleaved rounds; the median and range per command.
Bytecode caches are allowed (as on an installed machine): one warm-up run writes them first.

    python -m bench.startup [--rounds 7]      # `make bench` runs it
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent / "paylinks"
TARGETS = {"--help": 0.3, "merchant list": 0.6, "link create": 0.6}


def timed(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([str(BIN), *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def measure(rounds: int) -> list[tuple[str, float, float, float, float]]:
    """(command, median s, low, high, target) per command."""
    workdir = Path(tempfile.mkdtemp(prefix="paylinks-startup-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINKS_") and k != "PYTHONDONTWRITEBYTECODE"}
    env["PAYLINKS_DATABASE__URL"] = f"sqlite+aiosqlite:///{workdir / 'startup.db'}"
    env["PAYLINKS_SERVER__LOG_LEVEL"] = "warning"
    subprocess.run([str(BIN), "migrate"], env=env, check=True, capture_output=True)
    merchant = subprocess.run([str(BIN), "merchant", "create", "--name", "Bench", "--currency", "SGD"], env=env,
                              check=True, capture_output=True, text=True).stdout.strip()
    commands = {
        "--help": ("--help",),
        "merchant list": ("merchant", "list"),
        "link create": ("link", "create", "--merchant", merchant, "25", "Chocolate cake"),
    }
    for args in commands.values():  # warm-up: bytecode caches, the page cache
        timed(env, *args)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, args in commands.items():
            times[name].append(timed(env, *args))
    return [(name, statistics.median(t), min(t), max(t), TARGETS[name]) for name, t in times.items()]


def report(rows: list[tuple[str, float, float, float, float]], rounds: int) -> str:
    lines = [f"start-up ({os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, median of {rounds} interleaved "
             "rounds, wall time from exec to exit)",
             f"{'command':28} {'median s':>8} {'(range)':>13} {'target':>7} {'':>4}"]
    for name, median, low, high, target in rows:
        verdict = "PASS" if median <= target else "FAIL"
        lines.append(f"{'paylinks ' + name:28} {median:8.3f} {f'({low:.2f}-{high:.2f})':>13} "
                     f"{f'<={target:.1f}':>7} {verdict:>4}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(report(measure(args.rounds), args.rounds))


if __name__ == "__main__":
    main()
