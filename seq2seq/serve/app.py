"""The HTTP API: POST /translate, GET /health, GET /model, the web page, and the OpenAPI docs.

Every mistake a client can make is answered with a 4xx status and one JSON shape,
`{"error": {"code": ..., "message": ..., "details": [...]}}`; the body is read by hand (not by
FastAPI's body parsing) so that size, UTF-8 and JSON problems get their own clear answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import re
import time
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException

from seq2seq import __version__
from seq2seq.checkpoint import count_state_parameters, load_checkpoint, model_from_payload
from seq2seq.config import Config, DecodingConfig, config_to_dict, decoding_options, validate
from seq2seq.errors import UserError
from seq2seq.quantization import quantize_model, quantized_device
from seq2seq.serve.batcher import Batcher, QueueFull
from seq2seq.serve.limits import ServeLimits
from seq2seq.runtime import select_device
from seq2seq.translator import PyTorchEngine, Translation, Translator

STATIC_DIR = Path(str(resources.files("seq2seq.serve") / "static"))


class RequestBase(BaseModel):
    """What every request has besides the decoding settings."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    text: list[str] = Field(description="sentences to translate, one string each",
                            examples=[["Hello, how are you?", "Where is the station?"]])


def decoding_request_fields() -> dict[str, Any]:
    """One optional field per DecodingConfig option marked api=True: type, bounds and description are its
    declaration's; unset (null) keeps the checkpoint's default."""
    return {f.name: (hint | None, Field(None, description=f.metadata["doc"], **f.metadata.get("bounds", {})))
            for f, hint in decoding_options("api")}


TranslateRequest = create_model(
    "TranslateRequest", __base__=RequestBase,
    __doc__="Sentences and optional decoding settings; unset settings take the checkpoint's decoding defaults.",
    **decoding_request_fields(),
    attention=(bool, Field(False, description="return each hypothesis's attention matrix")),
    alignments=(bool, Field(False, description="return each hypothesis's source-target piece alignment, read from "
                                               "the attention: 'i-j' pairs, 0-based, EOS excluded")),
    prefix=(str | list[str] | None, Field(
        None, description="target text every output starts with (the search continues after it): one string for "
                          "every sentence, or a list with one per sentence ('' = none)")),
)


class ApiHypothesis(BaseModel):
    """One hypothesis as the API returns it (search.Hypothesis is the search's token-level one)."""

    text: str
    score: float | None = Field(description="log-probability after the length penalty (null if not finite)")
    pieces: list[str]
    attention: list[list[float]] | None = Field(
        None, description="rows: output pieces then </s>; columns: source pieces then </s>")
    alignment: str | None = Field(None, description="'i-j' pairs: source piece i aligned to output piece j")


class SentenceResult(BaseModel):
    text: str = Field(description="the best translation")
    source_pieces: list[str]
    hypotheses: list[ApiHypothesis] = Field(description="the n-best list, best first")
    warning: str | None = None


class TranslateResponse(BaseModel):
    translations: list[SentenceResult]
    decoding: dict[str, Any] = Field(description="the settings used")
    elapsed_ms: float


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[Any] = []


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """A request the server refuses: status, a stable code, and a message that names the fix."""

    def __init__(self, status: int, code: str, message: str, details: list[Any] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or []


def error_response(status: int, code: str, message: str, details: list[Any] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or []}}
    return JSONResponse(body, status_code=status, headers=headers)


class TranslationService:
    """A loaded model (PyTorch checkpoint or CTranslate2 export): its metadata, and decoding with per-request
    settings."""

    def __init__(self, translator: Translator, config: Config, source: Path, engine: str, description: dict[str, Any]):
        self.translator = translator
        self.config = config
        self.source = source
        self.engine = engine
        self.description = description  # format and package versions, parameters, weight type

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, device: str = "cpu", quantize: bool = False) -> TranslationService:
        """Reads the checkpoint file once: the model and its metadata come from the same payload."""
        checkpoint = Path(checkpoint)
        target = quantized_device(device) if quantize else select_device(device)  # fail before the load
        payload = load_checkpoint(checkpoint)
        config, model, src_vocab, tgt_vocab = model_from_payload(payload, checkpoint)
        description = {"format_version": payload["format_version"], "package_version": payload["package_version"],
                       "parameters": count_state_parameters(payload["model"]),
                       "weights": "int8" if quantize else "float32"}
        del payload
        if quantize:
            model = quantize_model(model)
        translator = Translator(PyTorchEngine(model, target), src_vocab, tgt_vocab, config.decoding)
        return cls(translator, config, checkpoint, "pytorch", description)

    @classmethod
    def from_ctranslate2(cls, folder: str | Path, device: str = "cpu") -> TranslationService:
        from seq2seq.ctranslate2_engine import CTranslate2Translator

        translator = CTranslate2Translator.from_directory(folder, device)
        info = translator.info
        description = {"format_version": info.get("format_version"), "package_version": info.get("package_version"),
                       "parameters": info.get("parameters"), "weights": info.get("quantization")}
        return cls(translator, translator.config, Path(folder), "ctranslate2", description)

    def decoding_for(self, request: TranslateRequest, limits: ServeLimits) -> DecodingConfig:
        """The checkpoint's defaults with the request's settings on top, checked as a config file would be."""
        overrides = {f.name: getattr(request, f.name) for f, _ in decoding_options("api")}
        caps = {"beam_size": limits.max_beam_size, "n_best": limits.max_n_best, "max_len": limits.max_len}
        for name, cap in caps.items():
            if (overrides.get(name) or 0) > cap:
                raise ApiError(422, "limit_exceeded", f"{name} is {overrides[name]}; this server allows at most {cap}")
        decoding = self.translator.decoding.override(overrides)
        try:
            validate(dataclasses.replace(self.config, decoding=decoding), "request")
        except UserError as error:
            raise ApiError(422, "invalid_settings", str(error).replace("decoding.", "")) from None
        return decoding

    def translate(self, items: list[tuple[str, str]], decoding: DecodingConfig,
                  attention: bool) -> list[list[Translation]]:
        """(text, prefix) items; runs in the batcher's worker thread with this call's own settings."""
        texts = [text for text, _ in items]
        prefixes = [prefix for _, prefix in items]
        return self.translator.translate(texts, record_attention=attention, decoding=decoding,
                                         prefixes=prefixes if any(prefixes) else None)

    def describe(self, limits: ServeLimits) -> dict[str, Any]:
        model = config_to_dict(self.config)["model"]
        return {
            "checkpoint": self.source.name,
            "engine": self.engine,
            "family": model.get("type", "rnn"),
            "languages": languages_of(self.config),
            "example": self.config.data.example,
            "vocabulary": {"source": len(self.translator.src_vocab), "target": len(self.translator.tgt_vocab)},
            "model": model,
            "decoding_defaults": dataclasses.asdict(self.config.decoding),
            **self.description,
            "server_version": __version__,
            "device": str(self.translator.device),
            "limits": dataclasses.asdict(limits),
        }


def languages_of(config) -> dict[str, str | None]:
    """Source and target language codes: data.src_lang/tgt_lang, else read from a name like 'en-hi'."""
    if config.data.src_lang and config.data.tgt_lang:
        return {"source": config.data.src_lang, "target": config.data.tgt_lang}
    for name in (config.data.download, config.name):
        match = re.fullmatch(r"([a-z]{2,3})-([a-z]{2,3})(?:-.*)?", name or "")
        if match:
            return {"source": match.group(1), "target": match.group(2)}
    return {"source": None, "target": None}


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def sentence_result(nbest: list[Translation], attention: bool, alignments: bool = False) -> dict[str, Any]:
    def matrix(translation: Translation) -> list[list[float]] | None:
        if not attention or translation.attention is None:
            return None
        return [[round(float(w), 4) for w in row] for row in translation.attention.tolist()]

    def hypothesis(translation: Translation) -> dict[str, Any]:
        shown = {"text": translation.text, "score": finite_or_none(translation.score), "pieces": translation.pieces,
                 "attention": matrix(translation)}
        if alignments:
            shown["alignment"] = translation.alignment_text()
        return shown

    best = nbest[0]
    return {
        "text": best.text,
        "source_pieces": best.source_pieces,
        "hypotheses": [hypothesis(t) for t in nbest],
        "warning": best.warning,
    }


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes the limit, without reading the rest."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"the body is {int(declared)} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"the body is over {limit} bytes, the limit")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ApiError(400, "invalid_utf8",
                       f"the body is not valid UTF-8 (byte {error.start}: {body[error.start:error.start + 1]!r}); "
                       "send JSON encoded as UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {error.msg} at line {error.lineno} "
                                            f"column {error.colno}") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "the body is nested too deeply") from None


def parse_request(data: Any) -> TranslateRequest:
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_request", 'the body must be a JSON object such as {"text": ["Hello."]}')
    try:
        return TranslateRequest.model_validate(data)
    except ValidationError as error:
        details = error.errors(include_url=False, include_input=False, include_context=False)
        raise ApiError(422, "invalid_request", "; ".join(describe_problem(p) for p in details), details) from None


def describe_problem(problem: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in problem["loc"]) or "body"
    if problem["type"] == "extra_forbidden":
        known = ", ".join(TranslateRequest.model_fields)
        return f"unknown field {where!r} (known fields: {known})"
    if problem["type"] == "missing":
        return f"{where}: required, e.g. \"text\": [\"Hello.\"]"
    return f"{where}: {problem['msg']}"


def request_prefixes(request: TranslateRequest) -> list[str]:
    """One prefix per sentence ('' = none)."""
    if request.prefix is None:
        return [""] * len(request.text)
    if isinstance(request.prefix, str):
        return [request.prefix] * len(request.text)
    if len(request.prefix) != len(request.text):
        raise ApiError(422, "invalid_request", f"prefix has {len(request.prefix)} entries for {len(request.text)} "
                                               "sentences; give one per sentence, or one string for all")
    return request.prefix


def check_sizes(request: TranslateRequest, limits: ServeLimits) -> None:
    if len(request.text) > limits.max_sentences:
        raise ApiError(422, "limit_exceeded", f"text has {len(request.text)} sentences; this server takes at most "
                                              f"{limits.max_sentences} per request")
    for index, sentence in enumerate(request.text):
        if len(sentence) > limits.max_chars:
            raise ApiError(422, "limit_exceeded", f"text.{index} has {len(sentence)} characters; this server takes "
                                                  f"at most {limits.max_chars} per sentence")
    for index, prefix in enumerate(request_prefixes(request)):
        if len(prefix) > limits.max_chars:
            raise ApiError(422, "limit_exceeded", f"prefix.{index} has {len(prefix)} characters; this server takes "
                                                  f"at most {limits.max_chars} per prefix")


def request_schema() -> dict[str, Any]:
    """The OpenAPI request body, since /translate reads its body by hand."""
    schema = TranslateRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def create_app(service: TranslationService, limits: ServeLimits | None = None) -> FastAPI:
    limits = limits or ServeLimits()
    batcher = Batcher(service.translate, limits.max_batch, limits.max_wait_ms / 1000, limits.max_queue)
    started = time.monotonic()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="seq2seq translation server", version=__version__, lifespan=lifespan,
                  description="Neural machine translation between the languages of the checkpoint (see /model). "
                              "Errors: a 4xx status and {\"error\": {\"code\", \"message\", \"details\"}}.")
    app.state.batcher = batcher
    app.state.service = service

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, error.details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return error_response(error.status_code, code, f"{request.method} {request.url.path}: {error.detail}",
                              headers=getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", "the request does not match the API", list(error.errors()))

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> JSONResponse:
        return error_response(500, "internal_error", f"the server failed: {type(error).__name__}")

    errors = {status: {"model": ErrorResponse} for status in (400, 413, 415, 422, 500, 503)}

    @app.post("/translate", response_model=TranslateResponse, responses=errors, openapi_extra=request_schema(),
              summary="Translate sentences")
    async def translate(request: Request) -> JSONResponse:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise ApiError(415, "unsupported_media_type",
                           f"content-type is {content_type or 'missing'!r}; send application/json")
        body = parse_request(parse_json(await read_body(request, limits.max_body_bytes)))
        check_sizes(body, limits)
        decoding = service.decoding_for(body, limits)
        start = time.perf_counter()
        try:
            items = list(zip(body.text, request_prefixes(body)))
            record = body.attention or body.alignments
            results = await asyncio.wait_for(batcher.submit(items, decoding, record), limits.timeout_s)
        except QueueFull as error:
            raise ApiError(503, "busy", f"the server is busy ({error}); retry shortly") from None
        except asyncio.TimeoutError:
            raise ApiError(503, "timeout", f"no model time within {limits.timeout_s:g} s; retry shortly") from None
        except Exception as error:  # noqa: BLE001 - a failed decode is this request's 500, not the server's end
            raise ApiError(500, "translation_failed", f"translation failed: {type(error).__name__}: {error}") from None
        shown = {f.name: getattr(decoding, f.name) for f, _ in decoding_options("api")}
        return JSONResponse({
            "translations": [sentence_result(nbest, body.attention, body.alignments) for nbest in results],
            "decoding": shown,
            "elapsed_ms": round((time.perf_counter() - start) * 1000, 2),
        })

    @app.get("/health", summary="Liveness and queue figures")
    async def health() -> dict[str, Any]:
        stats = batcher.stats
        return {"status": "ok", "uptime_s": round(time.monotonic() - started, 1),
                "waiting_sentences": batcher.waiting_sentences, "model_calls": stats.calls,
                "requests": stats.requests, "sentences": stats.sentences, "largest_call": stats.largest_call}

    @app.get("/model", summary="The loaded model: languages, family, size, decoding defaults, versions")
    async def model() -> dict[str, Any]:
        return service.describe(limits)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        # everything the page loads comes from this server: say so to the browser too
        policy = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"
        return FileResponse(STATIC_DIR / "index.html", headers={"content-security-policy": policy})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
