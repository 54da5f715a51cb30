"""Start the API on a socket with uvicorn: `python -m seq2seq serve` ends up here."""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path

from seq2seq.errors import UserError
from seq2seq.serve.app import ServeLimits, TranslationService, create_app


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
    app = create_app(service, limits)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    if not is_loopback(host):
        print(f"warning: listening on {host}, reachable from other machines; the API has no authentication",
              file=sys.stderr)
    # the tests read this line to learn the port
    print(f"serving {checkpoint} ({engine}) on http://{shown}:{bound_port}/ (API docs at /docs)", flush=True)
    config = uvicorn.Config(app, log_level=log_level, access_log=log_level == "debug", timeout_keep_alive=30)
    uvicorn.Server(config).run(sockets=[sock])
