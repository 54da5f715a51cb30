"""sacrebleu scoring with signatures."""

import math

from seq2seq.config import EvaluationConfig
from seq2seq.evaluation import score


def test_perfect_and_imperfect_scores() -> None:
    references = ["मैं आज बाज़ार जा रहा हूँ ।", "यह किताब बहुत अच्छी है ।"]
    perfect = score(references, references)
    assert abs(perfect.bleu - 100) < 1e-9 and abs(perfect.chrf - 100) < 1e-9 and perfect.length_ratio == 1.0
    worse = score(["मैं बाज़ार जा रहा हूँ ।", "किताब अच्छी है ।"], references)
    assert 0 < worse.bleu < 100 and 0 < worse.chrf < 100 and worse.length_ratio < 1
    assert perfect.bleu_signature.startswith("nrefs:1|") and "version:" in perfect.chrf_signature


def test_ter_is_reported_with_its_signature() -> None:
    references = ["a dog runs on the grass .", "two men play music ."]
    perfect = score(references, references)
    assert perfect.ter == 0.0
    # one substitution and one deletion: 2 edits over 7 + 5 reference tokens
    worse = score(["a cat runs on the grass .", "two men play ."], references)
    assert abs(worse.ter - 100 * 2 / 12) < 1e-9
    assert worse.ter_signature.startswith("nrefs:1|") and "tok:tercom" in worse.ter_signature
    assert f"TER {worse.ter:.2f}" in worse.summary()
    assert f"TER|{worse.ter_signature}" in worse.report()


def test_tokenize_none_and_lowercase_score_tokenized_text_as_multi_bleu_does() -> None:
    """The published Multi30k convention: tokenized lowercased hypotheses, tokenize none, lowercase."""
    hypotheses = ["a b c d e F"]
    references = ["a b c d x f"]
    published = score(hypotheses, references, EvaluationConfig(tokenize="none", lowercase=True))
    # 5/6 unigrams, 3/5 bigrams, 2/4 trigrams, 1/3 four-grams, equal lengths (no brevity penalty)
    expected = 100 * math.exp((math.log(5 / 6) + math.log(3 / 5) + math.log(2 / 4) + math.log(1 / 3)) / 4)
    assert abs(published.bleu - expected) < 1e-9
    cased = score(hypotheses, references, EvaluationConfig(tokenize="none"))  # "F" no longer matches "f"
    expected = 100 * math.exp((math.log(4 / 6) + math.log(3 / 5) + math.log(2 / 4) + math.log(1 / 3)) / 4)
    assert abs(cased.bleu - expected) < 1e-9
    assert "tok:none" in published.bleu_signature and "case:lc" in published.bleu_signature
    assert "case:mixed" in cased.bleu_signature
    assert "case:lc" in published.ter_signature and "case:mixed" in cased.ter_signature
    assert "case:lc" in published.chrf_signature


def test_tokenize_none_keeps_the_tokens_13a_would_split() -> None:
    hypotheses, references = ["the dog ran ."], ["the dog ran."]
    assert abs(score(hypotheses, references).bleu - 100) < 1e-9  # 13a splits off the full stop
    assert score(hypotheses, references).ter == 0.0  # so does TER's normalisation
    kept = score(hypotheses, references, EvaluationConfig(tokenize="none"))
    assert kept.bleu < 100.0 and kept.ter > 0.0
