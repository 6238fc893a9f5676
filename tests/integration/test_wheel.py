"""The wheel is the whole product: built with `python -m build`, installed into a fresh
virtual environment outside the source tree, it migrates a database and serves the sign-in
page and its vendored static files from inside the installed package."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.conftest import TEST_KEY_LINE, free_port

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "ticketmate"


def build_wheel(folder: Path) -> Path:
    """Build from a copy of the sources (the tree's own build/ and egg-info stay untouched),
    without build isolation: the build tools come from the test environment, not the network."""
    source = folder / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src",
        source / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(folder)],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = folder.glob("ticketmate-*.whl")
    return wheel


def fresh_environment(folder: Path, wheel: Path) -> Path:
    """A new virtual environment holding the wheel. Its dependencies are those of the test
    environment (a path entry, not an install: nothing is downloaded), while `ticketmate`
    itself can only come from the wheel."""
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
            "--no-deps", "--no-index", "--disable-pip-version-check", str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # A plain path line: the test environment's .pth files (among them the editable install
    # of this source tree) are not run for it, so they cannot shadow the wheel.
    (Path(site) / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


@pytest.mark.slow
def test_the_wheel_installed_elsewhere_migrates_and_serves_its_pages(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for inside in (
        "ticketmate/web/templates/login.html",
        "ticketmate/web/static/vendor/htmx/htmx.min.js",
        "ticketmate/migrations/env.py",
        "ticketmate/migrations/script.py.mako",
        "ticketmate/migrations/versions/0001_foundation.py",
        "ticketmate/py.typed",
    ):
        assert inside in names, inside

    venv = fresh_environment(tmp_path, wheel)
    elsewhere = tmp_path / "deployment"
    elsewhere.mkdir()
    port = free_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(elsewhere),
        "TICKETMATE_DATABASE_URL": f"sqlite:///{elsewhere / 'ticketmate.db'}",
        "TICKETMATE_ENCRYPTION_KEYS": TEST_KEY_LINE,
        "TICKETMATE_BASE_URL": f"http://127.0.0.1:{port}",
    }
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import ticketmate; print(ticketmate.__file__)"],
        env=env,
        cwd=elsewhere,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert where.startswith(str(venv)), where  # the wheel's copy, not the source tree's

    ticketmate = str(venv / "bin" / "ticketmate")
    upgrade = subprocess.run(
        [ticketmate, "db", "upgrade"], env=env, cwd=elsewhere, capture_output=True, text=True
    )
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    log = elsewhere / "serve.log"
    with log.open("wb") as output:
        serve = subprocess.Popen(
            [ticketmate, "serve", "--no-worker", "--port", str(port)],
            env=env,
            cwd=elsewhere,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        login = fetch(f"http://127.0.0.1:{port}/login", serve, log)
        assert b"Sign in" in login
        htmx = fetch(f"http://127.0.0.1:{port}/static/vendor/htmx/htmx.min.js", serve, log)
        packaged = (PACKAGE / "web" / "static" / "vendor" / "htmx" / "htmx.min.js").read_bytes()
        assert hashlib.sha256(htmx).digest() == hashlib.sha256(packaged).digest()
    finally:
        serve.terminate()
        serve.wait(timeout=20)


def fetch(url: str, serve: subprocess.Popen[bytes], log: Path) -> bytes:
    deadline = time.monotonic() + 30
    while True:
        assert serve.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                body: bytes = answer.read()
                return body
        except OSError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
