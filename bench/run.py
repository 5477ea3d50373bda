"""`make bench`: the web benchmarks of issues 2 and 19, measured side by side with wrk in one run.

1. ceiling: a bare aiohttp JSON handler;  2. GET /p/{id};  3. POST /api/v1/links;  4. GET /p/{id}/qr.svg;
5. the receipt page (GET /p/{id} of a paid link).
Each runs the same wrk load against a single-process server on this machine, in interleaved rounds
(ceiling, page, create, …; again…) so a passing disturbance hits all alike. The report gives the
median requests/s (with the range over the rounds), the median p99 latency, each median as a ratio
to the ceiling's, and the issue's targets with PASS/FAIL. Then start-up (bench/startup.py) and the
outbox benchmark (bench/outbox.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass
class Result:
    name: str
    rps: float
    p99_ms: float
    errors: int
    low: float = 0.0  # the range of req/s over the rounds
    high: float = 0.0
    cpu_us: float = float("nan")  # the server's CPU time (user + system) per request answered
    requests: int = 0


def median_of(runs: list[Result]) -> Result:
    rates = sorted(r.rps for r in runs)
    return Result(runs[0].name, statistics.median(rates), statistics.median(r.p99_ms for r in runs),
                  sum(r.errors for r in runs), rates[0], rates[-1],
                  statistics.median(r.cpu_us for r in runs), sum(r.requests for r in runs))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not come up")


BENCH_LIMITS = {
    "PAYLINKS_LIMITS__PUBLIC_PER_IP": "1000000/s",
    "PAYLINKS_LIMITS__BAD_AUTH_PER_IP": "1000000/s",
    "PAYLINKS_LIMITS__API_PER_KEY": "1000000/s",
}

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(name: str, output: str) -> Result:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    p99_ms = float(p99.group(1)) * _UNITS_MS[p99.group(2)] if p99 else float("nan")
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    total = re.search(r"(\d+) requests in", output)
    return Result(name, rps, p99_ms, errors, requests=int(total.group(1)) if total else 0)


def wrk(name: str, url: str, *, seconds: int, connections: int, script: Path | None = None,
        pid: int | None = None) -> Result:
    """One wrk run; with the server's pid, also its CPU time per request (steadier than req/s on a busy
    machine: other processes' load lowers the rate, much less the CPU each request costs)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    result = parse_wrk(name, out)
    if pid and result.requests:
        result.cpu_us = (cpu_seconds(pid) - before) / result.requests * 1e6
    return result


def paylinks(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([str(BIN / "paylinks"), *args], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def run(seconds: int, connections: int, database_url: str | None, rounds: int) -> list[Result]:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk, or `make bench` installs it)")
    workdir = Path(tempfile.mkdtemp(prefix="paylinks-bench-"))
    port_ceiling, port_app = free_port(), free_port()
    env = dict(os.environ)
    env.update({
        "PAYLINKS_DATABASE__URL": database_url or f"sqlite+aiosqlite:///{workdir / 'paylinks.db'}",
        "PAYLINKS_SERVER__PORT": str(port_app),
        "PAYLINKS_SERVER__PUBLIC_BASE_URL": f"http://127.0.0.1:{port_app}",
        "PAYLINKS_SERVER__LOG_LEVEL": "warning",
        # wrk is one client with one key: raise the limits far above what it can send (rather than
        # switching them off), so the figures include the limiter's own cost.
        **BENCH_LIMITS,
    })
    env["PAYLINKS_PAYMENTS__SANDBOX__WEBHOOK_SECRET"] = SANDBOX_SECRET  # to pay the receipt's link
    if database_url:
        paylinks(env, "migrate")
    merchant = paylinks(env, "merchant", "create", "--name", "Bench Cakes", "--currency", "SGD",
                        "--locale", "en_SG")
    key = paylinks(env, "apikey", "create", "--merchant", merchant)
    link_url = paylinks(env, "link", "create", "--merchant", merchant, "25", "Chocolate cake")
    receipt_url = paylinks(env, "link", "create", "--merchant", merchant, "25", "Lemon tart")
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps({'amount': '25.00', 'description': 'Chocolate cake'}))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    results: list[Result] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "bench.ceiling", "--port", str(port_ceiling)],
                                      cwd=ROOT))
        procs.append(subprocess.Popen([str(BIN / "paylinks"), "serve"], env=env, cwd=workdir))
        wait_for(f"http://127.0.0.1:{port_ceiling}/")
        wait_for(f"http://127.0.0.1:{port_app}/healthz")
        pay_with_sandbox(f"http://127.0.0.1:{port_app}", receipt_url.rsplit("/", 1)[1])
        ceiling_url = f"http://127.0.0.1:{port_ceiling}/"
        loads: list[tuple[str, str, Path | None]] = [
            ("ceiling: bare aiohttp JSON", ceiling_url, None),
            ("GET /p/{id}", link_url, None),
            ("POST /api/v1/links", f"http://127.0.0.1:{port_app}/api/v1/links", script),
            ("GET /p/{id}/qr.svg", f"{link_url}/qr.svg", None),
            ("GET /p/{id} (receipt)", receipt_url, None),
        ]
        # Warm the servers up so no measurement pays for first-request costs.
        for _name, url, lua in loads:
            wrk("warm-up", url, seconds=1, connections=connections, script=lua)
        runs: list[list[Result]] = [[] for _ in loads]
        pids = [procs[0].pid, *[procs[1].pid] * (len(loads) - 1)]
        for _ in range(rounds):
            for i, (name, url, lua) in enumerate(loads):
                runs[i].append(wrk(name, url, seconds=seconds, connections=connections, script=lua, pid=pids[i]))
        results = [median_of(r) for r in runs]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    return results


SANDBOX_SECRET = "whsec_web_bench"
# Issue 19: ratio to the ceiling at least, and p99 at most (ms).
RATIO_TARGETS = {"GET /p/{id}": 0.50, "POST /api/v1/links": 0.25}
P99_TARGETS = {"POST /api/v1/links": 20.0}


def pay_with_sandbox(base_url: str, link_id: str) -> None:
    """Mark the receipt's link paid with a signed sandbox webhook, as the sandbox gateway sends it."""
    from adapters.payments.sandbox import CheckoutSession, SandboxProvider

    provider = SandboxProvider(public_base_url=base_url, webhook_secret=SANDBOX_SECRET)
    checkout = CheckoutSession(f"cs_{link_id}", link_id, 2500, "SGD", "tart", "https://example.invalid/")
    charge_id, event_id = provider.charge_ids(checkout)
    body, headers = provider.build_webhook(checkout, charge_id=charge_id, event_id=event_id, payer_name="Bench")
    request = urllib.request.Request(f"{base_url}/webhooks/sandbox", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    if answer.get("outcome") != "paid":
        raise RuntimeError(f"the receipt's link was not paid: {answer}")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(results: list[Result], targets: dict[str, float] | None = None,
           p99_targets: dict[str, float] | None = None) -> str:
    targets = RATIO_TARGETS if targets is None else targets
    p99_targets = P99_TARGETS if p99_targets is None else p99_targets
    ceiling = results[0].rps
    lines = [f"{'benchmark':28} {'req/s':>7} {'(range)':>15} {'p99 ms':>7} {'ratio':>6} {'target':>16} "
             f"{'':4} {'errors':>6} {'CPU us/req':>10} {'CPU ratio':>9}"]
    for r in results:
        target, p99_target = targets.get(r.name), p99_targets.get(r.name)
        wanted = " ".join(part for part in (f">={target:.2f}" if target else "",
                                             f"p99<={p99_target:.0f}" if p99_target else "") if part)
        ok = (target is None or r.rps / ceiling >= target) and (p99_target is None or r.p99_ms <= p99_target)
        lines.append(
            f"{r.name:28} {r.rps:7.0f} {f'({r.low:.0f}-{r.high:.0f})':>15} {r.p99_ms:7.2f} {r.rps / ceiling:6.3f} "
            f"{wanted:>16} {verdict(ok) if wanted else '':4} {r.errors:6d} {r.cpu_us:10.0f} "
            f"{results[0].cpu_us / r.cpu_us:9.3f}"
        )
    lines.append("(ratio: req/s against the ceiling's, which the targets use; CPU ratio: the ceiling's CPU time "
                 "per request over this one's, the same comparison with other processes' load taken out)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--database-url", help="e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/bench")
    parser.add_argument("--skip-outbox", action="store_true")
    parser.add_argument("--skip-startup", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    results = run(args.seconds, args.connections, args.database_url, args.rounds)
    print(f"web benchmarks ({os.cpu_count()} cores, load {load:.2f} before / {os.getloadavg()[0]:.2f} after, "
          f"wrk -t1 -c{args.connections} -d{args.seconds}s, median of {args.rounds} interleaved rounds, "
          f"{'PostgreSQL' if args.database_url else 'SQLite'})", flush=True)
    print(report(results), flush=True)
    if not args.skip_startup:
        from bench import startup

        print()
        print(startup.report(startup.measure(7), 7), flush=True)
    if not args.skip_outbox and (ROOT / "bench" / "outbox.py").exists():
        from bench import outbox

        print()
        outbox.main()


if __name__ == "__main__":
    main()
