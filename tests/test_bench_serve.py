"""bench/serve.py end to end on a tiny model: every engine and batching mode answers every request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason='the serve extra is not installed: pip install -e ".[serve]"')
pytest.importorskip("ctranslate2", reason="CTranslate2 is not installed (pip install -e '.[ctranslate2]')")

ROOT = Path(__file__).resolve().parents[1]


def test_bench_serve_measures_every_mode(tiny_transformer_checkpoint: Path, tmp_path: Path) -> None:
    from seq2seq.export import export_ctranslate2

    export_ctranslate2(tiny_transformer_checkpoint, tmp_path / "ct2")
    out = tmp_path / "rows.json"
    finished = subprocess.run(
        [sys.executable, "bench/serve.py", "--checkpoint", str(tiny_transformer_checkpoint), "--ctranslate2",
         str(tmp_path / "ct2"), "--clients", "1,3", "--requests", "6", "--seconds", "20", "--threads", "1",
         "--method", "greedy", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    rows = json.loads(out.read_text())
    modes = [(row["engine"], row["batching"], row["clients"]) for row in rows]
    assert modes == [("pytorch", "on", 1), ("pytorch", "on", 3), ("pytorch", "off", 1), ("pytorch", "off", 3),
                     ("ctranslate2", "on", 1), ("ctranslate2", "on", 3)]
    assert all(row["requests"] == 6 and row["failures"] == 0 for row in rows)
    assert "| ctranslate2 | 3 | on | 6 |" in finished.stdout
