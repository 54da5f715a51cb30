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

With --config (e.g. configs/en-hi.yaml) the pieces are instead seq2seq's own for that config:
the training pairs are exactly the ones seq2seq trains on (its cleaning, held-out test pairs,
piece-length limits and upsampling, read back from its encoded-corpus cache), in the pieces of
its SentencePiece model(s) (one joint model for en-hi.yaml, written as both spm/src.model and
spm/tgt.model), and the evaluation sets are the config's dev and test sets, held-out ones
included, normalised as seq2seq reads them. The first test set is written as `test`,
`flores-dev` as `flores`, any other (e.g. the Tatoeba held-out pairs) under its own name.
Both seq2seq caches (vocabulary and encoded corpus) are shared with `python train.py` runs
from the repository root, and built here if missing, without training anything else.

Usage:
    python bench/peers/prepare_data.py --data ../shared/data --out bench/peers/work
    python bench/peers/prepare_data.py --data ../shared/data --out bench/peers/work-en-hi \
        --config configs/en-hi.yaml
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


# ------------------------------------------------------------------- seq2seq's own mix
REPO = Path(__file__).resolve().parents[2]
# seq2seq's name of an evaluation set -> the split name run_peer.py reads (others keep their name)
SPLIT_NAMES = {"iitb-dev": "dev", "iitb-test": "test", "flores-dev": "flores"}


def write_lines(path: Path, lines: list[str]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")


def prepare_from_config(config_path: Path, data: Path, out: Path) -> int:
    """Write seq2seq's training pairs and evaluation sets for one config, in its pieces.

    Everything that decides the data is seq2seq's own code: load_eval_sets (dev, tests and the
    held-out pairs), prepare_training_data (cleaning, the vocabulary, the piece-length limits and
    upsampling, cached under data.cache_dir). The encoded corpus it returns holds the ids that
    seq2seq's batches are cut from (no BOS/EOS), so they are turned back into piece strings here.
    """
    import logging
    sys.path.insert(0, str(REPO))
    from seq2seq.config import load_config
    from seq2seq.data.cache import EncodedCorpus
    from seq2seq.data.corpus import check_files_exist, load_eval_sets
    from seq2seq.data.prepare import VOCAB_FILES, prepare_training_data
    from seq2seq.errors import UserError
    from seq2seq.translator import clean_input
    from seq2seq.vocab import Vocab

    logging.basicConfig(level=logging.INFO, format="[prepare] %(message)s")
    try:
        config = load_config(config_path, data_dir=str(data))
        # Relative cache folders are relative to the repository root, where `python train.py`
        # runs, so the peers and seq2seq's own runs share one vocabulary and corpus cache.
        if config.data.cache_dir and not Path(config.data.cache_dir).is_absolute():
            config.data.cache_dir = str(REPO / config.data.cache_dir)
        check_files_exist(config.data)
        eval_sets = load_eval_sets(config.data, config.data_seed)
        # prepare_training_data keeps vocab files already in its run folder (a resumed run),
        # so give it an empty one: the models always come from this config's cache.
        run_path = out / "seq2seq"
        shutil.rmtree(run_path, ignore_errors=True)
        run_path.mkdir(parents=True)
        corpus_dir = prepare_training_data(config, eval_sets, run_path)
    except UserError as e:
        print(f"prepare_data: error: {e}", file=sys.stderr)
        return 2

    for sub in ("spm", "pieces", "raw", "vocab"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    vocabs = {}
    for side, lang in (("src", SRC_LANG), ("tgt", TGT_LANG)):
        model = out / "spm" / f"{side}.model"
        shutil.copyfile(run_path / VOCAB_FILES[side], model)
        vocabs[lang] = Vocab(model.read_bytes())
        write_vocab(spm.SentencePieceProcessor(model_file=str(model)), out / "vocab" / f"{side}.txt")
    joint = (out / "spm" / "src.model").read_bytes() == (out / "spm" / "tgt.model").read_bytes()
    manifest = {"data": str(data.resolve()), "config": str(config_path), "seed": config.seed,
                "joint_vocab": joint, "seq2seq_corpus_cache": str(corpus_dir),
                "cleaning": json.loads((corpus_dir / "report.json").read_text()),
                "vocab_size_src": len(vocabs[SRC_LANG]), "vocab_size_tgt": len(vocabs[TGT_LANG]),
                "splits": {}, "files": {}}

    def record(dest: Path, rows: list[list[str]]) -> None:
        write_lines(dest, [" ".join(r) for r in rows])
        manifest["files"][str(dest.relative_to(out))] = {"lines": len(rows), "pieces": sum(map(len, rows))}
        print(f"[prepare] {dest}: {len(rows)} lines, {sum(map(len, rows))} pieces")

    corpus = EncodedCorpus.open(corpus_dir)
    for lang, rows in ((SRC_LANG, corpus.src), (TGT_LANG, corpus.tgt)):
        vocab = vocabs[lang]
        record(out / "pieces" / f"train.{lang}", [vocab.pieces(rows(i).tolist()) for i in range(len(corpus))])

    evals = ([eval_sets.dev] if eval_sets.dev is not None else []) + eval_sets.tests
    for corpus_set in evals:
        split = SPLIT_NAMES.get(corpus_set.name, corpus_set.name)
        if eval_sets.tests and corpus_set is eval_sets.tests[0]:
            split = "test"  # run_peer.py's main test set is always `test`
        manifest["splits"][split] = corpus_set.name
        for lang, lines in ((SRC_LANG, corpus_set.src), (TGT_LANG, corpus_set.tgt)):
            # the source as seq2seq's Translator cleans it; both sides as its scorer sees them
            texts = [clean_input(line) for line in lines] if lang == SRC_LANG else lines
            vocab = vocabs[lang]
            record(out / "pieces" / f"{split}.{lang}", [vocab.pieces(ids) for ids in vocab.encode(texts)])
            write_lines(out / "raw" / f"{split}.{lang}", lines)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"[prepare] wrote {out / 'manifest.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="shared data dir holding en-hi/{train,dev,test}.{en,hi}")
    ap.add_argument("--out", required=True, help="output dir, e.g. bench/peers/work")
    ap.add_argument("--spm-src", help="existing English SentencePiece .model to reuse")
    ap.add_argument("--spm-tgt", help="existing Hindi SentencePiece .model to reuse")
    ap.add_argument("--config", help="a seq2seq config (e.g. configs/en-hi.yaml): write seq2seq's own "
                                     "training mix, evaluation sets and pieces for it instead")
    args = ap.parse_args(argv)

    data, out = Path(args.data), Path(args.out)
    if args.config:
        if args.spm_src or args.spm_tgt:
            print("prepare_data: error: --config uses the config's own SentencePiece models; "
                  "drop --spm-src/--spm-tgt", file=sys.stderr)
            return 2
        return prepare_from_config(Path(args.config), data, out)
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
