"""Turn the shared en-hi data into SentencePiece piece files that every peer system reads.

The peers (JoeyNMT, OpenNMT-py) and seq2seq must see the same subword pieces, so this
script owns the subword step: it trains one unigram SentencePiece model per side (or reuses
given ones) and writes space-separated pieces for train/dev/test. The peers are configured
to split on whitespace only, so a piece file line is exactly one model input line.

Output layout under --out:
    spm/src.model, spm/tgt.model      (copied when --spm-src/--spm-tgt are given)
    pieces/{train,dev,test}.{en,hi}   space-separated pieces, one sentence per line
    pieces/flores.{en,hi}             FLORES-200 dev, when --data has flores200-dev/
    raw/{dev,test,flores}.{en,hi}     the untouched raw text (references for BLEU/chrF)
    vocab/src.txt, vocab/tgt.txt      one piece per line, in model id order
    manifest.json                     what was written, with line counts and settings

Usage:
    python bench/peers/prepare_data.py --data ../shared/data --out bench/peers/work
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import sentencepiece as spm

SPLITS = ("train", "dev", "test")
SRC_LANG, TGT_LANG = "en", "hi"
PAIR_DIR = "en-hi"
# Optional extra evaluation set: split name -> file per language, relative to --data.
FLORES = {SRC_LANG: "flores200-dev/eng_Latn.dev", TGT_LANG: "flores200-dev/hin_Deva.dev"}

# Fixed special ids shared with seq2seq's vocab.py: pad 0, unk 1, bos 2, eos 3.
SPM_SETTINGS = dict(
    model_type="unigram",
    vocab_size=8000,
    character_coverage=1.0,
    byte_fallback=True,
    pad_id=0,
    unk_id=1,
    bos_id=2,
    eos_id=3,
    pad_piece="<pad>",
    unk_piece="<unk>",
    bos_piece="<s>",
    eos_piece="</s>",
    # Train on every sentence of this small corpus; the default cap of 1M would also do.
    input_sentence_size=1_000_000,
    shuffle_input_sentence=True,
    num_threads=2,
    minloglevel=2,
)


class PrepareError(Exception):
    """A user-fixable problem with the inputs (paths, mismatched files)."""


def input_files(data: Path) -> dict[str, dict[str, Path]]:
    """split -> lang -> raw text file; FLORES is included only when both sides exist."""
    files = {split: {lang: data / PAIR_DIR / f"{split}.{lang}" for lang in (SRC_LANG, TGT_LANG)}
             for split in SPLITS}
    flores = {lang: data / rel for lang, rel in FLORES.items()}
    if all(p.is_file() for p in flores.values()):
        files["flores"] = flores
    return files


def count_lines(path: Path) -> int:
    with path.open(encoding="utf-8") as f:
        return sum(1 for _ in f)


def check_inputs(data: Path) -> None:
    """Fail early, naming the missing file, before any model is trained."""
    if not data.is_dir():
        raise PrepareError(f"--data {data} is not a directory (expected shared/data)")
    for split in SPLITS:
        lengths = {}
        for lang in (SRC_LANG, TGT_LANG):
            path = data / PAIR_DIR / f"{split}.{lang}"
            if not path.is_file():
                raise PrepareError(f"missing {path}: --data must hold {PAIR_DIR}/{split}.{lang}")
            lengths[lang] = count_lines(path)
        if lengths[SRC_LANG] != lengths[TGT_LANG]:
            raise PrepareError(f"{data / PAIR_DIR}/{split}.* are not aligned: {lengths}")


def train_spm(text: Path, model_prefix: Path) -> Path:
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(model_prefix), **SPM_SETTINGS)
    return model_prefix.with_suffix(".model")


def get_model(given: str | None, text: Path, dest_prefix: Path) -> Path:
    """Copy a given .model into place, or train a new one on `text`."""
    dest = dest_prefix.with_suffix(".model")
    if given:
        src = Path(given)
        if not src.is_file():
            raise PrepareError(f"SentencePiece model {src} does not exist")
        if src.resolve() != dest.resolve():
            shutil.copyfile(src, dest)
        print(f"[prepare] using existing SentencePiece model {src}")
        return dest
    print(f"[prepare] training SentencePiece unigram ({SPM_SETTINGS['vocab_size']}) on {text}")
    return train_spm(text, dest_prefix)


def write_vocab(sp: spm.SentencePieceProcessor, path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i in range(sp.get_piece_size()):
            f.write(sp.id_to_piece(i) + "\n")


def encode_file(sp: spm.SentencePieceProcessor, src: Path, dest: Path) -> int:
    """Write one line of space-separated pieces per input line; return the piece count."""
    lines = src.read_text(encoding="utf-8").splitlines()
    pieces = sp.encode(lines, out_type=str)
    n = 0
    with dest.open("w", encoding="utf-8") as f:
        for p in pieces:
            # A piece never contains a space: spm maps spaces to U+2581, so split(" ") is lossless.
            f.write(" ".join(p) + "\n")
            n += len(p)
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="shared data dir holding en-hi/{train,dev,test}.{en,hi}")
    ap.add_argument("--out", required=True, help="output dir, e.g. bench/peers/work")
    ap.add_argument("--spm-src", help="existing English SentencePiece .model to reuse")
    ap.add_argument("--spm-tgt", help="existing Hindi SentencePiece .model to reuse")
    args = ap.parse_args(argv)

    data, out = Path(args.data), Path(args.out)
    try:
        check_inputs(data)
        for sub in ("spm", "pieces", "raw", "vocab"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        models = {
            SRC_LANG: get_model(args.spm_src, data / PAIR_DIR / f"train.{SRC_LANG}", out / "spm" / "src"),
            TGT_LANG: get_model(args.spm_tgt, data / PAIR_DIR / f"train.{TGT_LANG}", out / "spm" / "tgt"),
        }
    except PrepareError as e:
        print(f"prepare_data: error: {e}", file=sys.stderr)
        return 2

    files = input_files(data)
    manifest = {"data": str(data.resolve()), "spm": SPM_SETTINGS | {"reused": {
        SRC_LANG: args.spm_src, TGT_LANG: args.spm_tgt}}, "files": {}}
    for lang, model in models.items():
        sp = spm.SentencePieceProcessor(model_file=str(model))
        side = "src" if lang == SRC_LANG else "tgt"
        write_vocab(sp, out / "vocab" / f"{side}.txt")
        for split, by_lang in files.items():
            raw = by_lang[lang]
            dest = out / "pieces" / f"{split}.{lang}"
            n_pieces = encode_file(sp, raw, dest)
            n_lines = count_lines(dest)
            manifest["files"][str(dest.relative_to(out))] = {"lines": n_lines, "pieces": n_pieces}
            print(f"[prepare] {dest}: {n_lines} lines, {n_pieces} pieces")
            if split != "train":
                shutil.copyfile(raw, out / "raw" / f"{split}.{lang}")
        manifest["vocab_size_" + side] = sp.get_piece_size()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"[prepare] wrote {out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
