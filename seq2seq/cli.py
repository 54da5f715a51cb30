"""Command line: train, translate, evaluate, download, keys, serve, average, export, score.

User mistakes print one line and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import typing
from pathlib import Path
from typing import Literal

from seq2seq.config import DecodingConfig, decoding_options
from seq2seq.errors import UserError
from seq2seq.serve.limits import ServeLimits, serve_options

EXIT_USER_ERROR = 2


def add_config_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--config", required=required, help="YAML config, e.g. configs/en-hi.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set training.lr=0.0005 (repeatable)")
    parser.add_argument("--data-dir", help="folder the config's data paths are relative to (data.root)")


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    """A flag for every DecodingConfig option marked cli=True; name, type, choices and help are its declaration's."""
    for f, hint in decoding_options("cli"):
        choices = typing.get_args(hint) if typing.get_origin(hint) is Literal else None
        meaning = f.metadata["doc"].replace("%", "%%")
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=None if choices else hint,
                            choices=choices, metavar=None if choices else {int: "N", float: "X"}[hint], help=f"{meaning} (default: the checkpoint's decoding.{f.name})")


def decoding_from_args(defaults: DecodingConfig, args: argparse.Namespace) -> DecodingConfig:
    """The model's decoding defaults with the flags the user gave on top."""
    return defaults.override({f.name: getattr(args, f.name) for f, _ in decoding_options("cli")})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seq2seq", description="neural machine translation: RNN and Transformer encoder-decoders")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model from a YAML config")
    add_config_arguments(train)
    train.add_argument("--resume", action="store_true", help="continue the run from its newest checkpoint")

    translate = commands.add_parser("translate", help="translate sentences with a trained model")
    translate.add_argument("text", nargs="*", help="sentences to translate; '-' reads stdin, one per line")
    translate.add_argument("--checkpoint", action="append",
                           help="model file (default: the newest best.pt under --runs); repeat it to decode "
                                "with an ensemble of models that share a vocabulary; with --engine ctranslate2, "
                                "the export folder")
    translate.add_argument("--engine", choices=["pytorch", "ctranslate2"], default="pytorch",
                           help="pytorch (default) or ctranslate2: a folder made by python -m seq2seq export")
    translate.add_argument("--runs", default="runs", help="where to look for the newest model (default: runs)")
    translate.add_argument("--input", help="file to translate, one sentence per line")
    translate.add_argument("--output", help="write translations here instead of stdout")
    translate.add_argument("--reference", help="reference translations of --input: print BLEU, chrF and TER")
    add_decoding_arguments(translate)
    translate.add_argument("--prefix", metavar="TEXT", help="target text every output starts with; "
                                                             "the search continues after it")
    translate.add_argument("--prefix-file", metavar="FILE",
                           help="one target prefix per input line (an empty line: no prefix)")
    translate.add_argument("--alignments", action="store_true",
                           help="append a tab and the source-target piece alignment of each output, read from the "
                                "attention: 'i-j' pairs, 0-based source then target index, EOS excluded")
    translate.add_argument("--attention", metavar="PNG", help="save the attention heatmap of the first sentence")
    translate.add_argument("--attention-layer", type=int, metavar="N",
                           help="Transformer: draw decoder layer N's cross-attention (0 = first, -1 = last; "
                                "default: the config's model.attention_layer)")
    translate.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    translate.add_argument("--quantize", action="store_true",
                           help="decode with int8 weights on the CPU (faster there; see bench/quantize.py for the "
                                "quality cost); --device auto then means cpu, and cuda or mps is an error")

    evaluate = commands.add_parser("evaluate", help="score a trained model on the config's dev or test sets")
    add_config_arguments(evaluate)
    evaluate.add_argument("--split", choices=["dev", "test"], default="test")
    evaluate.add_argument("--checkpoint", help="model file (default: the run's best.pt)")
    evaluate.add_argument("--quantize", action="store_true",
                          help="score the int8 model that translate --quantize uses (on the CPU, "
                               "whatever training.device says)")

    download = commands.add_parser("download", help="fetch a public corpus into the data folder")
    download.add_argument("name", help="dataset name, e.g. en-hi (see --list)", nargs="?")
    download.add_argument("--dir", default="data", help="target folder (default: data)")
    download.add_argument("--list", action="store_true", help="list the datasets")

    commands.add_parser("keys", help="print every config key with its default and meaning (Markdown)")

    export = commands.add_parser("export", help="convert a Transformer checkpoint for another inference engine")
    export.add_argument("checkpoint", help="a Transformer checkpoint, e.g. runs/en-hi/best.pt")
    export.add_argument("--format", choices=["ctranslate2", "huggingface"], required=True,
                        help="ctranslate2, or huggingface: a MarianMTModel folder for transformers "
                             "(needs .[huggingface])")
    export.add_argument("--output", required=True, help="new folder for the exported model")
    export.add_argument("--quantization", default="float32", choices=["float32", "int8", "float16"],
                        help="weight type of the export (default float32)")

    score = commands.add_parser("score", help="log-probabilities a model gives translations (forced decoding)")
    score.add_argument("--checkpoint", required=True, help="model file, e.g. runs/en-hi/best.pt")
    score.add_argument("--source", required=True, help="source sentences, one per line ('-' reads stdin)")
    score.add_argument("--target", required=True, help="their translations, one per line, as many as --source")
    score.add_argument("--pieces", action="store_true",
                       help="also print each target piece (EOS last) and its log-probability")
    score.add_argument("--batch-size", type=int, default=64, help="pairs scored together (default: 64)")
    score.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")

    average = commands.add_parser("average", help="average the weights of checkpoints of one run into one model")
    average.add_argument("checkpoints", nargs="+", help="two or more checkpoints of the same model and vocabulary")
    average.add_argument("--output", required=True, help="where to write the averaged model, e.g. avg.pt")

    serve = commands.add_parser("serve", help="translate over HTTP: a JSON API and a web page (needs .[serve])")
    serve.add_argument("--checkpoint", help="model file (default: the newest best.pt under --runs); "
                                            "with --engine ctranslate2, the export folder")
    serve.add_argument("--runs", default="runs", help="where to look for the newest model (default: runs)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 for all)")
    serve.add_argument("--port", type=int, default=8080, help="TCP port; 0 picks a free one (default: 8080)")
    serve.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    serve.add_argument("--engine", choices=["pytorch", "ctranslate2"], default="pytorch",
                       help="pytorch (a checkpoint file) or ctranslate2 (a folder python -m seq2seq export wrote)")
    serve.add_argument("--quantize", action="store_true", help="decode with int8 weights on the CPU")
    serve.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    for limit in serve_options():
        serve.add_argument(f"--{limit.name.replace('_', '-')}", type=float if limit.type == "float" else int,
                           metavar="X" if limit.type == "float" else "N",
                           help=f"{limit.metadata['meaning']} (default: {limit.default})")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                       help="uvicorn's log level; debug also logs every request")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"train": run_train, "translate": run_translate, "evaluate": run_evaluate,
                "download": run_download, "keys": run_keys, "serve": run_serve,
                "average": run_average, "export": run_export, "score": run_score}
    try:
        return handlers[args.command](args) or 0
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.: stop quietly, as other command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def run_train(args: argparse.Namespace) -> int:
    from seq2seq.config import load_config

    config = load_config(args.config, args.overrides, args.data_dir)
    if not config.data.train:
        raise UserError(f"{args.config}: data.train: no training corpora; add e.g. "
                        "- {name: mine, src: train.en, tgt: train.hi}")
    from seq2seq.training import train  # imports torch: after the config is known to be good

    train(config, resume=args.resume)
    return 0


def export_folder(args: argparse.Namespace) -> Path:
    """--checkpoint for --engine ctranslate2: an export folder, named explicitly; weights were fixed at export."""
    if not args.checkpoint:
        raise UserError("--engine ctranslate2 needs --checkpoint: the folder python -m seq2seq export wrote")
    if args.quantize:
        raise UserError("--quantize is for the pytorch engine; choose the weight type when exporting "
                        "(--quantization int8)")
    folders = args.checkpoint if isinstance(args.checkpoint, list) else [args.checkpoint]
    if len(folders) > 1:
        raise UserError("--engine ctranslate2 takes one --checkpoint; ensembles are for the pytorch engine")
    return Path(folders[0])


def newest_checkpoint(runs: Path) -> Path:
    candidates = sorted(runs.glob("*/best.pt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise UserError(f"no trained model under {runs}/; train one (python train.py --config configs/en-hi.yaml) "
                        "or pass --checkpoint FILE")
    return candidates[-1]


def read_lines(source: str) -> list[str]:
    """Lines of a file or stdin as text; invalid UTF-8 is replaced, never fatal, and the count is exact."""
    if source == "-":
        raw = sys.stdin.buffer.read()
    else:
        try:
            raw = Path(source).read_bytes()
        except OSError as error:
            raise UserError(f"{source}: cannot read ({error.strerror})") from None
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line.rstrip(b"\r").decode("utf-8", errors="replace") for line in lines]


def run_translate(args: argparse.Namespace) -> int:
    from seq2seq.translator import Translator

    if args.input and args.text:
        raise UserError("give sentences or --input FILE, not both")
    if args.input:
        texts = read_lines(args.input)
    elif args.text == ["-"] or (not args.text and not sys.stdin.isatty()):
        texts = read_lines("-")
    elif args.text:
        texts = args.text
    else:
        raise UserError('nothing to translate: give a sentence, "-" for stdin, or --input FILE')
    prefixes = read_prefixes(args, len(texts))
    if args.engine == "ctranslate2":
        from seq2seq.ctranslate2_engine import CTranslate2Translator

        if args.attention_layer is not None:
            raise UserError("--attention-layer is for the pytorch engine; a CTranslate2 export draws "
                            "the layer its config named (model.attention_layer)")
        translator = CTranslate2Translator.from_directory(export_folder(args), args.device)
    else:
        checkpoints = [Path(c) for c in args.checkpoint] if args.checkpoint else [newest_checkpoint(Path(args.runs))]
        translator = Translator.from_checkpoint(checkpoints, device=args.device, quantize=args.quantize)
    decoding = decoding_from_args(translator.decoding, args)
    check_decoding(decoding)
    if args.attention_layer is not None:
        translator.model.show_attention_of(args.attention_layer)
    results = translator.translate(texts, record_attention=bool(args.attention) or args.alignments,
                                   progress=len(texts) > 200, decoding=decoding, prefixes=prefixes)
    lines = []
    for nbest in results:
        if nbest[0].warning:
            print(f"warning: {nbest[0].warning}", file=sys.stderr)
        for rank, translation in enumerate(nbest, 1):  # n_best 1: one line, the text alone
            line = f"{rank}\t{translation.score:.4f}\t{translation.text}" if decoding.n_best > 1 else translation.text
            lines.append(f"{line}\t{translation.alignment_text()}" if args.alignments else line)
    write_output(lines, args.output)
    if args.attention:
        save_attention_of(results, Path(args.attention))
    if args.reference:
        from seq2seq.data.text_form import output_scoring
        from seq2seq.evaluation import score  # sacrebleu loads only when there is something to score

        references = read_lines(args.reference)
        if len(references) != len(texts):
            raise UserError(f"{args.reference} has {len(references)} lines for {len(texts)} inputs")
        options = output_scoring(translator.evaluation, translator.text_form)
        scores = score([nbest[0].text for nbest in results], references, options)
        print(scores.report(), file=sys.stderr)
    return 0


def read_prefixes(args: argparse.Namespace, count: int) -> list[str] | None:
    """--prefix for every input, or --prefix-file's lines, one per input."""
    if args.prefix is not None and args.prefix_file:
        raise UserError("give --prefix TEXT or --prefix-file FILE, not both")
    if args.prefix is not None:
        return [args.prefix] * count
    if not args.prefix_file:
        return None
    prefixes = read_lines(args.prefix_file)
    if len(prefixes) != count:
        raise UserError(f"{args.prefix_file} has {len(prefixes)} lines for {count} inputs; give one prefix per input")
    return prefixes


def check_decoding(decoding: DecodingConfig) -> None:
    """Decoding options from the command line get the same checks as a config file."""
    from seq2seq.config import Config, validate

    validate(Config(decoding=decoding), "command line")


def write_output(lines: list[str], output: str | None) -> None:
    text = "".join(line + "\n" for line in lines)
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as error:
            raise UserError(f"{output}: cannot write ({error.strerror})") from None
    else:
        sys.stdout.buffer.write(text.encode("utf-8"))
        sys.stdout.flush()


def save_attention_of(results, path: Path) -> None:
    from seq2seq.plots import save_attention

    first = results[0][0] if results else None
    if first is None or first.attention is None:
        raise UserError("no attention to plot: the first input is empty or the model has attention: none")
    try:
        save_attention(first, path)
    except OSError as error:
        raise UserError(f"{path}: cannot write ({error.strerror})") from None
    print(f"attention heatmap saved to {path}", file=sys.stderr)


def run_evaluate(args: argparse.Namespace) -> int:
    from seq2seq.config import load_config
    from seq2seq.data.catalogue import ensure_files
    from seq2seq.data.corpus import data_files, load_eval_sets
    from seq2seq.testsets import evaluate_tests
    from seq2seq.translator import Translator

    config = load_config(args.config, args.overrides, args.data_dir)
    checkpoint = Path(args.checkpoint) if args.checkpoint else config.run_path / "best.pt"
    device = "cpu" if args.quantize else config.training.device  # the training device is only a default here
    translator = Translator.from_checkpoint(checkpoint, device=device, quantize=args.quantize, decoding=config.decoding)
    ensure_files(config.data.download, Path(config.data.root), data_files(config.data))
    eval_sets = load_eval_sets(config.data, config.data_seed)
    corpora = eval_sets.tests if args.split == "test" else [c for c in [eval_sets.dev] if c is not None]
    if not corpora:
        raise UserError(f"{args.config}: no {args.split} set in data.{args.split}")
    for name, scores in evaluate_tests(translator, corpora, options=config.evaluation).items():
        print(f"{name}: {scores.report()}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    if args.format == "huggingface":
        from seq2seq.export_huggingface import export_huggingface

        if args.quantization != "float32":
            raise UserError("--quantization is for --format ctranslate2; a Hugging Face export is float32")
        export_huggingface(Path(args.checkpoint), Path(args.output))
        print(f"exported {args.checkpoint} to {args.output} (Hugging Face MarianMTModel)")
        return 0
    from seq2seq.export import export_ctranslate2

    export_ctranslate2(Path(args.checkpoint), Path(args.output), args.quantization)
    print(f"exported {args.checkpoint} to {args.output} (CTranslate2, {args.quantization})")
    return 0


def run_score(args: argparse.Namespace) -> int:
    """One line per pair: score per piece and total (log-probabilities), then with --pieces the pieces and
    their scores, tab-separated."""
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    sources, targets = read_lines(args.source), read_lines(args.target)
    if len(sources) != len(targets):
        raise UserError(f"{args.source} has {len(sources)} lines but {args.target} has {len(targets)}; "
                        "give one translation per source line")
    from seq2seq.checkpoint import read_model
    from seq2seq.scoring import score_pairs
    from seq2seq.runtime import select_device

    device = select_device(args.device)
    config, model, src_vocab, tgt_vocab = read_model(Path(args.checkpoint))
    scores = score_pairs(model.to(device), src_vocab, tgt_vocab, sources, targets, args.batch_size,
                         config.decoding.max_input_pieces)
    lines = []
    for pair in scores:
        line = f"{pair.normalized:.4f}\t{pair.total:.4f}"
        if args.pieces:
            line += "\t" + " ".join(pair.pieces) + "\t" + " ".join(f"{s:.4f}" for s in pair.piece_scores)
        lines.append(line)
    write_output(lines, None)
    return 0


def run_average(args: argparse.Namespace) -> int:
    from seq2seq.averaging import average_checkpoints

    average_checkpoints([Path(p) for p in args.checkpoints], Path(args.output))
    print(f"averaged {len(args.checkpoints)} checkpoints into {args.output}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from seq2seq.data.catalogue import DATASETS, download_dataset

    if args.list or not args.name:
        width = max(map(len, DATASETS)) + 2
        for name, dataset in DATASETS.items():
            print(f"{name:{width}}{dataset.description}\n{'':{width}}url: {dataset.url}\n"
                  f"{'':{width}}license: {dataset.license}")
        return 0
    download_dataset(args.name, Path(args.dir))
    return 0


def run_keys(args: argparse.Namespace) -> int:
    from seq2seq.config import describe_keys

    print("| key | default | meaning |\n|---|---|---|")
    for key, default, meaning in describe_keys():
        print(f"| `{key}` | {f'`{default}`' if default else ''} | {meaning} |")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    import dataclasses

    try:
        from seq2seq.serve.server import serve
    except ImportError as error:
        raise UserError(f"serving needs the serve extra ({error.name} is missing): "
                        'pip install -e ".[serve]"') from None

    options = {limit.name: getattr(args, limit.name) for limit in serve_options()}
    for limit in serve_options():
        value, minimum = options[limit.name], limit.metadata["minimum"]
        if value is not None and value < minimum:
            floor = "0 or more" if minimum == 0 else f"at least {minimum}"
            raise UserError(f"--{limit.name.replace('_', '-')} must be {floor}, got {value}")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be in 0..65535, got {args.port}")
    limits = dataclasses.replace(ServeLimits(), **{k: v for k, v in options.items() if v is not None})
    if args.threads is not None:
        import torch

        torch.set_num_threads(max(1, args.threads))
    if args.engine == "ctranslate2":
        checkpoint = export_folder(args)
    else:
        checkpoint = Path(args.checkpoint) if args.checkpoint else newest_checkpoint(Path(args.runs))
    serve(checkpoint, args.host, args.port, limits, device=args.device, quantize=args.quantize,
          log_level=args.log_level, engine=args.engine)
    return 0
