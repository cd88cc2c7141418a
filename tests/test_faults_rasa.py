"""The Rasa server killed under a running app (issue 16, item 5).

A real Rasa 3.6 server, of this test's own: the model tests/test_rasa_server.py trains
(cached under ~/.cache/yimen/rasa, keyed by data, config and epochs), served on a port
of its own so the suite's shared server on 5055 is never touched. The app answers on
Rasa; the server is killed (SIGKILL); the embedded model answers the next messages,
/readyz names the embedded model standing in for Rasa, and the report the resident
was making is filed once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bots.app import SERVICES, create_app
from handlers.catalog import Catalog
from integration.state import KeyBuilder
from nlu.rasa_client import FallbackInterpreter
from tests.rasa_shared import EPOCHS, ROOT, script_env
from tests.test_faults import pg_settings
from tests.test_webchat import ADDRESS, COMPLAINT, chat, press, say, text_of
from tests.webchat_client import Visitor

pytestmark = [pytest.mark.fault, pytest.mark.rasa]

T = Catalog.load()
PORTS = range(18150, 18200)  # this test's own, away from the suite's 5055 and Rasa's 5005
TOKEN = "yimen-fault-token"


def free_port_in(ports: range) -> int:
    for port in ports:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise AssertionError(f"no free port in {ports}")


class OwnRasa:
    """scripts/rasa-server.sh on a port of the test's own, from the cached model."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = script_env(port, TOKEN)

    def script(self, *arguments: str, log: Path | None = None) -> None:
        with (log or Path(os.devnull)).open("w") as out:
            done = subprocess.run(
                ["bash", str(ROOT / "scripts" / "rasa-server.sh"), *arguments],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0 and log is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            pytest.fail(f"rasa-server.sh {' '.join(arguments)} failed:\n{tail}")

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a crash would: no goodbye to anyone."""
        pid = int((Path(self.env["RASA_HOME"]) / f"server-{self.port}.pid").read_text())
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def own_rasa(tmp_path: Path) -> Iterator[OwnRasa]:
    server = OwnRasa(free_port_in(PORTS))
    # Installed and trained already when the suite has run test_rasa_server (both cached).
    server.script("all", "--epochs", EPOCHS, "--port", str(server.port), log=tmp_path / "rasa.log")
    try:
        yield server
    finally:
        server.script("stop", "--port", str(server.port))


@pytest.fixture
async def client(
    own_rasa: OwnRasa, postgres: str, keys: KeyBuilder, data_dir: Path
) -> AsyncIterator[TestClient[Any, Any]]:
    settings = pg_settings(
        postgres,
        keys,
        data_dir,
        nlu_backend="rasa",
        rasa_url=own_rasa.url,
        rasa_token=TOKEN,
        rasa_timeout=10.0,
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


async def readiness(client: TestClient[Any, Any]) -> dict[str, Any]:
    response = await client.get("/readyz")
    assert response.status == 200  # Rasa never decides readiness: the embedded model answers
    report: dict[str, Any] = await response.json()
    assert {"database", "redis", "nlu", "platform"} <= set(report)
    return report


async def test_rasa_killed_mid_report_the_embedded_model_answers_and_readyz_says_so(
    own_rasa: OwnRasa, client: TestClient[Any, Any]
) -> None:
    services = client.app[SERVICES]
    backend = services.nlu
    assert isinstance(backend, FallbackInterpreter)
    async with Visitor(client) as browser, chat(client, browser) as ws:
        await say(ws, COMPLAINT)
        assert (backend.fallbacks, (await readiness(client))["nlu"]) == (0, "rasa")

        own_rasa.kill()
        reply = await say(ws, ADDRESS)
        assert text_of(reply) == T("complaint.ask_photo", address=ADDRESS)
        reply = await press(ws, reply, T("button.skip"))
        reply = await press(ws, reply, T("button.submit"))
        assert "YM" in text_of(reply)
        assert backend.fallbacks >= 1  # answered by the embedded model

        report = await readiness(client)
        assert report["nlu"].startswith("embedded (rasa unavailable: ")
        assert (report["database"], report["redis"]) == ("ok", "ok")
    cases = await services.cases.list_cases()
    assert [(c.category, c.address) for c in cases] == [("noise", ADDRESS)]
