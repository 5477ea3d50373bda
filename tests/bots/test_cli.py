"""The `paylinks` command line as an operator uses it (issue 2, points 5 and 10)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from core import limits

BIN = Path(sys.executable).parent / "paylinks"


def run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINKS_")}
    environ["PAYLINKS_DATABASE__URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    environ["PAYLINKS_SERVER__PUBLIC_BASE_URL"] = "https://pay.example.com"
    return environ


def test_merchant_key_and_link_print_one_line_each(env: dict[str, str]) -> None:
    merchant = run(env, "merchant", "create", "--name", "Cake Shop", "--currency", "SGD", "--locale", "en_SG")
    lines = merchant.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mer_")
    merchant_id = lines[0]

    key = run(env, "apikey", "create", "--merchant", merchant_id).stdout.splitlines()
    assert len(key) == 1 and key[0].startswith("pl_test_") and len(key[0]) > 40  # the sandbox: a test key

    link = run(env, "link", "create", "--merchant", merchant_id, "25", "Chocolate", "cake").stdout.splitlines()
    assert len(link) == 1 and link[0].startswith("https://pay.example.com/p/")
    link_usd = run(env, "link", "create", "--merchant", merchant_id, "12.50", "USD", "Tea").stdout.strip()
    assert link_usd.startswith("https://pay.example.com/p/") and link_usd != link[0]

    listing = run(env, "merchant", "list").stdout
    assert merchant_id in listing and "Cake Shop" in listing and "SGD" in listing


def test_secrets_are_never_logged(env: dict[str, str]) -> None:
    merchant_id = run(env, "merchant", "create", "--name", "Shop").stdout.strip()
    created = run(env, "apikey", "create", "--merchant", merchant_id)
    assert created.stdout.strip() not in created.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["link", "create", "--merchant", "{m}", "25.555", "USD", "cake"], "USD has 2 decimals"),
        (["link", "create", "--merchant", "mer_missing", "25", "cake"], "no merchant with id mer_missing"),
        (["link", "create", "--merchant", "{m}", "25"], "usage"),
        # The business limits of core/limits.py, enforced by LinkService for the CLI too.
        (["link", "create", "--merchant", "{m}", "25", "x" * (limits.DESCRIPTION_MAX + 1)],
         f"longer than {limits.DESCRIPTION_MAX} characters"),
        (["merchant", "create", "--name", "X", "--currency", "ZZZ"], "ISO 4217"),
        (["merchant", "create", "--name", "X", "--locale", "klingon_XX"], "locale"),
        (["apikey", "create", "--merchant", "mer_nope"], "no merchant"),
        (["apikey", "list", "--merchant", "mer_nope"], "no merchant with id mer_nope"),
        (["apikey", "revoke", "key_nope"], "no API key with id key_nope"),
    ],
)
def test_mistakes_get_a_message_not_a_traceback(env: dict[str, str], args: list[str], message: str) -> None:
    merchant_id = run(env, "merchant", "create", "--name", "Shop").stdout.strip()
    result = run(env, *[a.replace("{m}", merchant_id) for a in args], check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_config_file_option_and_bad_config(env: dict[str, str], tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[links]\ndefault_currency = "JPY"\n')
    run(env, "--config", str(good), "merchant", "create", "--name", "Ramen")
    assert "JPY" in run(env, "--config", str(good), "merchant", "list").stdout

    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nportt = 1\n")
    result = run(env, "--config", str(bad), "merchant", "list", check=False)
    assert result.returncode == 2 and "unknown key: server.portt" in result.stderr


def test_migrate_on_postgresql(postgres_url: str, env: dict[str, str]) -> None:
    env["PAYLINKS_DATABASE__URL"] = postgres_url
    run(env, "migrate")
    assert run(env, "merchant", "create", "--name", "PG Shop").stdout.startswith("mer_")


# ---------------------------------------------------------------- first-run edges (issue 11, point 8)


@pytest.mark.parametrize("how", ["setting", "flag"])
def test_a_port_in_use_is_one_line_naming_the_port_and_the_setting(
    env: dict[str, str], tmp_path: Path, how: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if how == "setting":
            env["PAYLINKS_SERVER__PORT"] = str(port)
            args = ["serve"]
        else:
            args = ["serve", "--port", str(port)]
        result = subprocess.run([str(BIN), *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                                timeout=60)
    assert result.returncode != 0
    (line,) = result.stderr.splitlines()
    assert f"port {port} is already in use" in line
    assert ("server.port" in line) if how == "setting" else ("--port" in line)
    assert "Traceback" not in result.stderr and result.stdout == ""
    # Refused before anything started: not even the database was created.
    assert not (tmp_path / "cli.db").exists()


def test_serve_listens_on_the_configured_port(env: dict[str, str], tmp_path: Path) -> None:
    from tests.conftest import free_port

    port = free_port()
    env["PAYLINKS_SERVER__PORT"] = str(port)
    proc = subprocess.Popen([str(BIN), "serve"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.1)
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


def test_serve_port_flag_moves_an_unset_public_base_url(env: dict[str, str], tmp_path: Path) -> None:
    from tests.conftest import free_port

    port = free_port()
    env.pop("PAYLINKS_SERVER__PUBLIC_BASE_URL", None)
    env["PAYLINKS_SERVER__PORT"] = "8080"  # the flag wins over the setting, like the setting over the default
    proc = subprocess.Popen([str(BIN), "serve", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=1) as resp:
                    document = json.loads(resp.read())
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    # The document's server is public_base_url: derived from the port the flag gave.
    assert [server["url"] for server in document["servers"]] == [f"http://127.0.0.1:{port}"]


def _chat(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), "chat", "--as", "alice", *args], input="/start\n/charge 25 cake\n",
                          env=env, capture_output=True, text=True, timeout=120)


def test_chat_keeps_log_lines_out_of_the_conversation(env: dict[str, str], tmp_path: Path) -> None:
    quiet = _chat(env)
    assert quiet.returncode == 0, quiet.stderr
    assert "[Pay $25.00]" in quiet.stdout
    assert quiet.stderr == ""
    assert " INFO " not in quiet.stdout

    verbose = _chat(env, "--verbose")
    assert verbose.returncode == 0
    assert "[Pay $25.00]" in verbose.stdout and " INFO " not in verbose.stdout
    assert " INFO paylinks.links link created link=" in verbose.stderr

    log_file = tmp_path / "chat.log"
    to_file = _chat(env, "--log-file", str(log_file))
    assert to_file.returncode == 0 and to_file.stderr == ""
    assert " INFO paylinks.links link created link=" in log_file.read_text()

    unwritable = _chat(env, "--log-file", str(tmp_path / "missing" / "chat.log"))
    assert unwritable.returncode == 2 and "cannot write the log file" in unwritable.stderr
    assert "Traceback" not in unwritable.stderr


def test_other_commands_still_log_to_stderr(env: dict[str, str]) -> None:
    created = run(env, "merchant", "create", "--name", "Shop")
    assert f" INFO paylinks.merchants merchant created merchant={created.stdout.strip()}" in created.stderr


def _make_dry_run(directory: Path, target: str) -> str:
    result = subprocess.run(["make", "-n", target], cwd=directory, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_run_installs_only_what_running_needs_and_make_test_adds_the_test_extras(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(root / name, tmp_path / name)
    # A fresh clone: `make run` makes the venv and installs the package without its test extras.
    fresh = _make_dry_run(tmp_path, "run")
    assert "-m venv .venv" in fresh and "pip install -q -e .\n" in fresh
    assert "[test]" not in fresh and "paylinks serve" in fresh
    # After `make run` (what its recipe leaves behind), `make test` installs the test extras.
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").touch()
    (tmp_path / ".venv" / ".installed-run").touch()
    after_run = _make_dry_run(tmp_path, "test")
    assert "pip install -q -e '.[test]'" in after_run and "-m pytest" in after_run
    assert "-m venv" not in after_run
    # After `make test`, `make run` installs nothing more.
    (tmp_path / ".venv" / ".installed").touch()
    assert "pip install" not in _make_dry_run(tmp_path, "run")


# ---------------------------------------------------------------- API keys (issue 11, point 6)


def _api(base: str, key: str) -> int:
    request = urllib.request.Request(f"{base}/api/v1/links", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_apikey_list_and_revoke(env: dict[str, str]) -> None:
    merchant_id = run(env, "merchant", "create", "--name", "Shop").stdout.strip()
    other = run(env, "merchant", "create", "--name", "Other").stdout.strip()
    first = run(env, "apikey", "create", "--merchant", merchant_id).stdout.strip()
    second = run(env, "apikey", "create", "--merchant", merchant_id).stdout.strip()
    run(env, "apikey", "create", "--merchant", other)
    listed = run(env, "apikey", "list", "--merchant", merchant_id)
    assert listed.stderr.splitlines()[-1].split("\t") == ["key_id", "prefix", "last4", "created", "last_used",
                                                          "revoked"]
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert len(rows) == 2  # one line per key of that merchant only
    assert [(r[1], r[2], r[4], r[5]) for r in rows] == [("pl_test_", first[-4:], "-", "-"),
                                                         ("pl_test_", second[-4:], "-", "-")]
    assert all(r[0].startswith("key_") and r[3].endswith("Z") for r in rows)
    assert first not in listed.stdout + listed.stderr and second not in listed.stdout + listed.stderr

    revoked = run(env, "apikey", "revoke", rows[0][0])
    assert revoked.stdout.strip() == f"revoked {rows[0][0]}"
    again = run(env, "apikey", "revoke", rows[0][0])
    assert again.stdout.startswith(f"{rows[0][0]} was revoked already, at ")
    after = [line.split("\t") for line in run(env, "apikey", "list", "--merchant", merchant_id).stdout.splitlines()]
    assert after[0][5].endswith("Z") and after[0][5] != "-" and after[1][5] == "-"


def test_a_key_revoked_from_the_cli_is_refused_at_once_by_a_running_server(
    env: dict[str, str], tmp_path: Path
) -> None:
    from tests.conftest import free_port

    merchant_id = run(env, "merchant", "create", "--name", "Shop").stdout.strip()
    secret = run(env, "apikey", "create", "--merchant", merchant_id).stdout.strip()
    kept = run(env, "apikey", "create", "--merchant", merchant_id).stdout.strip()
    port = free_port()
    env["PAYLINKS_SERVER__PORT"] = str(port)
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([str(BIN), "serve"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.1)
        assert _api(base, secret) == 200 and _api(base, kept) == 200
        key_id = run(env, "apikey", "list", "--merchant", merchant_id).stdout.splitlines()[0].split("\t")[0]
        run(env, "apikey", "revoke", key_id)
        assert _api(base, secret) == 401  # the next request, in the other process
        assert _api(base, kept) == 200
        # last_used_at was written by the server (at most once a minute per key, in the background).
        deadline = time.monotonic() + 10
        while True:
            rows = [line.split("\t") for line in run(env, "apikey", "list", "--merchant", merchant_id)
                    .stdout.splitlines()]
            if all(r[4] != "-" for r in rows) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert all(r[4].endswith("Z") for r in rows), rows
    finally:
        proc.terminate()
        proc.wait(timeout=10)
