"""The translation server: a real `python -m seq2seq serve` on 127.0.0.1, real HTTP, and one browser run."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import select
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason='the serve extra is not installed: pip install -e ".[serve]"')
pytest.importorskip("uvicorn", reason='the serve extra is not installed: pip install -e ".[serve]"')

import seq2seq  # noqa: E402
from seq2seq.serve.batcher import Batcher  # noqa: E402

ROOT = Path(seq2seq.__file__).resolve().parents[1]
STATIC = ROOT / "seq2seq" / "serve" / "static"
# small limits, so that every one of them is cheap to cross
LIMITS = {"--max-sentences": 8, "--max-chars": 200, "--max-body-bytes": 20_000, "--max-beam-size": 6,
          "--max-n-best": 3, "--max-wait-ms": 20}
JSON = {"content-type": "application/json"}


class Server:
    def __init__(self, process: subprocess.Popen, host: str, port: int):
        self.process, self.host, self.port = process, host, port

    def request(self, method: str, path: str, body: bytes | str | dict | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
        """(status, headers, body) of one request on a fresh connection."""
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def json(self, method: str, path: str, body=None, headers=None) -> tuple[int, dict]:
        status, _, data = self.request(method, path, body, headers)
        return status, json.loads(data)

    def translate(self, payload: dict) -> dict:
        status, answer = self.json("POST", "/translate", payload, JSON)
        assert status == 200, answer
        return answer


def start_server(checkpoint: Path, log: Path, *arguments: str) -> Server:
    command = [sys.executable, "-m", "seq2seq", "serve", "--checkpoint", str(checkpoint), "--port", "0",
               "--threads", "1", "--log-level", "warning", *arguments]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log.open("wb"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline().decode()
            match = re.search(r"on http://([\d.]+):(\d+)/", line)
            if match:
                server = Server(process, match.group(1), int(match.group(2)))
                wait_until_healthy(server, deadline)
                return server
        if process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"the server did not start: {log.read_text(errors='replace')[-2000:]}")


def wait_until_healthy(server: Server, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if server.request("GET", "/health")[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the server never answered /health")


def running_server(checkpoint: Path, log: Path, *arguments: str) -> Iterator[Server]:
    """A server for a fixture's lifetime; its log must end without a traceback."""
    server = start_server(checkpoint, log, *arguments)
    yield server
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
    assert "Traceback" not in log.read_text(errors="replace"), log.read_text(errors="replace")


@pytest.fixture(scope="module")
def server(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("serve") / "server.log"
    yield from running_server(tiny_checkpoint, log, *[str(item) for pair in LIMITS.items() for item in pair])


@pytest.fixture(scope="module")
def translator(tiny_checkpoint: Path):
    from seq2seq.translator import Translator

    return Translator.from_checkpoint(tiny_checkpoint, device="cpu")


SENTENCES = ["alpha bravo charlie", "delta echo foxtrot golf", "hotel india", "kilo lima mike november oscar"]


# --- the endpoints -------------------------------------------------------------------------------------------

def test_binds_loopback_by_default(server: Server) -> None:
    from seq2seq.cli import build_parser

    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"
    assert server.host == "127.0.0.1"


def test_health(server: Server) -> None:
    status, body = server.json("GET", "/health")
    assert status == 200 and body["status"] == "ok"
    assert {"waiting_sentences", "model_calls", "requests"} <= body.keys()


def test_model_describes_the_checkpoint(server: Server, tiny_checkpoint: Path) -> None:
    from seq2seq.checkpoint import load_checkpoint

    payload = load_checkpoint(tiny_checkpoint)
    status, body = server.json("GET", "/model")
    assert status == 200
    assert body["family"] == payload["config"]["model"].get("type", "rnn") == "rnn"
    assert body["format_version"] == payload["format_version"]
    assert body["package_version"] == payload["package_version"] == seq2seq.__version__
    assert body["decoding_defaults"]["method"] == payload["config"]["decoding"]["method"]
    assert body["decoding_defaults"]["beam_size"] == payload["config"]["decoding"]["beam_size"]
    parameters = sum(t.numel() for t in payload["model"].values() if t.is_floating_point())
    assert body["parameters"] == parameters
    assert set(body["languages"]) == {"source", "target"}
    assert body["example"] == payload["config"]["data"]["example"]  # the web page's example sentence
    assert body["limits"]["max_sentences"] == LIMITS["--max-sentences"]


def test_openapi_page(server: Server) -> None:
    status, schema = server.json("GET", "/openapi.json")
    assert status == 200
    request_schema = schema["paths"]["/translate"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"text", "beam_size", "n_best", "attention"} <= request_schema["properties"].keys()
    assert {"/health", "/model"} <= schema["paths"].keys()
    status, _, page = server.request("GET", "/docs")
    assert status == 200 and b"openapi.json" in page


def test_web_page_loads_only_from_the_app(server: Server) -> None:
    status, headers, page = server.request("GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in headers["content-security-policy"]
    html = page.decode()
    assert 'name="viewport"' in html  # usable on a phone
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert sorted(assets) == ["/static/app.js", "/static/style.css"]
    for asset in assets:
        assert server.request("GET", asset)[0] == 200
    for path in STATIC.iterdir():  # nothing from another host: no CDN, no web fonts
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", path.read_text()), path.name


def test_unknown_paths_and_methods_are_json(server: Server) -> None:
    for method, path, status in (("GET", "/nope", 404), ("DELETE", "/health", 405), ("GET", "/translate", 405)):
        got, body = server.json(method, path)
        assert got == status and body["error"]["code"] in {"not_found", "method_not_allowed"}


# --- translations ----------------------------------------------------------------------------------------------

def test_translations_match_the_translator(server: Server, translator) -> None:
    answer = server.translate({"text": SENTENCES})
    expected = translator.translate(SENTENCES)
    assert [t["text"] for t in answer["translations"]] == [nbest[0].text for nbest in expected]
    assert answer["decoding"]["method"] == translator.decoding.method
    assert all(t["hypotheses"][0]["attention"] is None for t in answer["translations"])


def test_prefix_and_alignments_match_the_translator(server: Server, translator) -> None:
    prefixes = ["zulu", "", "kilo lima", "yankee"]
    answer = server.translate({"text": SENTENCES, "prefix": prefixes, "alignments": True})
    expected = translator.translate(SENTENCES, record_attention=True, prefixes=prefixes)
    for served, nbest, prefix in zip(answer["translations"], expected, prefixes):
        assert served["text"] == nbest[0].text and served["text"].startswith(prefix)
        assert served["hypotheses"][0]["alignment"] == nbest[0].alignment_text() != ""
        assert served["hypotheses"][0]["attention"] is None  # asked for alignments only
    one_for_all = server.translate({"text": SENTENCES[:2], "prefix": "zulu"})
    assert all(t["text"].startswith("zulu") for t in one_for_all["translations"])


def run_translate_py(checkpoint: Path, *arguments: str) -> subprocess.Popen:
    """translate.py on one thread, like the server, so that even the scores' last digits agree."""
    return subprocess.Popen([sys.executable, "translate.py", "--checkpoint", str(checkpoint), "--device", "cpu",
                             *arguments, *SENTENCES], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_same_translations_as_translate_py(server: Server, tiny_checkpoint: Path) -> None:
    beam = run_translate_py(tiny_checkpoint, "--beam-size", "4", "--n-best", "3", "--length-penalty", "0.6")
    sample = run_translate_py(tiny_checkpoint, "--method", "sample", "--temperature", "0.9", "--top-p", "0.9",
                              "--seed", "7")
    beam_out, sample_out = (p.communicate(timeout=120)[0].decode().splitlines() for p in (beam, sample))
    assert beam.returncode == 0 and sample.returncode == 0

    answer = server.translate({"text": SENTENCES, "beam_size": 4, "n_best": 3, "length_penalty": 0.6})
    assert answer["decoding"]["method"] == "beam"  # as in translate.py, a beam size implies beam search
    served = [f"{rank}\t{h['score']:.4f}\t{h['text']}" for t in answer["translations"]
              for rank, h in enumerate(t["hypotheses"], 1)]
    assert served == beam_out

    answer = server.translate({"text": SENTENCES, "method": "sample", "temperature": 0.9, "top_p": 0.9, "seed": 7})
    assert [t["text"] for t in answer["translations"]] == sample_out


def test_attention_matrix_on_request(server: Server) -> None:
    answer = server.translate({"text": ["alpha bravo charlie"], "attention": True, "beam_size": 3, "n_best": 2})
    result = answer["translations"][0]
    assert len(result["hypotheses"]) == 2
    for hypothesis in result["hypotheses"]:
        matrix = hypothesis["attention"]
        assert len(matrix) == len(hypothesis["pieces"]) + 1
        assert all(len(row) == len(result["source_pieces"]) + 1 for row in matrix)
        assert all(abs(sum(row) - 1) < 0.01 for row in matrix)  # each output step's weights form a distribution


def test_one_bad_sentence_never_spoils_the_others(server: Server) -> None:
    alone = server.translate({"text": ["alpha bravo charlie", "delta echo"]})["translations"]
    mixed = ["   ", "alpha bravo charlie", "\ud800 lone surrogate, nul \u0000, bell \u0007", "\u200b\u200f🚉🚉",
             "delta echo", "x" * 200, "हिंदी और العربية", ""]
    texts = [t["text"] for t in server.translate({"text": mixed})["translations"]]
    assert len(texts) == len(mixed)
    assert texts[1] == alone[0]["text"] and texts[4] == alone[1]["text"]
    assert texts[0] == texts[7] == ""


def test_concurrent_clients_get_their_own_answers(server: Server, translator) -> None:
    import dataclasses

    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
    requests = []
    for i in range(24):
        text = [" ".join(words[(i + k) % len(words)] for k in range(3 + i % 4))]
        settings = {"beam_size": 3} if i % 3 == 0 else {}
        requests.append({"text": text, **settings})
    expected = []
    for request in requests:
        beam = dataclasses.replace(translator.decoding, method="beam", beam_size=3)
        single = translator if "beam_size" not in request else type(translator)(
            translator.model, translator.src_vocab, translator.tgt_vocab, beam)
        expected.append(single.translate(request["text"])[0][0].text)

    before = server.json("GET", "/health")[1]
    answers: list[str | None] = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def client(index: int) -> None:
        barrier.wait()
        answers[index] = server.translate(requests[index])["translations"][0]["text"]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert answers == expected
    after = server.json("GET", "/health")[1]
    assert after["requests"] - before["requests"] == len(requests)
    assert after["model_calls"] - before["model_calls"] < len(requests)  # requests were batched together
    assert after["largest_call"] > 1


# --- limits: each a 4xx JSON error, never a crash ----------------------------------------------------------------

BAD_REQUESTS = {
    "body too large": (json.dumps({"text": ["alpha " * 30] * 200}), 413, "body_too_large"),
    "too many sentences": (json.dumps({"text": ["alpha"] * 9}), 422, "limit_exceeded"),
    "too many characters": (json.dumps({"text": ["alpha", "a" * 201]}), 422, "limit_exceeded"),
    "beam size over the cap": (json.dumps({"text": ["alpha"], "beam_size": 7}), 422, "limit_exceeded"),
    "n-best over the cap": (json.dumps({"text": ["alpha"], "beam_size": 6, "n_best": 4}), 422, "limit_exceeded"),
    "n-best over the beam": (json.dumps({"text": ["alpha"], "beam_size": 2, "n_best": 3}), 422, "invalid_settings"),
    "unknown field": (json.dumps({"text": ["alpha"], "beam": 3}), 422, "invalid_request"),
    "text is a string": (json.dumps({"text": "alpha"}), 422, "invalid_request"),
    "sentence is a number": (json.dumps({"text": ["alpha", 3]}), 422, "invalid_request"),
    "beam size is a string": (json.dumps({"text": ["alpha"], "beam_size": "3"}), 422, "invalid_request"),
    "beam size is a float": (json.dumps({"text": ["alpha"], "beam_size": 3.5}), 422, "invalid_request"),
    "beam size is zero": (json.dumps({"text": ["alpha"], "beam_size": 0}), 422, "invalid_request"),
    "unknown method": (json.dumps({"text": ["alpha"], "method": "viterbi"}), 422, "invalid_request"),
    "attention is a number": (json.dumps({"text": ["alpha"], "attention": 1}), 422, "invalid_request"),
    "temperature is NaN": ('{"text": ["alpha"], "temperature": NaN}', 422, "invalid_request"),
    "top_p above 1": (json.dumps({"text": ["alpha"], "top_p": 1.5}), 422, "invalid_request"),
    "no text": (json.dumps({"beam_size": 3}), 422, "invalid_request"),
    "a prefix per sentence, miscounted": (json.dumps({"text": ["alpha", "bravo"], "prefix": ["x"]}), 422,
                                          "invalid_request"),
    "prefix is a number": (json.dumps({"text": ["alpha"], "prefix": 3}), 422, "invalid_request"),
    "not an object": ("[1, 2]", 422, "invalid_request"),
    "invalid UTF-8": (b'{"text": ["caf\xe9"]}', 400, "invalid_utf8"),
    "invalid JSON": ('{"text": ["alpha"', 400, "invalid_json"),
    "nested too deeply": ("[" * 10_000, 400, "invalid_json"),
    "empty body": ("", 400, "invalid_json"),
}


@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_limits_give_clear_4xx_json(server: Server, name: str) -> None:
    body, status, code = BAD_REQUESTS[name]
    got, answer = server.json("POST", "/translate", body, JSON)
    assert got == status, answer
    assert answer["error"]["code"] == code and answer["error"]["message"]


def test_wrong_content_type_and_declared_size(server: Server) -> None:
    got, answer = server.json("POST", "/translate", '{"text": ["alpha"]}', {"content-type": "text/plain"})
    assert got == 415 and "application/json" in answer["error"]["message"]
    # a declared length over the limit is refused before the body is read
    connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
    connection.putrequest("POST", "/translate")
    connection.putheader("content-type", "application/json")
    connection.putheader("content-length", str(10**9))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and json.loads(response.read())["error"]["code"] == "body_too_large"
    connection.close()


def test_error_messages_name_the_problem(server: Server) -> None:
    _, answer = server.json("POST", "/translate", {"text": ["alpha"], "beams": 3}, JSON)
    assert "unknown field 'beams'" in answer["error"]["message"] and "beam_size" in answer["error"]["message"]
    _, answer = server.json("POST", "/translate", {"text": ["a", "b" * 201]}, JSON)
    assert "text.1" in answer["error"]["message"] and "200" in answer["error"]["message"]


def test_server_survives_the_abuse(server: Server) -> None:
    for name in BAD_REQUESTS:
        server.request("POST", "/translate", BAD_REQUESTS[name][0], JSON)
    assert server.process.poll() is None
    assert server.translate({"text": ["alpha bravo"]})["translations"][0]["text"]


# --- the batcher on its own ------------------------------------------------------------------------------------

def test_request_fields_are_the_decoding_options_marked_for_the_api() -> None:
    from seq2seq.config import decoding_options
    from seq2seq.serve.app import TranslateRequest

    fields = TranslateRequest.model_fields
    for option, _ in decoding_options("api"):
        assert fields[option.name].description == option.metadata["doc"]
        assert fields[option.name].default is None
    assert "batch_size" not in fields and {"text", "attention", "alignments", "prefix"} <= set(fields)


def test_batcher_joins_equal_settings_and_isolates_a_failing_request() -> None:
    calls: list[list[str]] = []

    def translate(texts: list[str], decoding, attention: bool) -> list[str]:
        calls.append(list(texts))
        if "boom" in texts:
            raise ValueError("boom")
        return [f"{decoding}:{text.upper()}" for text in texts]

    async def scenario():
        batcher = Batcher(translate, max_batch=16, max_wait=0.05, max_queue=100)
        batcher.start()
        jobs = [batcher.submit(["a"], "greedy", False), batcher.submit(["boom"], "greedy", False),
                batcher.submit(["b", "c"], "greedy", False), batcher.submit(["d"], "beam", False)]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        await batcher.stop()
        return results

    results = asyncio.run(scenario())
    assert results[0] == ["greedy:A"] and results[2] == ["greedy:B", "greedy:C"] and results[3] == ["beam:D"]
    assert isinstance(results[1], ValueError)
    assert calls[0] == ["a", "boom", "b", "c"]  # one call for the three greedy requests, then each alone


# --- the browser ---------------------------------------------------------------------------------------------------

def chromium_driver(profile: Path):
    """Headless Debian chromium via selenium, or a skip that says what is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not browser or not driver_path:
        pytest.skip("chromium or chromedriver not found: apt-get install chromium chromium-driver (.ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=430,1000", "--force-device-scale-factor=1",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


def test_browser_translates_and_draws_the_heatmap(server: Server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    profile = tmp_path / "profile"  # a fresh user-data-dir each run
    driver = chromium_driver(profile)
    try:
        driver.get(f"http://{server.host}:{server.port}/")
        WebDriverWait(driver, 20).until(lambda d: "parameters" in d.find_element(By.ID, "model-info").text)
        sentence = "alpha bravo charlie delta"
        driver.find_element(By.ID, "source").send_keys(sentence)
        driver.find_element(By.ID, "translate").click()
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".result .target"))
        shown = driver.find_element(By.CSS_SELECTOR, ".result .target").text
        expected = server.translate({"text": [sentence]})["translations"][0]["text"]
        assert shown == expected and shown
        assert driver.find_elements(By.CSS_SELECTOR, ".heatmap canvas")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        screenshot = tmp_path / "serve.png"
        driver.save_screenshot(str(screenshot))
        assert screenshot.stat().st_size > 1000
        if os.environ.get("SEQ2SEQ_SCREENSHOT"):  # how docs/serve.png was made
            shutil.copy(screenshot, os.environ["SEQ2SEQ_SCREENSHOT"])
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# --- the CTranslate2 engine ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tiny_transformer_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("ctranslate2", reason="CTranslate2 is not installed (pip install -e '.[ctranslate2]')")
    from seq2seq.export import export_ctranslate2

    folder = tmp_path_factory.mktemp("export") / "ct2"
    export_ctranslate2(tiny_transformer_checkpoint, folder)
    return folder


@pytest.fixture(scope="module")
def ct2_server(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("serve-ct2") / "server.log"
    yield from running_server(exported, log, "--engine", "ctranslate2")


def test_ctranslate2_model_description(ct2_server: Server, tiny_transformer_checkpoint: Path) -> None:
    from seq2seq.checkpoint import read_model
    from seq2seq.model.build import count_parameters

    config, model, _, _ = read_model(tiny_transformer_checkpoint)
    status, body = ct2_server.json("GET", "/model")
    assert status == 200
    assert body["engine"] == "ctranslate2" and body["family"] == "transformer" and body["weights"] == "float32"
    assert body["parameters"] == count_parameters(model)
    assert body["package_version"] == seq2seq.__version__
    assert body["decoding_defaults"]["beam_size"] == config.decoding.beam_size


def test_ctranslate2_serves_what_the_engine_translates(ct2_server: Server, exported: Path) -> None:
    from seq2seq.ctranslate2_engine import CTranslate2Translator

    engine = CTranslate2Translator.from_directory(exported, "cpu", method="beam", beam_size=4, n_best=3)
    expected = engine.translate(SENTENCES)
    answer = ct2_server.translate({"text": SENTENCES, "beam_size": 4, "n_best": 3})
    served = [[(h["text"], h["score"]) for h in t["hypotheses"]] for t in answer["translations"]]
    assert served == [[(h.text, pytest.approx(h.score, abs=1e-4)) for h in nbest] for nbest in expected]


def test_ctranslate2_attention_matches_pytorch(ct2_server: Server, tiny_transformer_checkpoint: Path) -> None:
    """The exported heatmap is the PyTorch model's: the same layer, averaged over the same heads."""
    from seq2seq.translator import Translator

    text = "alpha bravo charlie delta"
    reference = Translator.from_checkpoint(tiny_transformer_checkpoint, device="cpu", method="greedy")
    expected = reference.translate([text], record_attention=True)[0][0]
    served = ct2_server.translate({"text": [text], "method": "greedy", "attention": True})["translations"][0]
    assert served["hypotheses"][0]["pieces"] == expected.pieces
    matrix = served["hypotheses"][0]["attention"]
    assert len(matrix) == len(expected.pieces) + 1
    for row, expected_row in zip(matrix, expected.attention.tolist()):
        assert row == pytest.approx(expected_row, abs=1e-3)


def test_serve_ctranslate2_needs_an_export_folder(tiny_transformer_checkpoint: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    from seq2seq.cli import main

    assert main(["serve", "--engine", "ctranslate2"]) == 2
    assert "needs --checkpoint" in capsys.readouterr().err
    assert main(["serve", "--engine", "ctranslate2", "--checkpoint", str(tiny_transformer_checkpoint.parent),
                 "--quantize"]) == 2
    assert "--quantize is for the pytorch engine" in capsys.readouterr().err

