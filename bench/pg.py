"""`make bench-pg` (issue 19, point 4): scale-out on PostgreSQL beside one SQLite process, in one run.

PostgreSQL: 2 `paylinks serve` + 1 `paylinks worker` on a fresh database of the local server (created
and dropped here; PAYLINKS_BENCH_PG_URL names the server, default postgres@127.0.0.1:5432). No load
balancer: one wrk per serve process at once (-c16 each), the figures summed. SQLite: one `paylinks serve`
with one wrk (-c32). Rounds interleave (SQLite, PostgreSQL; again…); medians with ranges.

Reported: link creations/s, pay pages/s, each process's CPU time per request, payments/s end to end
(signed sandbox webhooks sent to the serve processes in turn until every paid alert is delivered) and
the alert latency (webhook answered -> the alert's outbox row marked sent, by whichever process sent it).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.run import BENCH_LIMITS, SANDBOX_SECRET, Result, cpu_seconds, free_port, paylinks, wait_for, wrk

BIN = Path(sys.executable).parent
SERVER = os.environ.get("PAYLINKS_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")


def _psql(sql: str) -> None:
    host = SERVER.split("@", 1)[1].split("/", 1)[0]
    user = SERVER.split("://", 1)[1].split("@", 1)[0]
    name, port = [*host.split(":"), "5432"][:2]
    subprocess.run(["psql", "-h", name, "-p", port, "-U", user, "-d", "postgres", "-qc", sql], check=True,
                   capture_output=True)


def _env(database_url: str, port: int, workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINKS_")}
    env.update({
        "PAYLINKS_DATABASE__URL": database_url,
        "PAYLINKS_SERVER__PORT": str(port),
        "PAYLINKS_SERVER__PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "PAYLINKS_SERVER__LOG_LEVEL": "warning",
        "PAYLINKS_PAYMENTS__SANDBOX__WEBHOOK_SECRET": SANDBOX_SECRET,
        **BENCH_LIMITS,
    })
    return env


async def _make_links(env: dict[str, str], merchant: str, count: int) -> list[str]:
    """Links made from console chats (one chat each), so each payment's alert has somewhere to go."""
    from bots.config import load_settings
    from bots.services import open_services
    from core.links import LinkDraft
    from core.money import Money

    settings = load_settings(env=env)
    ids = []
    async with open_services(settings, migrate=False) as services:
        for n in range(count):
            link, _ = await services.links.create(LinkDraft(
                merchant_id=merchant, money=Money(2500, "SGD"), description=f"cake {n}",
                origin_platform="console", origin_address=f"bench-chat-{n}",
                expires_at=services.clock() + timedelta(days=1)))
            ids.append(link.id)
    return ids


async def _pay(base_urls: list[str], link_ids: list[str], concurrency: int = 32) -> dict[str, datetime]:
    """Signed sandbox webhooks for every link, spread over the serve processes; when each was answered."""
    import aiohttp

    from adapters.payments.sandbox import CheckoutSession, SandboxProvider

    answered: dict[str, datetime] = {}
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:

        async def one(n: int, link_id: str) -> None:
            base = base_urls[n % len(base_urls)]
            provider = SandboxProvider(public_base_url=base, webhook_secret=SANDBOX_SECRET)
            checkout = CheckoutSession(f"cs_{link_id}", link_id, 2500, "SGD", "cake", "https://example.invalid/")
            charge_id, event_id = provider.charge_ids(checkout)
            body, headers = provider.build_webhook(checkout, charge_id=charge_id, event_id=event_id,
                                                   payer_name="Bench")
            async with gate, session.post(f"{base}/webhooks/sandbox", data=body, headers=headers) as response:
                if response.status == 200:
                    answered[link_id] = datetime.now(UTC)

        await asyncio.gather(*(one(n, link_id) for n, link_id in enumerate(link_ids)))
    return answered


async def _alerts_sent(env: dict[str, str], link_ids: list[str], within_s: float) -> dict[str, datetime]:
    """When each link's paid alert was marked sent (polls the outbox)."""
    from sqlalchemy import select

    from bots.config import load_settings
    from core.db import Database
    from core.models import OutboxMessage
    from core.sql import table

    outbox = table(OutboxMessage)
    settings = load_settings(env=env)
    db = Database(settings.database.url)
    wanted = set(link_ids)
    sent: dict[str, datetime] = {}
    deadline = time.monotonic() + within_s
    try:
        while len(sent) < len(wanted) and time.monotonic() < deadline:
            async with db.read() as conn:
                rows = (await conn.execute(select(outbox.c.link_id, outbox.c.sent_at)
                                           .where(outbox.c.kind == "link.paid.alert",
                                                  outbox.c.sent_at.is_not(None)))).all()
            sent = {row.link_id: row.sent_at for row in rows if row.link_id in wanted}
            await asyncio.sleep(0.2)
    finally:
        await db.dispose()
    return sent


def _parallel(jobs: list[Callable[[], Result]]) -> list[Result]:
    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(lambda job: job(), jobs))


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL server process on this machine (other users' queries included)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(postgres)" in text:
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


PG_CPU: dict[str, list[float]] = {}  # load name -> PostgreSQL's CPU us per request, per round


def _summed(name: str, parts: list[Result], pids: list[int], cpu_before: list[float]) -> Result:
    requests = sum(p.requests for p in parts)
    cpu = sum(cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before, strict=True))
    return Result(name, sum(p.rps for p in parts), max(p.p99_ms for p in parts), sum(p.errors for p in parts),
                  cpu_us=cpu / requests * 1e6 if requests else float("nan"), requests=requests)


def _load(name: str, urls: list[str], pids: list[int], *, seconds: int, connections: int,
          script: Callable[[int], Path | None]) -> Result:
    before = [cpu_seconds(pid) for pid in pids]
    pg_before = postgres_cpu()
    result = _load_parts(name, urls, pids, before, seconds=seconds, connections=connections, script=script)
    if result.requests:
        PG_CPU.setdefault(name, []).append((postgres_cpu() - pg_before) / result.requests * 1e6)
    return result


def _load_parts(name: str, urls: list[str], pids: list[int], before: list[float], *, seconds: int,
                connections: int, script: Callable[[int], Path | None]) -> Result:
    parts = _parallel([
        functools.partial(wrk, name, url, seconds=seconds, connections=connections // len(urls), script=script(i))
        for i, url in enumerate(urls)])
    return _summed(name, parts, pids, before)


def run(seconds: int, rounds: int, payments: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="paylinks-bench-pg-"))
    db_name = f"paylinks_bench_{secrets.token_hex(4)}"
    _psql(f"CREATE DATABASE {db_name}")
    pg_url = f"{SERVER}/{db_name}"
    ports = [free_port(), free_port()]
    sqlite_port = free_port()
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    pg_envs = [{**_env(pg_url, port, workdir), "PAYLINKS_SECURITY__SECRET_KEY": key,
                "PAYLINKS_WEBHOOKS__SECRET_KEY": key} for port in ports]
    sqlite_env = _env(f"sqlite+aiosqlite:///{workdir / 'paylinks.db'}", sqlite_port, workdir)
    procs: list[subprocess.Popen[bytes]] = []
    figures: dict[str, Any] = {}
    try:
        paylinks(pg_envs[0], "migrate")
        scripts: dict[str, list[Path]] = {}
        pages: dict[str, list[str]] = {}
        for label, envs in (("pg", pg_envs), ("sqlite", [sqlite_env])):
            merchant = paylinks(envs[0], "merchant", "create", "--name", "Bench", "--currency", "SGD")
            api_key = paylinks(envs[0], "apikey", "create", "--merchant", merchant)
            link = paylinks(envs[0], "link", "create", "--merchant", merchant, "25", "Chocolate cake")
            script = workdir / f"post-{label}.lua"
            script.write_text('wrk.method = "POST"\nwrk.body = \'{"amount": "25.00", "description": "Cake"}\'\n'
                              'wrk.headers["Content-Type"] = "application/json"\n'
                              f'wrk.headers["Authorization"] = "Bearer {api_key}"\n')
            scripts[label] = [script] * len(envs)
            path = link.split("://", 1)[1].split("/", 1)[1]
            pages[label] = [f"http://127.0.0.1:{env['PAYLINKS_SERVER__PORT']}/{path}" for env in envs]
            figures[f"{label}_merchant"] = merchant
        link_ids = asyncio.run(_make_links(pg_envs[0], figures["pg_merchant"], payments))
        for env in pg_envs:
            procs.append(subprocess.Popen([str(BIN / "paylinks"), "serve"], env=env, cwd=workdir))
        procs.append(subprocess.Popen([str(BIN / "paylinks"), "worker"], env=pg_envs[0], cwd=workdir))
        procs.append(subprocess.Popen([str(BIN / "paylinks"), "serve"], env=sqlite_env, cwd=workdir))
        for port in (*ports, sqlite_port):
            wait_for(f"http://127.0.0.1:{port}/healthz")
        pg_pids, sqlite_pids = [procs[0].pid, procs[1].pid], [procs[3].pid]
        posts = {label: [u.rsplit("/p/", 1)[0] + "/api/v1/links" for u in pages[label]] for label in pages}
        runs: dict[str, list[Result]] = {k: [] for k in ("sqlite create", "pg create", "sqlite page", "pg page")}
        for label, pids in (("sqlite", sqlite_pids), ("pg", pg_pids)):  # warm-up
            _load("warm-up", pages[label], pids, seconds=1, connections=32, script=lambda i: None)
        for _ in range(rounds):
            for label, pids in (("sqlite", sqlite_pids), ("pg", pg_pids)):
                runs[f"{label} create"].append(_load(f"{label} create", posts[label], pids, seconds=seconds,
                                                     connections=32, script=lambda i, lb=label: scripts[lb][i]))
                runs[f"{label} page"].append(_load(f"{label} page", pages[label], pids, seconds=seconds,
                                                   connections=32, script=lambda i: None))
        for name, results in runs.items():
            rates = sorted(r.rps for r in results)
            figures[name] = (statistics.median(rates), rates[0], rates[-1],
                             statistics.median(r.p99_ms for r in results),
                             statistics.median(r.cpu_us for r in results),
                             statistics.median(PG_CPU.get(name, [float("nan")])))
        base_urls = [f"http://127.0.0.1:{port}" for port in ports]
        started = datetime.now(UTC)
        answered = asyncio.run(_pay(base_urls, link_ids))
        webhooks_done = datetime.now(UTC)
        sent = asyncio.run(_alerts_sent(pg_envs[0], list(answered), within_s=120))
        latencies = sorted((sent[k] - answered[k]).total_seconds() * 1000 for k in answered if k in sent)
        last = max(sent.values(), default=webhooks_done)
        figures["payments"] = len(link_ids)
        figures["payments_answered"] = len(answered)
        figures["alerts_sent"] = len(sent)
        figures["webhooks_per_s"] = len(answered) / max((webhooks_done - started).total_seconds(), 1e-9)
        figures["end_to_end_per_s"] = len(sent) / max((last - started).total_seconds(), 1e-9)
        figures["alert_p50_ms"] = latencies[len(latencies) // 2] if latencies else float("nan")
        figures["alert_p99_ms"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] \
            if latencies else float("nan")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)
        shutil.rmtree(workdir, ignore_errors=True)
        _psql(f"DROP DATABASE IF EXISTS {db_name}")
    return figures


def report(f: dict[str, Any], seconds: int, rounds: int) -> str:
    lines = [f"scale-out (2 cores, load {os.getloadavg()[0]:.2f}; wrk -d{seconds}s, -c32 in all, median of "
             f"{rounds} interleaved rounds)",
             f"{'':34} {'req/s':>7} {'(range)':>15} {'p99 ms':>7} {'CPU us/req':>10} {'PG CPU us/req':>13}"]
    titles = {"sqlite create": "POST /api/v1/links  SQLite x1", "pg create": "POST /api/v1/links  PG serve x2",
              "sqlite page": "GET /p/{id}         SQLite x1", "pg page": "GET /p/{id}         PG serve x2"}
    for name, title in titles.items():
        rps, low, high, p99, cpu, pg_cpu = f[name]
        shown = f"{pg_cpu:13.0f}" if name.startswith("pg") else f"{'':13}"
        lines.append(f"{title:34} {rps:7.0f} {f'({low:.0f}-{high:.0f})':>15} {p99:7.1f} {cpu:10.0f} {shown}")
    lines.append("(CPU us/req: the serve processes' CPU per request answered; PG CPU: every postgres process's, "
                 "other databases' users included)")
    lines.append(f"payments end to end (PG, 2 serve + 1 worker): {f['payments_answered']}/{f['payments']} webhooks "
                 f"answered at {f['webhooks_per_s']:.0f}/s; {f['alerts_sent']} alerts delivered, "
                 f"{f['end_to_end_per_s']:.0f} payments/s end to end")
    lines.append(f"alert latency (webhook answered -> alert sent): p50 {f['alert_p50_ms']:.0f} ms, "
                 f"p99 {f['alert_p99_ms']:.0f} ms")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--payments", type=int, default=1000)
    args = parser.parse_args()
    if not shutil.which("wrk") or not shutil.which("psql"):
        raise SystemExit("bench-pg needs wrk and psql (apt-get install wrk postgresql-client)")
    print(report(run(args.seconds, args.rounds, args.payments), args.seconds, args.rounds), flush=True)


if __name__ == "__main__":
    main()
