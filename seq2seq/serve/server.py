"""Start the API on a socket with uvicorn: `python -m seq2seq serve` ends up here.

SIGTERM (or a first Ctrl-C) drains the server: requests already accepted finish, for up to
DRAIN_SECONDS, while every new one is answered 503 at once; then uvicorn shuts down. Clients
get their answer, or a 503 to retry elsewhere, instead of a refused connection that looks like
a crash.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from seq2seq.errors import UserError
from seq2seq.serve.app import ServeLimits, TranslationService, create_app, error_response

# How long a stopping server lets accepted requests finish before uvicorn cancels them; below the
# 30 s grace that docker stop and Kubernetes give before SIGKILL.
DRAIN_SECONDS = 25.0


def open_socket(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one (the tests use that)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and without it
    # Nagle's algorithm meets the client's delayed ACK and every keep-alive response waits 40 ms
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port} ({error.strerror}); pick another --port or --host") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class DrainGate:
    """ASGI middleware that counts the HTTP requests in flight and, once draining, answers new ones 503."""

    def __init__(self, app: Any):
        self.app, self.in_flight, self.draining = app, 0, False

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan events pass through: the batcher starts and stops with the app
            await self.app(scope, receive, send)
            return
        if self.draining:
            refusal = error_response(503, "shutting_down", "the server is shutting down; retry on another instance "
                                     "or once it is back", headers={"connection": "close", "retry-after": "5"})
            await refusal(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def draining_server(uvicorn: Any, config: Any, gate: DrainGate, drain_seconds: float = DRAIN_SECONDS) -> Any:
    """A uvicorn.Server whose first SIGTERM or SIGINT drains the gate before the usual shutdown; a second signal
    starts that shutdown at once. (uvicorn is imported lazily, as an extra, so the class is made here.)"""

    class DrainingServer(uvicorn.Server):
        deadline: float | None = None
        drain_signal: int = signal.SIGTERM

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.deadline is None and sig in (signal.SIGTERM, signal.SIGINT):
                gate.draining = True
                self.deadline, self.drain_signal = time.monotonic() + drain_seconds, sig
                return
            super().handle_exit(sig, frame)

        async def on_tick(self, counter: int) -> bool:
            drained = self.deadline is not None and (gate.in_flight == 0 or time.monotonic() >= self.deadline)
            if drained and not self.should_exit:
                super().handle_exit(self.drain_signal, None)  # now uvicorn's own shutdown, as the signal asked
            return await super().on_tick(counter)

    return DrainingServer(config)


def serve(checkpoint: Path, host: str, port: int, limits: ServeLimits, device: str = "cpu",
          quantize: bool = False, log_level: str = "info", engine: str = "pytorch") -> None:
    """engine 'pytorch' serves a checkpoint file; 'ctranslate2' a folder written by python -m seq2seq export."""
    try:
        import uvicorn
    except ImportError:
        raise UserError('serving needs the serve extra: pip install -e ".[serve]"') from None
    sock = open_socket(host, port)  # a busy port fails before the model loads
    if engine == "ctranslate2":
        service = TranslationService.from_ctranslate2(checkpoint, device=device)
    else:
        service = TranslationService.from_checkpoint(checkpoint, device=device, quantize=quantize)
    gate = DrainGate(create_app(service, limits))
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    if not is_loopback(host):
        print(f"warning: listening on {host}, reachable from other machines; the API has no authentication",
              file=sys.stderr)
    # the tests read this line to learn the port
    print(f"serving {checkpoint} ({engine}) on http://{shown}:{bound_port}/ (API docs at /docs)", flush=True)
    config = uvicorn.Config(gate, log_level=log_level, access_log=log_level == "debug", timeout_keep_alive=30,
                            timeout_graceful_shutdown=1)
    draining_server(uvicorn, config, gate).run(sockets=[sock])
