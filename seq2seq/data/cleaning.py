"""Cleaning rules for training pairs: length, script, legacy-font residue, eval overlap, duplicates.

Lines reach these rules already NFC-normalised with whitespace collapsed (see
`seq2seq.data.corpus.normalize_line`); nothing here normalises again.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Literal

from seq2seq.config import CleaningConfig

RULES = (
    "empty", "too short", "too long", "length ratio", "source script", "target script",
    "legacy font", "eval overlap", "duplicate",
)
"""Every reason `PairFilter.reject_reason` gives, in the order the rules are tried."""

_DEVANAGARI_BLOCKS = ((0x0900, 0x097F), (0xA8E0, 0xA8FF))  # Devanagari, Devanagari Extended
_LATIN_BLOCKS = (
    (0x0000, 0x024F),  # Basic Latin, Latin-1 Supplement, Latin Extended-A and -B
    (0x1E00, 0x1EFF),  # Latin Extended Additional
    (0x2C60, 0x2C7F),  # Latin Extended-C
    (0xA720, 0xA7FF),  # Latin Extended-D
    (0xAB30, 0xAB6F),  # Latin Extended-E
)


def _in_blocks(code: int, blocks: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= code <= high for low, high in blocks)


def _is_letter(char: str) -> bool:
    """Category L*, and Devanagari marks too: matras, virama, nukta and anusvara spell words as letters do."""
    category = unicodedata.category(char)
    return category[0] == "L" or (category[0] == "M" and _in_blocks(ord(char), _DEVANAGARI_BLOCKS))


def _letter_class(blocks: tuple[tuple[int, int], ...]) -> str:
    """A regex character class of the letters of `blocks`, written as ranges of code points."""
    ranges: list[list[int]] = []
    for low, high in blocks:
        for code in range(low, high + 1):
            if not _is_letter(chr(code)):
                continue
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    return "[" + "".join(f"\\u{low:04x}-\\u{high:04x}" for low, high in ranges) + "]"


# digits, danda and other signs of the Devanagari blocks are not letters, so they are left out
_DEVANAGARI_LETTER = _letter_class(_DEVANAGARI_BLOCKS)
_SCRIPT_RUNS = {
    "latin": re.compile(_letter_class(_LATIN_BLOCKS) + "+"),
    "devanagari": re.compile(_DEVANAGARI_LETTER + "+"),
}


class _LetterMask(dict[int, str | None]):
    """A `str.translate` table that keeps letters and deletes the rest, so C code counts them.

    It fills itself on the first sight of each character, which bounds it by the characters a corpus uses.
    """

    def __missing__(self, code: int) -> str | None:
        self[code] = value = "L" if _is_letter(chr(code)) else None
        return value


_LETTER_MASK = _LetterMask()

# What is residue whatever the other side says: a private-use glyph of a legacy font, or UTF-8
# Devanagari read as Latin-1 (U+0900-U+097F encode as E0 A4 xx / E0 A5 xx, shown as "à¤x" / "à¥x").
# Written as one leading class, then "à must be followed by ¤ or ¥", because a pattern that starts with
# a single class lets the regex engine skip ahead fast; a top-level "|" would not.
_PRIVATE_USE_OR_MOJIBAKE = re.compile("[\ue000-\uf8ffà](?:(?<=à)[¤¥]|(?<!à))")
# A Latin letter glued to a Devanagari letter, as in a half-converted Kruti Dev word ("कksa"); a danda
# or a Devanagari digit right after an English word ("Python।") is ordinary text.
_GLUED_LATIN = re.compile(f"[A-Za-z](?:(?<={_DEVANAGARI_LETTER}.)|(?={_DEVANAGARI_LETTER}))")
# Kruti Dev and kin draw Devanagari glyphs on these code points ("ç" = प्र, "¼" = "(");
# NBSP and the soft hyphen are left out because they are invisible, not glyphs, and § © ° ² ´ ·
# because real Hindi text uses them as they are (in the shared data: "40°" beside "40 degrees").
_LATIN_1_AND_EXTENDED = re.compile("[\u00a1-\u00a6\u00a8\u00aa-\u00ac\u00ae\u00af\u00b1\u00b3\u00b5\u00b6"
                                   "\u00b8-\u02ff]")


def script_share(text: str, script: Literal["latin", "devanagari"]) -> float | None:
    """Share of the letters of `text` that are in `script` ("latin" or "devanagari").

    None when `text` has no letters at all (digits, punctuation): there is nothing to judge.
    """
    # removing the script's runs first leaves only spaces, punctuation and stray foreign letters to classify
    rest = _SCRIPT_RUNS[script].sub("", text)
    in_script = len(text) - len(rest)
    letters = in_script + len(rest.translate(_LETTER_MASK))
    return in_script / letters if letters else None


def _off_script(text: str, script: Literal["latin", "devanagari"], min_share: float) -> bool:
    """Too few letters in `script`; a side without letters is never off-script."""
    share = script_share(text, script)
    return share is not None and share < min_share


def has_legacy_font_residue(text: str, other: str) -> bool:
    """Whether the Devanagari `text` shows a legacy font or a mis-decoding that NFC cannot repair.

    Latin-1 and Latin Extended characters count only when `other` (the translation) lacks them,
    so a name such as "café" written the same on both sides stays.
    """
    if _PRIVATE_USE_OR_MOJIBAKE.search(text) or _GLUED_LATIN.search(text):
        return True
    foreign = _LATIN_1_AND_EXTENDED.findall(text)
    return bool(foreign) and not set(foreign).issubset(other)


def overlap_key(text: str) -> str:
    """The form two sentences share when they count as the same for eval overlap: case and spacing aside."""
    return " ".join(text.casefold().split())


class PairFilter:
    """Decides, pair by pair and in stream order, which training pairs to keep."""

    def __init__(self, rules: CleaningConfig, eval_sentences: Iterable[str] = ()) -> None:
        self.rules = rules
        self._eval_keys = {overlap_key(s) for s in eval_sentences} if rules.remove_eval_overlap else set()
        self._kept: set[int] = set()

    def reject_reason(self, src: str, tgt: str) -> str | None:
        """The first rule (in `RULES` order) that drops the pair, or None to keep it.

        A kept pair is remembered for dedup, so ask once per pair: asking again reports it as a duplicate.
        """
        rules = self.rules
        src_words, tgt_words = len(src.split()), len(tgt.split())
        shorter, longer = min(src_words, tgt_words), max(src_words, tgt_words)
        if shorter == 0:
            return "empty"
        if shorter < rules.min_words:
            return "too short"
        if longer > rules.max_words:
            return "too long"
        if longer > rules.max_ratio * shorter + rules.ratio_slack:
            return "length ratio"
        if rules.src_script and _off_script(src, rules.src_script, rules.min_script_share):
            return "source script"
        if rules.tgt_script and _off_script(tgt, rules.tgt_script, rules.min_script_share):
            return "target script"
        if rules.legacy_font and (
            (rules.src_script == "devanagari" and has_legacy_font_residue(src, tgt))
            or (rules.tgt_script == "devanagari" and has_legacy_font_residue(tgt, src))
        ):
            return "legacy font"
        if self._eval_keys and (overlap_key(src) in self._eval_keys or overlap_key(tgt) in self._eval_keys):
            return "eval overlap"
        if rules.dedup:
            # a 64-bit keyed SipHash per side, mixed by the tuple hash: one int per kept pair instead of its
            # text, and 2M kept pairs risk one false duplicate with odds of about 1e-7
            digest = hash((src, tgt))
            if digest in self._kept:
                return "duplicate"
            self._kept.add(digest)
        return None
