"""Running the real `ticketmate` command, as a person or a script would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

TICKETMATE = str(Path(sys.executable).with_name("ticketmate"))


def cli_env(database_url: str, **extra: str) -> dict[str, str]:
    from tests.conftest import TEST_KEY_LINE

    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETMATE_")}
    env.update(
        TICKETMATE_DATABASE_URL=database_url,
        TICKETMATE_ENCRYPTION_KEYS=TEST_KEY_LINE,
        TICKETMATE_BASE_URL="http://tm.test",
    )
    env.update(extra)
    return env


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TICKETMATE, *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class ServiceProcess:
    """A real `ticketmate serve` (or `worker`) process on the test database, with its output in
    a log file. It can be killed and started again on the same port, as a crash and a restart."""

    def __init__(self, args: list[str], env: dict[str, str], folder: Path, name: str) -> None:
        self.args = args
        self.env = env
        self.folder = folder
        self.log = folder / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [TICKETMATE, *self.args],
                env=self.env,
                cwd=self.folder,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind, as a crash or the OOM killer."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class ServeProcess(ServiceProcess):
    """`ticketmate serve` on its own loopback port (`--no-worker` unless `worker=True`)."""

    def __init__(
        self, database_url: str, folder: Path, *, worker: bool = False, **env: str
    ) -> None:
        from tests.conftest import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = ["serve", "--port", str(self.port)] + ([] if worker else ["--no-worker"])
        full_env = cli_env(
            database_url,
            TICKETMATE_ALLOW_LOOPBACK_WEBHOOKS="true",
            TICKETMATE_BASE_URL=self.url,
            TICKETMATE_LOG_LEVEL="WARNING",
            **env,
        )
        super().__init__(args, full_env, folder, f"serve-{self.port}")

    def start(self) -> ServeProcess:
        super().start()
        self.wait_until_up()
        return self

    def wait_until_up(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"ticketmate serve exited:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise RuntimeError(f"ticketmate serve did not answer in {timeout} s:\n{self.output()}")


class WorkerProcess(ServiceProcess):
    """`ticketmate worker` with the given options and settings."""

    def __init__(self, database_url: str, folder: Path, *args: str, **env: str) -> None:
        full_env = cli_env(database_url, TICKETMATE_ALLOW_LOOPBACK_WEBHOOKS="true", **env)
        WorkerProcess.started += 1
        super().__init__(["worker", *args], full_env, folder, f"worker-{WorkerProcess.started}")

    started = 0
