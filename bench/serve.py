"""Throughput and latency of `python -m seq2seq serve` under 1, 8 and 64 concurrent clients.

Starts the real server on 127.0.0.1 (a free port, loopback only), sends one-sentence requests
from N client threads, each on its own keep-alive connection, and prints a Markdown table:
requests/s, p50 and p95 latency, and the mean sentences per model call (from /health), with
server-side batching on (the default settings) and off (--max-batch 1), and with --ctranslate2
the same model exported to CTranslate2, served with batching on. Every level is bounded by a
request count and a time limit, so the whole run has a known ceiling.

    python bench/serve.py --checkpoint runs/en-hi/best.pt --clients 1,8,64 --requests 256 --seconds 30
    python bench/serve.py --checkpoint runs/en-hi/best.pt --ctranslate2 en-hi-ct2 --no-unbatched
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import re
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = [
    "Hello, how are you?", "Where is the station?", "I am hungry.", "What time is it?",
    "Please close the door.", "The weather is nice today.", "My brother lives in Delhi.",
    "How much does this cost?", "I do not understand.", "Can you help me?", "The train is late.",
    "She is reading a book.", "We will meet tomorrow morning.", "This is my house.",
    "Where can I buy a ticket?", "The children are playing in the garden.", "I like tea with milk.",
    "He works at the hospital.", "Open the window, please.", "Thank you very much.",
]


def start_server(checkpoint: str, threads: int, extra: list[str], log) -> tuple[subprocess.Popen, int]:
    command = [sys.executable, "-m", "seq2seq", "serve", "--checkpoint", checkpoint, "--host", "127.0.0.1",
               "--port", "0", "--device", "cpu", "--threads", str(threads), "--log-level", "warning", *extra]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if select.select([process.stdout], [], [], 0.5)[0]:
            match = re.search(r"http://127\.0\.0\.1:(\d+)/", process.stdout.readline().decode())
            if match:
                return process, int(match.group(1))
    process.kill()
    raise SystemExit("the server did not start; see its log")


def get_json(port: int, path: str) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def wait_healthy(port: int) -> None:
    for _ in range(200):
        try:
            get_json(port, "/health")
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server never answered /health")


def run_level(port: int, clients: int, total: int, seconds: float, settings: dict) -> dict:
    """`clients` threads send one-sentence requests until `total` are answered or `seconds` pass."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    issued = [0]
    deadline = time.monotonic() + seconds
    start_gate = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        start_gate.wait()
        while time.monotonic() < deadline:
            with lock:
                if issued[0] >= total:
                    break
                number = issued[0]
                issued[0] += 1
            body = json.dumps({"text": [SENTENCES[number % len(SENTENCES)]], **settings})
            sent = time.perf_counter()
            try:
                connection.request("POST", "/translate", body=body, headers={"content-type": "application/json"})
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            elapsed = time.perf_counter() - sent
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    failures[0] += 1
        connection.close()

    before = get_json(port, "/health")
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start_gate.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=seconds + 130)
    wall = time.perf_counter() - began
    after = get_json(port, "/health")
    calls = max(1, after["model_calls"] - before["model_calls"])
    latencies.sort()

    def percentile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    return {"clients": clients, "requests": len(latencies), "failures": failures[0],
            "requests_per_s": len(latencies) / wall, "p50_ms": percentile(0.50), "p95_ms": percentile(0.95),
            "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
            "sentences_per_call": (after["sentences"] - before["sentences"]) / calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="model file, e.g. runs/en-hi/best.pt")
    parser.add_argument("--clients", default="1,8,64", help="concurrency levels, comma-separated")
    parser.add_argument("--requests", type=int, default=256, help="requests per level, at most (default 256)")
    parser.add_argument("--seconds", type=float, default=30, help="time per level, at most (default 30)")
    parser.add_argument("--threads", type=int, default=2, help="the server's torch threads (default 2)")
    parser.add_argument("--method", choices=["greedy", "beam"], help="search sent with each request")
    parser.add_argument("--beam-size", type=int)
    parser.add_argument("--no-unbatched", action="store_true", help="skip the --max-batch 1 comparison")
    parser.add_argument("--ctranslate2", metavar="DIR",
                        help="also serve this export of the same model (python -m seq2seq export) with CTranslate2")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    levels = [int(n) for n in args.clients.split(",")]
    if min(levels) < 1 or max(levels) > 256 or args.requests < 1 or args.seconds <= 0:
        raise SystemExit("--clients must be in 1..256, --requests and --seconds positive")
    settings = {key: value for key, value in {"method": args.method, "beam_size": args.beam_size}.items() if value}

    # (engine, batching, model, server options)
    modes = [("pytorch", "on", args.checkpoint, [])]
    if not args.no_unbatched:
        modes.append(("pytorch", "off", args.checkpoint, ["--max-batch", "1", "--max-wait-ms", "0"]))
    if args.ctranslate2:
        modes.append(("ctranslate2", "on", args.ctranslate2, ["--engine", "ctranslate2"]))
    rows = []
    log = tempfile.NamedTemporaryFile(prefix="bench-serve-", suffix=".log", delete=False)
    print(f"server log: {log.name}", file=sys.stderr)
    for engine, batching, checkpoint, extra in modes:
        process, port = start_server(checkpoint, args.threads, extra, log)
        try:
            wait_healthy(port)
            for warm in range(3):
                run_level(port, 1, 3, 10, settings)
            for clients in levels:
                row = run_level(port, clients, args.requests, args.seconds, settings)
                row["engine"], row["batching"] = engine, batching
                rows.append(row)
                print(f"{engine}, batching {batching}, {clients} clients: {row['requests_per_s']:.1f} requests/s, "
                      f"p50 {row['p50_ms']:.0f} ms, p95 {row['p95_ms']:.0f} ms", file=sys.stderr)
            if engine == "pytorch":
                model = get_json(port, "/model")
        finally:
            process.terminate()
            process.wait(timeout=30)

    decoding = {**model["decoding_defaults"], **settings}
    search = "greedy" if decoding["method"] == "greedy" else f"beam {decoding['beam_size']}"
    print(f"`python bench/serve.py {' '.join(sys.argv[1:])}` on {date.today().isoformat()}, "
          f"{platform.machine()} CPU, {args.threads} server threads, client on the same machine; "
          f"{model['checkpoint']} ({model['parameters']:,} parameters), {search}, one sentence per request:\n")
    print("| engine | clients | server batching | requests | requests/s | p50 latency | p95 latency "
          "| sentences per model call |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for row in rows:
        failed = f" ({row['failures']} failed)" if row["failures"] else ""
        print(f"| {row['engine']} | {row['clients']} | {row['batching']} | {row['requests']}{failed} | "
              f"{row['requests_per_s']:.1f} | "
              f"{row['p50_ms']:.0f} ms | {row['p95_ms']:.0f} ms | {row['sentences_per_call']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
