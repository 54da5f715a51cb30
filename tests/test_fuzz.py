"""Hostile input text: the translator and the CLI must never crash, drop or reorder lines."""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import sentencepiece as spm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seq2seq.translator import Translator

ROOT = Path(__file__).resolve().parents[1]
GOOD = ["alpha bravo charlie", "delta echo foxtrot golf", "kilo lima"]

NASTY = [
    "",
    " ",
    "\t\t  \n ",
    "\u3000\u2003\u00a0",  # ideographic, em and no-break spaces
    "a" * 10_000,
    "alpha " * 2_000,
    "😀" * 300 + " 👨‍👩‍👧‍👦 🏳️‍🌈",
    "مرحبا بالعالم",
    "שלום עולם",
    "\u202eevil\u202c alpha \u200f",  # bidi override and right-to-left mark
    "alpha\u200bbravo\u200dcharlie\ufeff",  # zero-width space, joiner, byte-order mark
    "\u200b\u200c\u200d",  # nothing but zero-width characters
    "\x00",
    "alpha\x00bravo",
    "\x01\x02\x03\x07\x08\x1b[31mred\x1b[0m\x7f",
    "\r",
    "line\rfeed\x0bvertical\x0cform",
    "\x85\u2028\u2029",
    "\ud800",
    "alpha \udfff bravo \ud83d",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "क़ ख़ ग़ ज़ ड़ ढ़ फ़ य़",  # nukta forms that NFC normalisation touches
    "alpha नमस्ते مرحبا 你好 Привет 🌍",
    "e\u0301\u0301\u0301\u0301\u0301",  # stacked combining accents
    "ﷺ ﷽ ꧅ 𒐫",
    "<unk> <s> </s> <pad> ▁ ▁▁",
    "\\n \\x00 %s %n {0} ${HOME}",
    "'; DROP TABLE pairs; --",
    "\U0010ffff\U000e0001\ufffe\uffff",
    "ALPHA BRAVO",
    ".,;:!?" * 50,
]

# Kept per module so the volume can be reported: each translate() input counts once.
counted = {"inputs": 0}


@pytest.fixture(scope="module")
def translator(tiny_checkpoint: Path) -> Translator:
    return Translator.from_checkpoint(tiny_checkpoint, device="cpu", method="greedy")



@pytest.fixture(scope="module")
def alone(translator: Translator) -> dict[str, str]:
    """Each good sentence translated on its own: the reference for batch independence."""
    return {text: translator.translate([text])[0][0].text for text in GOOD}


@pytest.fixture(scope="module", autouse=True)
def report_volume(request: pytest.FixtureRequest):
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\ntest_fuzz: {counted['inputs']} inputs translated")


@functools.cache
def independent_decoder(model_proto: bytes) -> spm.SentencePieceProcessor:
    """A SentencePiece processor of its own, not the translator's Vocab."""
    return spm.SentencePieceProcessor(model_proto=model_proto)


def translate_checked(translator: Translator, texts: list[str]):
    """Translate and check what must hold for any input at all."""
    results = translator.translate(texts)
    counted["inputs"] += len(texts)
    assert len(results) == len(texts)
    for text, nbest in zip(texts, results):
        assert isinstance(nbest, list) and len(nbest) >= 1, repr(text[:50])
        for translation in nbest:
            # the text is the output pieces joined back into words, nothing added, dropped or escaped
            assert translation.text == independent_decoder(translator.tgt_vocab.model_proto).decode_pieces(
                translation.pieces), repr(text[:50])
            assert translation.pieces == [] or translation.text.strip(), "pieces that decode to nothing"
            assert not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in translation.text), repr(
                translation.text)  # printable: no control characters or lone surrogates leak out
            assert "\n" not in translation.text, "a newline in the output would shift every later line"
        if all(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in text):
            assert nbest[0].text == "", repr(text)
    return results


def test_hand_made_strings_in_one_batch(translator: Translator) -> None:
    results = translate_checked(translator, NASTY)
    for text, nbest in zip(NASTY, results):
        if not text.strip():
            assert nbest[0].text == "" and nbest[0].warning is None, repr(text)


def test_hand_made_strings_one_at_a_time(translator: Translator) -> None:
    for text in NASTY:
        translate_checked(translator, [text])


def test_empty_list_gives_empty_list(translator: Translator) -> None:
    assert translator.translate([]) == []


def test_whitespace_and_control_only_inputs_give_empty_text(translator: Translator) -> None:
    texts = ["\x00", "\x00\x01\x1f", "\r", "\x85", "\u2028", "\u2029", "\x7f\x9f", "\t\x0b\x0c"]
    for text, nbest in zip(texts, translate_checked(translator, texts)):
        assert nbest[0].text == "", repr(text)


def test_overlong_inputs_are_truncated_with_a_warning(translator: Translator) -> None:
    limit = translator.decoding.max_input_pieces
    texts = ["a" * 10_000, "alpha bravo", "alpha " * 2_000, "x y z " * 1_000]
    results = translate_checked(translator, texts)
    assert results[1][0].warning is None
    for index in (0, 2, 3):
        warning = results[index][0].warning
        assert warning is not None and f"only its first {limit}" in warning, warning
        assert f"input {index + 1} " in warning
        assert len(results[index][0].source_pieces) == limit


def test_good_sentence_is_the_same_alone_and_among_hostile_strings(translator: Translator, alone) -> None:
    assert any(alone.values()), "the tiny model translates nothing: the fixture is broken"
    mixed = [*NASTY[:10], GOOD[0], *NASTY[10:20], GOOD[1], *NASTY[20:], GOOD[2]]
    results = translate_checked(translator, mixed)
    for text in GOOD:
        assert results[mixed.index(text)][0].text == alone[text]


def test_same_input_same_output_within_a_batch(translator: Translator, alone) -> None:
    results = translate_checked(translator, [GOOD[0]] * 40 + ["a" * 10_000] + [GOOD[0]] * 40)
    assert {nbest[0].text for i, nbest in enumerate(results) if i != 40} == {alone[GOOD[0]]}


@pytest.mark.parametrize("options", [
    {"method": "beam", "beam_size": 3, "n_best": 3},
    {"method": "beam", "beam_size": 1, "n_best": 1, "length_penalty": 0.0},
    {"method": "sample", "temperature": 1.5, "top_k": 5, "top_p": 0.9, "seed": 3},
], ids=["beam3-nbest3", "beam1", "sample"])
def test_other_search_methods_on_hand_made_strings(translator: Translator, options: dict) -> None:
    decoding = dataclasses.replace(translator.decoding, **options)
    other = Translator(translator.model, translator.src_vocab, translator.tgt_vocab, decoding, translator.device)
    results = translate_checked(other, NASTY + GOOD)
    for text, nbest in zip(NASTY + GOOD, results):
        if text.strip():
            assert 1 <= len(nbest) <= decoding.n_best, repr(text[:50])
            scores = [t.score for t in nbest]
            assert scores == sorted(scores, reverse=True), scores


HOSTILE_TEXT = st.text(max_size=200) | st.text(
    alphabet=st.characters(codec=None, categories=["Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "So", "Lo"]),
    max_size=60,
)


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(HOSTILE_TEXT, min_size=30, max_size=50), position=st.integers(0, 50))
def test_random_text_batches(translator: Translator, alone, texts: list[str], position: int) -> None:
    position = min(position, len(texts))
    batch = texts[:position] + [GOOD[0]] + texts[position:]
    results = translate_checked(translator, batch)
    assert results[position][0].text == alone[GOOD[0]]


@settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(
    st.sampled_from(NASTY) | st.lists(st.sampled_from(NASTY + GOOD), min_size=1, max_size=4).map("".join)
    | st.tuples(st.sampled_from(GOOD), st.text(max_size=20)).map(" ".join),
    min_size=20, max_size=50))
def test_mixtures_of_nasty_strings(translator: Translator, alone, texts: list[str]) -> None:
    batch = texts + GOOD
    results = translate_checked(translator, batch)
    for offset, text in enumerate(GOOD, len(texts)):
        assert results[offset][0].text == alone[text]


# --- the command line over stdin -------------------------------------------------------

STDIN_LINES = [
    b"alpha bravo charlie",
    b"\xff\xfe invalid utf-8 \xc3\x28 \xed\xa0\x80",  # the last is an encoded lone surrogate
    b"nul\x00inside",
    b"a" * 10_000,
    b"crlf ending\r",
    b"",
    b"line\xe2\x80\xa8separator and next\xc2\x85line inside one line",
    b"\xe2\x80\xa9",
    b"delta echo",
    b"\r",
    b"\x1b[2J escape codes \x07",
    "नमस्ते 😀 مرحبا".encode(),
]


def run_stdin(checkpoint: Path, data: bytes) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "translate.py", "--checkpoint", str(checkpoint), "--method", "greedy", "--device", "cpu",
         "-"], input=data, cwd=ROOT, capture_output=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_cli_stdin_keeps_one_output_line_per_input_line(tiny_checkpoint: Path, alone) -> None:
    data = b"\n".join(STDIN_LINES) + b"\n"
    result = run_stdin(tiny_checkpoint, data)
    stderr = result.stderr.decode("utf-8", errors="replace")
    assert "Traceback" not in stderr, stderr
    assert result.returncode == 0, stderr
    lines = result.stdout.split(b"\n")
    assert lines.pop() == b"", "output must end with a newline"
    assert len(lines) == len(STDIN_LINES), lines
    assert lines[0].decode("utf-8") == alone[GOOD[0]]
    assert lines[5] == b"" and lines[9] == b""
    # the 10,000-character line (input 4) is truncated and says so on stderr
    assert "input 4 " in stderr and "max_input_pieces" in stderr
    counted["inputs"] += len(STDIN_LINES)


def test_cli_stdin_without_final_newline_and_crlf_only(tiny_checkpoint: Path) -> None:
    data = b"alpha bravo\r\n\r\n\xff\r\ndelta echo"  # four lines, CRLF, no final newline
    result = run_stdin(tiny_checkpoint, data)
    assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr
    lines = result.stdout.split(b"\n")
    assert lines.pop() == b""
    assert len(lines) == 4 and lines[1] == b""
    counted["inputs"] += 4
