"""Cleaning rules for English-Hindi training pairs: each rule, its near-misses, and their order."""

from __future__ import annotations

import pytest

from seq2seq.config import CleaningConfig
from seq2seq.data.cleaning import RULES, PairFilter, has_legacy_font_residue, overlap_key, script_share

EN_HI = CleaningConfig(src_script="latin", tgt_script="devanagari", legacy_font=True)
OFF = CleaningConfig(legacy_font=False, dedup=False, remove_eval_overlap=False)

GOOD = [
    ("I bought vegetables from the market yesterday.", "मैंने कल बाज़ार से सब्ज़ियाँ खरीदीं।"),
    ("This book is very interesting.", "यह किताब बहुत रोचक है।"),
    ("I bought a new iPhone yesterday.", "मैंने कल नया iPhone खरीदा।"),
    ("My favourite language is Python.", "मेरी पसंदीदा भाषा Python।"),
    ("2014", "२०१४"),
    ("The temperature was 40°C.", "तापमान 40°C था।"),
    ("It was 40 degrees at noon.", "दोपहर में 40° था।"),  # real text: the sign only on one side
    ("I like the café near my house.", "मुझे मेरे घर के पास वाला café पसंद है।"),
]
# "India is a vast country." typed in the Kruti Dev font: Devanagari glyphs on ASCII code points
KRUTI_DEV = ("India is a vast country.", "Hkkjr ,d fo'kky ns'k gS")
GLUED = ("This is my room.", "यह मेरा कksa है।")
MOJIBAKE = ("This book is very interesting.", "यह किताब बहुत रोचक " + "है".encode().decode("latin-1"))


def reasons(pair_filter: PairFilter, pairs: list[tuple[str, str]]) -> list[str | None]:
    return [pair_filter.reject_reason(src, tgt) for src, tgt in pairs]


def words(count: int, word: str = "word") -> str:
    return " ".join([word] * count)


def test_length_rules_match_the_corpus_rules_at_their_boundaries() -> None:
    rules = CleaningConfig(min_words=2, max_words=6, max_ratio=2.0, ratio_slack=1, dedup=False)
    pairs = [
        ("", "कुछ"), ("two words", ""),
        ("one", "एक दो"), ("one two", "एक दो"),
        (words(6), words(6, "श")), (words(7), words(6, "श")),
        (words(2), words(5, "श")), (words(2), words(6, "श")),
    ]
    assert reasons(PairFilter(rules), pairs) == [
        "empty", "empty", "too short", None, None, "too long", None, "length ratio",
    ]


def test_good_english_hindi_pairs_pass_every_rule() -> None:
    assert reasons(PairFilter(EN_HI, ["Something else entirely."]), GOOD) == [None] * len(GOOD)


def test_script_rules_drop_swapped_transliterated_and_foreign_sides() -> None:
    pairs = [
        ("यह किताब बहुत रोचक है।", "This book is very interesting."),
        ("This book is very interesting.", "yah kitaab bahut rochak hai."),
        ("I went to the market yesterday.", "میں کل بازار گیا۔"),
        KRUTI_DEV,
    ]
    assert reasons(PairFilter(EN_HI), pairs) == ["source script", "target script", "target script", "target script"]


def test_min_script_share_sets_how_much_foreign_text_a_side_may_hold() -> None:
    # Devanagari letters: क and its matra, 2 of 13
    pair = [("Apple's iPhone", "Apple का iPhone")]
    assert reasons(PairFilter(EN_HI), pair) == ["target script"]
    lenient = CleaningConfig(src_script="latin", tgt_script="devanagari", min_script_share=0.1)
    assert reasons(PairFilter(lenient), pair) == [None]


def test_script_share_counts_matras_and_virama_as_letters_and_ignores_digits_and_danda() -> None:
    assert script_share("कि", "devanagari") == 1.0
    # क ि are two letters: if the matra were not a letter the share would be 1/2
    assert script_share("कि a", "devanagari") == pytest.approx(2 / 3)
    assert script_share("कि a", "latin") == pytest.approx(1 / 3)
    assert script_share("क्या। ab १२ 34", "devanagari") == pytest.approx(4 / 6)
    assert script_share("मैं Привет", "devanagari") == pytest.approx(3 / 9)
    assert script_share("\ua8f2क", "devanagari") == 1.0
    assert script_share("Việt Nam, façade", "latin") == 1.0
    assert script_share("2014, १२!", "latin") is None


def test_legacy_font_drops_residue_on_the_devanagari_side() -> None:
    pairs = [
        GLUED,
        MOJIBAKE,
        ("This book is very interesting.", "यह किताब \ue03a बहुत रोचक है।"),
        ("I like the cafe near my house.", "मुझे मेरे घर के पास वाला café पसंद है।"),
        ("This is an example.", "यह ¼उदाहरण½ है।"),
    ]
    assert reasons(PairFilter(EN_HI), pairs) == ["legacy font"] * len(pairs)


def test_legacy_font_residue_detector_on_its_own() -> None:
    assert has_legacy_font_residue("यह मेरा कksa है।", "This is my room.")
    assert has_legacy_font_residue("मेरा kक", "")
    # mojibake counts even when the other side is just as broken
    broken = "है".encode().decode("latin-1")
    assert has_legacy_font_residue(broken, broken)
    assert has_legacy_font_residue("यह çdk'k है", "This is light.")
    assert not has_legacy_font_residue("मुझे café पसंद है।", "I like the café.")
    # "à" alone is French, not mojibake, when the English side has it too
    assert not has_legacy_font_residue("उसे à la carte खाना पसंद है।", "He likes à la carte food.")
    assert not has_legacy_font_residue("मेरी पसंदीदा भाषा Python।", "My favourite language is Python.")
    assert not has_legacy_font_residue("मैंने कल नया iPhone खरीदा।", "I bought a new iPhone yesterday.")
    assert not has_legacy_font_residue("कि\u00adताब", "book")


def test_legacy_font_checks_only_a_side_configured_as_devanagari() -> None:
    unchecked = CleaningConfig(legacy_font=True)
    assert reasons(PairFilter(unchecked), [GLUED, MOJIBAKE, (GLUED[1], GLUED[0])]) == [None, None, None]
    hi_en = CleaningConfig(src_script="devanagari", tgt_script="latin", legacy_font=True)
    # the English side may hold Latin-1 letters the Hindi side spells in Devanagari
    cafe = ("I like the café near my house.", "मुझे मेरे घर के पास वाला कैफ़े पसंद है।")
    assert reasons(PairFilter(EN_HI), [cafe]) == [None]
    assert reasons(PairFilter(hi_en), [(GLUED[1], GLUED[0]), (cafe[1], cafe[0])]) == ["legacy font", None]


def test_dedup_keeps_the_first_copy_of_an_exact_pair_only() -> None:
    pairs = [
        ("Good morning.", "सुप्रभात।"),
        ("Good morning.", "सुप्रभात।"),
        ("Good morning.", "शुभ प्रभात।"),
        ("good morning.", "सुप्रभात।"),
        ("Good morning.", "शुभ प्रभात।"),
    ]
    assert reasons(PairFilter(CleaningConfig()), pairs) == [None, "duplicate", None, None, "duplicate"]
    assert reasons(PairFilter(CleaningConfig(dedup=False)), pairs) == [None] * len(pairs)


def test_dedup_tells_apart_pairs_whose_joined_text_is_the_same() -> None:
    pairs = [("ab c", "d"), ("ab", "c d"), ("a", "bc d")]
    assert reasons(PairFilter(CleaningConfig()), pairs) == [None, None, None]


def test_eval_overlap_catches_case_and_spacing_variants_on_either_side() -> None:
    evals = ["The book is on the table.", "किताब  मेज़ पर  है।"]
    pairs = [
        ("the BOOK is on the   table.", "पुस्तक मेज़ पर रखी है।"),
        ("There is a book on the table.", "किताब मेज़ पर है।"),
        ("The book is on the table", "किताब मेज़ पर रखी है।"),
    ]
    assert reasons(PairFilter(CleaningConfig(), evals), pairs) == ["eval overlap", "eval overlap", None]
    assert reasons(PairFilter(CleaningConfig(remove_eval_overlap=False), evals), pairs) == [None] * 3


def test_overlap_key_ignores_case_and_spacing_only() -> None:
    assert overlap_key("  The Book\tis  HERE. ") == overlap_key("the book is here.") == "the book is here."
    assert overlap_key("Straße") == overlap_key("STRASSE")
    assert overlap_key("The book is here.") != overlap_key("The book is here")


def test_a_pair_failing_two_rules_reports_the_first() -> None:
    rules = CleaningConfig(
        min_words=2, max_words=25, max_ratio=3.0, ratio_slack=5,
        src_script="latin", tgt_script="devanagari", legacy_font=True,
    )
    pairs = [
        ("", "x"),                                              # empty, too short
        ("a", words(30, "श")),                                   # too short, too long
        (words(30), words(2, "श")),                              # too long, length ratio
        ("यह किताब", words(20)),                                # length ratio, source script
        ("यह किताब बहुत रोचक है।", "This book is very interesting."),  # source script, target script
        KRUTI_DEV,                                              # target script, legacy font
        GLUED,                                                  # legacy font, eval overlap
        GOOD[1],                                                # eval overlap, duplicate
        GOOD[1],
    ]
    evals = [GLUED[1], GOOD[1][0]]
    assert reasons(PairFilter(rules, evals), pairs) == [*RULES[:8], "eval overlap"]


def test_disabled_rules_drop_nothing_beyond_the_length_rules() -> None:
    pairs = [
        ("यह किताब बहुत रोचक है।", "This book is very interesting."),
        KRUTI_DEV, GLUED, MOJIBAKE, GOOD[0], GOOD[0],
    ]
    assert reasons(PairFilter(OFF, [GOOD[0][0], GLUED[1]]), pairs) == [None] * len(pairs)


def test_default_rules_keep_plain_english_pairs_that_pass_the_length_rules() -> None:
    pairs = [
        ("Hello there.", "Hi there."),
        ("", "Nothing on the left."),
        (words(101), words(101)),
        ("A naïve café façade.", "A simple café front."),
        ("2014", "Twenty fourteen"),
        ("It rains.", words(20)),
    ]
    assert reasons(PairFilter(CleaningConfig()), pairs) == [None, "empty", "too long", None, None, "length ratio"]
