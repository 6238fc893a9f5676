"""Running the real `ticketmate` command, as a person or a script would."""

from __future__ import annotations

import os
import subprocess
import sys
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
