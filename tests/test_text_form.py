"""Tests for seq2seq.data.text_form: Moses preparation that reproduces Multi30k's tok/ files, and round trips."""

from __future__ import annotations

import pytest
from conftest import SHARED_DATA

from seq2seq.config import Config, DataConfig, EvaluationConfig, TextFormConfig, validate
from seq2seq.data.text_form import TextForm, output_scoring
from seq2seq.errors import UserError

MULTI30K = SHARED_DATA / "multi30k"
TOK_FORM = TextFormConfig(lowercase=True, normalize_punctuation=True, moses_tokenize=True)


def multi30k_form(src: str, tgt: str) -> TextForm:
    return TextForm(TOK_FORM, src, tgt)


def test_no_text_form_leaves_text_as_typed() -> None:
    form = TextForm(TextFormConfig(), "en", "de")
    assert not form.active
    assert form.prepare_source("A Dog, running.") == "A Dog, running."
    assert form.finish_output("ein hund , rennend .") == "ein hund , rennend ."


def test_prepare_lowercases_normalises_and_tokenizes_with_moses_escapes() -> None:
    form = multi30k_form("en", "de")
    assert form.prepare_source("A boy's “red” ball, 5 dogs.") == "a boy &apos;s &quot; red &quot; ball , 5 dogs ."
    assert form.prepare_target("Ein Junge  mit   Ball.") == "ein junge mit ball ."


def test_split_hyphens_follows_tokenizer_dash_a() -> None:
    plain = TextForm(TOK_FORM, "en", "de")
    split = TextForm(TextFormConfig(lowercase=True, moses_tokenize=True, split_hyphens=True), "en", "de")
    assert plain.prepare_source("a four-wheeler") == "a four-wheeler"
    assert split.prepare_source("a four-wheeler") == "a four @-@ wheeler"
    assert split.finish_output("ein vier @-@ rad") == "ein vier-rad"


@pytest.mark.parametrize("typed", [
    "a man in a blue shirt holds a sign that says \"stop\" in red letters.",
    "two dogs, one black and one brown, play in the snow!",
    "a child's toy (a red ball) lies on the grass: it is old.",
])
def test_finish_output_undoes_tokenization(typed: str) -> None:
    form = multi30k_form("en", "en")
    tokenized = form.prepare_target(typed)
    assert tokenized != typed
    assert form.finish_output(tokenized) == typed


def test_lowercase_only_form_needs_no_language() -> None:
    config = Config(data=DataConfig(text_form=TextFormConfig(lowercase=True)))
    validate(config, "test")
    assert TextForm.of(config.data).prepare_source("Hello World") == "hello world"


def test_moses_steps_need_both_language_codes() -> None:
    config = Config(data=DataConfig(src_lang="en", text_form=TOK_FORM))
    with pytest.raises(UserError, match="data.text_form: .*set data.src_lang and data.tgt_lang"):
        validate(config, "test")


def test_split_hyphens_without_tokenization_is_refused() -> None:
    config = Config(data=DataConfig(text_form=TextFormConfig(split_hyphens=True)))
    with pytest.raises(UserError, match="data.text_form.split_hyphens"):
        validate(config, "test")


def test_language_codes_are_checked() -> None:
    with pytest.raises(UserError, match="data.src_lang: must be a language code"):
        validate(Config(data=DataConfig(src_lang="English")), "test")
    validate(Config(data=DataConfig(src_lang="pt-BR", tgt_lang="zh")), "test")


def test_detokenized_output_is_scored_as_ordinary_text() -> None:
    published = EvaluationConfig(tokenize="none", lowercase=True)
    assert output_scoring(published, multi30k_form("en", "de")) == EvaluationConfig(tokenize="13a", lowercase=True)
    kept = TextForm(TextFormConfig(lowercase=True, moses_tokenize=True, detokenize_output=False), "en", "de")
    assert output_scoring(published, kept) == published
    assert output_scoring(published, None) == published


@pytest.mark.skipif(not (MULTI30K / "raw" / "val.en").is_file(), reason="../shared/data/multi30k is not here")
@pytest.mark.parametrize("lang", ["en", "de", "fr"])
def test_prepare_reproduces_the_published_tok_files(lang: str) -> None:
    """Multi30k's tok/ files came from lowercase.perl | normalize-punctuation.perl | tokenizer.perl -l LANG."""
    raw = (MULTI30K / "raw" / f"val.{lang}").read_text(encoding="utf-8").splitlines()
    tok = (MULTI30K / "tok" / f"val.lc.norm.tok.{lang}").read_text(encoding="utf-8").splitlines()
    form = multi30k_form(lang, lang)
    same = sum(form.prepare_source(r) == t for r, t in zip(raw, tok, strict=True))
    assert same / len(tok) >= 0.995, f"{same} of {len(tok)} val.{lang} lines match"
