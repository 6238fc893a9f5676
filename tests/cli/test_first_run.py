"""`ticketmate serve` on an empty database: demo workspace, admin password shown once (in text
format only; JSON lines are log lines, which hold no password), key file."""

from __future__ import annotations

import json
import re
import shlex
import stat
import subprocess
import time
from pathlib import Path

import httpx2

from tests.conftest import free_port
from tests.support.processes import TICKETMATE, cli_env, run_cli


def start_serve(env: dict[str, str], cwd: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [TICKETMATE, "serve", "--port", str(port)],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    deadline = time.monotonic() + 30
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if "Serving on" in line:
            break
    for _ in range(100):
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except httpx2.TransportError:
            time.sleep(0.1)
    return process, "".join(output)


def stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    try:
        rest, _ = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        rest, _ = process.communicate()
    return rest or ""


def test_first_run_creates_demo_admin_and_key_once(tmp_path: Path) -> None:
    env = cli_env("sqlite:///var/ticketmate.db")
    del env["TICKETMATE_ENCRYPTION_KEYS"]  # no key configured: the service makes its own
    del env["TICKETMATE_BASE_URL"]
    assert run_cli(["db", "upgrade"], env, tmp_path).returncode == 0

    port = free_port()
    process, output = start_serve(env, tmp_path, port)
    try:
        assert f"URL:      http://127.0.0.1:{port}/login" in output
        assert "Email:    admin@example.com" in output
        password = re.search(r"Password: (\S+)", output)
        assert password, output
        assert "generated a local encryption key in var/encryption.key" in output
        key_file = tmp_path / "var" / "encryption.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

        with httpx2.Client(base_url=f"http://127.0.0.1:{port}") as browser:
            form = browser.get("/login")
            assert form.status_code == 200
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert csrf
            signed_in = browser.post(
                "/login",
                data={
                    "email": "admin@example.com",
                    "password": password.group(1),
                    "csrf_token": csrf.group(1),
                },
            )
            assert signed_in.status_code == 303
            me = browser.get("/api/v1/me").json()
            assert me["workspaces"] == [{"slug": "demo", "name": "Demo", "role": "admin"}]
    finally:
        log = stop(process)
    assert password.group(1) not in log  # the request log never repeats it
    assert "POST /login 303" in log

    process, second = start_serve(env, tmp_path, port)
    rest = stop(process)
    assert "Password:" not in second + rest
    assert "generated a local encryption key" not in second + rest


def test_first_run_in_json_names_the_command_that_sets_the_password(tmp_path: Path) -> None:
    env = cli_env("sqlite:///var/ticketmate.db", TICKETMATE_LOG_FORMAT="json")
    del env["TICKETMATE_BASE_URL"]
    assert run_cli(["db", "upgrade"], env, tmp_path).returncode == 0

    port = free_port()
    process, output = start_serve(env, tmp_path, port)
    try:
        lines = [json.loads(line) for line in output.splitlines()]  # every line is JSON
        first = [line for line in lines if "set up with a workspace 'demo'" in line["msg"]]
        assert len(first) == 1, output
        # No password, in no field: what the line holds is all there is.
        assert set(first[0]) == {"ts", "level", "logger", "msg", "sign_in_url", "email"}
        assert first[0]["email"] == "admin@example.com"
        assert first[0]["sign_in_url"] == f"http://127.0.0.1:{port}/login"
        assert "Password" not in output
        command = re.search(r"`(ticketmate user create [^`]+)`", first[0]["msg"])
        assert command, first[0]["msg"]
        assert command.group(1) == (
            "ticketmate user create admin@example.com --workspace demo --role admin "
            "--password-stdin"
        )

        # The command named does set the password, and the administrator signs in with it.
        chosen = "a password the operator chose"
        set_it = run_cli(shlex.split(command.group(1))[1:], env, tmp_path, stdin=f"{chosen}\n")
        assert set_it.returncode == 0, set_it.stderr
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}") as browser:
            form = browser.get("/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert csrf
            signed_in = browser.post(
                "/login",
                data={
                    "email": "admin@example.com",
                    "password": chosen,
                    "csrf_token": csrf.group(1),
                },
            )
            assert signed_in.status_code == 303
    finally:
        rest = stop(process)
    for line in rest.splitlines():
        assert "password" not in json.loads(line), line


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    env = cli_env("sqlite:///var/fresh.db")
    result = run_cli(["serve", "--port", str(free_port())], env, tmp_path)
    assert result.returncode == 1
    assert "run `ticketmate db upgrade` first" in result.stderr
