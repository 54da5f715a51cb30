"""What one request may ask for and how requests are batched: one source for the server and its command line.

Without FastAPI, so that `python -m seq2seq serve --help` can list the limits before the serve extra loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


def limit(default: int | float, meaning: str, flag: bool = True, minimum: int | float = 1):
    """A limit with its meaning; flag=True makes it a `serve` option (--max-batch and so on) of at least minimum."""
    return field(default=default, metadata={"meaning": meaning, "flag": flag, "minimum": minimum})


@dataclass
class ServeLimits:
    """What one request may ask for, and how requests are batched; `python -m seq2seq serve --help` sets them."""

    max_body_bytes: int = limit(1_000_000, "largest request body in bytes; a larger one is refused (413) unread")
    max_sentences: int = limit(64, "most sentences in one request")
    max_chars: int = limit(1_000, "most characters in one sentence")
    max_beam_size: int = limit(16, "largest beam a request may ask for")
    max_n_best: int = limit(8, "longest n-best list a request may ask for")
    max_len: int = limit(512, "the most output pieces a request may ask for", flag=False)
    max_batch: int = limit(64, "most sentences decoded in one model call")
    max_wait_ms: float = limit(5.0, "how long a request waits for others to join its batch, in ms", minimum=0)
    max_queue: int = limit(2_048, "sentences waiting; beyond this the server answers 503", flag=False)
    timeout_s: float = limit(120.0, "a request still waiting for the model after this many seconds gets 503",
                             flag=False)


def serve_options() -> list:
    """The limits the `serve` command takes as options, with their types ('int' or 'float') and minimums."""
    return [f for f in fields(ServeLimits) if f.metadata["flag"]]
