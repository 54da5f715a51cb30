"""sacrebleu scoring with signatures."""

from seq2seq.evaluation import score


def test_perfect_and_imperfect_scores() -> None:
    references = ["मैं आज बाज़ार जा रहा हूँ ।", "यह किताब बहुत अच्छी है ।"]
    perfect = score(references, references)
    assert abs(perfect.bleu - 100) < 1e-9 and abs(perfect.chrf - 100) < 1e-9 and perfect.length_ratio == 1.0
    worse = score(["मैं बाज़ार जा रहा हूँ ।", "किताब अच्छी है ।"], references)
    assert 0 < worse.bleu < 100 and 0 < worse.chrf < 100 and worse.length_ratio < 1
    assert perfect.bleu_signature.startswith("nrefs:1|") and "version:" in perfect.chrf_signature
