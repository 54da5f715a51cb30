"""A stopping server finishes what it accepted and answers everything new with a 503 in the API's error shape."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason='the serve extra is not installed: pip install -e ".[serve]"')

from test_serve import JSON, start_server  # noqa: E402 - after the skip: it needs the serve extra too


def test_sigterm_lets_accepted_requests_finish_and_refuses_new_ones(tiny_checkpoint: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    # a request waits up to 4 s for company in its batch: in flight long enough to stop the server under it
    server = start_server(tiny_checkpoint, log, "--max-wait-ms", "4000")
    answers: dict[str, tuple[int, dict]] = {}
    in_flight = threading.Thread(target=lambda: answers.update(
        first=server.json("POST", "/translate", {"text": ["alpha bravo charlie"]}, JSON)))
    in_flight.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.json("GET", "/health")[1]["waiting_sentences"] < 1:
        time.sleep(0.05)
    server.process.send_signal(signal.SIGTERM)
    while time.monotonic() < deadline and server.request("GET", "/health")[0] != 503:
        time.sleep(0.05)
    status, refusal = server.json("POST", "/translate", {"text": ["delta echo"]}, JSON)
    assert status == 503 and refusal["error"]["code"] == "shutting_down", refusal
    assert refusal["error"]["message"] and refusal["error"]["details"] == []
    in_flight.join(timeout=60)
    status, answer = answers["first"]
    assert status == 200 and answer["translations"][0]["hypotheses"][0]["text"], answer
    try:
        server.process.wait(timeout=30)  # drained: it exits without waiting out the bound
    except subprocess.TimeoutExpired:
        server.process.kill()
        raise
    assert server.process.returncode == -signal.SIGTERM
    assert "Traceback" not in log.read_text(errors="replace")


def test_the_drain_is_bounded_when_a_request_never_finishes() -> None:
    import uvicorn

    from seq2seq.serve.server import DrainGate, draining_server

    async def never_called(scope, receive, send) -> None:
        raise AssertionError("the app was reached")

    gate = DrainGate(never_called)
    server = draining_server(uvicorn, uvicorn.Config(gate), gate, drain_seconds=0.3)

    async def scenario() -> list[bool]:
        gate.in_flight = 1  # a request that hangs
        server.handle_exit(signal.SIGTERM, None)
        early = await server.on_tick(1)
        await asyncio.sleep(0.4)
        return [gate.draining, early, await server.on_tick(2)]

    assert asyncio.run(scenario()) == [True, False, True]
