"""The suite's shared Rasa 3.6 server, started in the background as soon as a session
knows it will need it.

scripts/rasa-server.sh builds the server, trains it on nlu/data and serves it, with
token auth, on a port of the tests' own (5055), so a server a developer runs on 5005 is
left alone. The first run on a machine installs Rasa into ~/.cache/yimen/rasa-venv (a
few minutes) and trains a YIMEN_TEST_RASA_EPOCHS-epoch model (5 by default, enough for
the tests; cached by data, config and epochs); every run waits about 40 s for the
server to load. So a session whose collected tests use ``rasa_server`` starts it on a
thread when collection ends (tests/conftest.py), and other tests run meanwhile; the
fixture only waits for that thread.

Several pytest-xdist workers each start it: they share the one server, started by the
first and stopped by the last when its session finishes (a server that was up before
any of them, a developer's, is left running). Point YIMEN_TEST_RASA_URL (and
YIMEN_TEST_RASA_TOKEN) at a server of your own to use it instead.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "yimen"
PORT = 5055
EPOCHS = os.environ.get("YIMEN_TEST_RASA_EPOCHS", "5")
TOKEN = os.environ.get("YIMEN_TEST_RASA_TOKEN", "yimen-test-token")
GIVEN = os.environ.get("YIMEN_TEST_RASA_URL", "")
LOG = CACHE / "rasa-tests.log"


def script_env(port: int, token: str) -> dict[str, str]:
    """The environment of scripts/rasa-server.sh for a server on ``port``."""
    return {
        **os.environ,
        "RASA_VENV": os.environ.get("RASA_VENV", str(CACHE / "rasa-venv")),
        "RASA_HOME": os.environ.get("RASA_HOME", str(CACHE / "rasa")),
        "RASA_TOKEN": token,
        "RASA_PORT": str(port),
    }


class SharedRasa:
    """This session's use of the shared server: ``begin`` it, ``wait`` for it, and
    ``release`` it when the session ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failure = ""
        self._registered = False

    def begin(self) -> None:
        """Start (or join) the shared server on a thread, once per session."""
        with self._lock:
            if self._thread is None and not GIVEN:
                self._thread = threading.Thread(target=self._start, name="rasa-start", daemon=True)
                self._thread.start()

    def wait(self) -> tuple[str, str]:
        """(url, token) of the server once it answers; fails the test if it cannot."""
        if GIVEN:
            return GIVEN, os.environ.get("YIMEN_TEST_RASA_TOKEN", "")
        self.begin()
        assert self._thread is not None
        self._thread.join()
        if self._failure:
            pytest.fail(self._failure)
        return f"http://127.0.0.1:{PORT}", TOKEN

    def release(self) -> None:
        """Leave the server; the last session to leave stops it if the tests started it."""
        if self._thread is None:
            return
        self._thread.join()
        if not self._registered:
            return
        with _users() as users:
            users.pids.discard(os.getpid())
            if not users.pids and users.ours:
                _script("stop", output=None)
        self._registered = False

    def _start(self) -> None:
        try:
            with _users() as users:
                if not users.pids:
                    users.ours = not _serving(PORT)
                LOG.parent.mkdir(parents=True, exist_ok=True)
                with LOG.open("w") as out:
                    done = _script("all", "--epochs", EPOCHS, output=out)
                if done.returncode != 0:
                    tail = "\n".join(LOG.read_text(errors="replace").splitlines()[-30:])
                    self._failure = (
                        f"scripts/rasa-server.sh all failed ({done.returncode}):\n{tail}"
                    )
                    return
                users.pids.add(os.getpid())
                self._registered = True
        except Exception as exc:  # reported by wait(), in the test that needs the server
            self._failure = f"starting the shared Rasa server failed: {exc!r}"


def _script(*arguments: str, output: IO[str] | None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "rasa-server.sh"), *arguments],
        env=script_env(PORT, TOKEN),
        stdout=output if output is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        check=False,
    )


SHARED = SharedRasa()


@dataclass
class _Users:
    """The test sessions using the shared server, and whether they started it."""

    pids: set[int]
    ours: bool


@contextmanager
def _users() -> Iterator[_Users]:
    """The users file, read and written under an exclusive lock (sessions that died
    without their teardown are dropped)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"rasa-tests-{PORT}.users"
    with (CACHE / f"rasa-tests-{PORT}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        words = path.read_text().split() if path.exists() else []
        users = _Users({int(w) for w in words[1:] if _alive(int(w))}, words[:1] == ["ours"])
        yield users
        path.write_text(" ".join(["ours" if users.ours else "theirs", *map(str, users.pids)]))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _serving(port: int) -> bool:
    """Whether something already listens on the port (a server a developer left up)."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
