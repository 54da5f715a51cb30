"""The commands in README.md, docs/*.md and the other READMEs: every script, subcommand, option, config
file, config key, pip extra and run folder they name exists, so what the documents show runs on a fresh
clone."""

from __future__ import annotations

import argparse
import functools
import importlib.util
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from seq2seq.cli import build_parser
from seq2seq.config import describe_keys, load_config
from seq2seq.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
             *(ROOT / name for name in ("configs/README.md", "bench/README.md", "bench/peers/README.md"))]
# results.md logs past commands, whose runs carried the names of their day (runs/en-hi-transformer-fast)
RECORDS = {"results.md"}
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`]+)`")
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*")  # CONFIG, FILE, NAME, N: the reader fills these in
PROGRAMS = {"python", "python3", "torchrun", "pip"}
SEPARATORS = {"|", "&&", ";"}
MISSING_REQUIRED = "the following arguments are required"


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]
    complete: bool  # a code block holds whole commands; prose may name one without its required options
    text: str


class ArgumentError(Exception):
    """argparse's error, raised instead of printing usage and exiting."""


class Captured(Exception):
    """Carries the parser a bench script built, stopped before it parses anything."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


def raise_error(parser: argparse.ArgumentParser, message: str) -> None:
    raise ArgumentError(message)


def commands_in(text: str) -> list[Command]:
    """Shell commands of code blocks (line by line, backslash continuations joined) and of inline code."""
    found = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            found += split_line(line.strip().removeprefix("$ "), complete=True)
    for span in INLINE.findall(FENCE.sub("", text)):
        found += split_line(" ".join(span.split()), complete=False)
    return found


def split_line(line: str, complete: bool) -> list[Command]:
    if not line or line.split()[0] not in PROGRAMS | {"echo"}:
        return []  # output shown beside a command, a path, a key
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return [Command(("unbalanced-quotes",), complete, line)]
    commands, segment = [], []
    for word in [*words, "|"]:
        if word not in SEPARATORS:
            segment.append(word)
            continue
        if segment and segment[0] in PROGRAMS:
            commands.append(Command(tuple(segment), complete, line))
        segment = []
    return commands


@functools.cache
def config_keys() -> frozenset[str]:
    return frozenset(key for key, _, _ in describe_keys())


@functools.cache
def shipped_runs() -> frozenset[str]:
    return frozenset(load_config(path).name for path in (ROOT / "configs").glob("*.yaml"))


@functools.cache
def extras() -> frozenset[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return frozenset(project["optional-dependencies"])


@functools.cache
def script_parser(path: Path) -> argparse.ArgumentParser:
    """The parser a bench script's main() builds, taken from it before it parses (nothing runs)."""
    spec = importlib.util.spec_from_file_location(f"docs_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    try:
        spec.loader.exec_module(module)

        def capture(parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
            raise Captured(parser)

        with mock.patch.object(argparse.ArgumentParser, "parse_args", capture):
            module.main()
    except Captured as captured:
        return captured.parser
    finally:
        del sys.modules[spec.name]
    raise AssertionError(f"{path}: main() returned without parsing its arguments")


def values_of(words: tuple[str, ...], option: str) -> list[str]:
    return [value for flag, value in zip(words, words[1:]) if flag == option]


def problems_of(command: Command, run_names: set[str] | None) -> list[str]:
    """What is wrong with one command; run_names None means run folders are not checked."""
    words = command.words
    if words == ("unbalanced-quotes",):
        return ["unbalanced quotes"]
    if words[0] == "pip":
        unknown = {name for group in re.findall(r"\.\[([^\]]+)\]", " ".join(words))
                   for name in group.split(",")} - extras()
        return [f"pip extra {name} is not in pyproject.toml" for name in sorted(unknown)]
    if words[0] == "torchrun":
        scripts = [i for i, word in enumerate(words) if word.endswith(".py")]
        if not scripts:
            return ["torchrun without a script"]
        words = ("python", *words[scripts[0]:])
    problems = argument_problems(words[1:], command.complete)
    ours = words[1:3] == ("-m", "seq2seq") or words[1] in ("train.py", "translate.py")
    for config in values_of(words, "--config"):
        if PLACEHOLDER.fullmatch(config):
            continue
        if not (ROOT / config).is_file():
            problems.append(f"{config}: no such config")
        elif ours:
            try:
                load_config(ROOT / config)
            except UserError as error:
                problems.append(str(error))
    for assignment in values_of(words, "--set"):
        key = assignment.split("=", 1)[0]
        if key not in config_keys():
            problems.append(f"--set {key}: no such config key")
    if run_names is not None:
        for word in words:
            match = re.match(r"runs/([^/*]+)/", word)
            if match and match[1] not in run_names and not PLACEHOLDER.fullmatch(match[1]):
                problems.append(f"{match[1]}: no shipped config or --set name= in this document makes this run")
    return problems


def argument_problems(args: tuple[str, ...], complete: bool) -> list[str]:
    """Parse the arguments with the parser the program itself uses."""
    if args[:2] == ("-m", "seq2seq"):
        parser, argv = build_parser(), list(args[2:])
    elif args[:1] == ("-m",):
        return [] if importlib.util.find_spec(args[1]) else [f"no module {args[1]}"]
    elif args[:1] == ("-c",):
        try:
            compile(args[1], "<python -c>", "exec")
        except SyntaxError as error:
            return [f"python -c: {error.msg}"]
        return []
    elif args[0] in ("train.py", "translate.py"):
        parser, argv = build_parser(), [args[0].removesuffix(".py"), *args[1:]]
    elif args[0].endswith(".py"):
        if not (ROOT / args[0]).is_file():
            return [f"{args[0]}: no such script"]
        parser, argv = script_parser(ROOT / args[0]), list(args[1:])
    else:
        return [f"python {args[0]}: not a script or module"]
    try:
        with mock.patch.object(argparse.ArgumentParser, "error", raise_error):
            parser.parse_args(argv)
    except ArgumentError as error:
        if complete or not str(error).startswith(MISSING_REQUIRED):
            return [str(error)]
    except SystemExit:  # --help
        pass
    return []


def document_problems(text: str, check_runs: bool) -> list[str]:
    run_names = set(shipped_runs()) | set(re.findall(r"name=([\w.-]+)", text)) if check_runs else None
    return [f"{command.text}: {problem}" for command in commands_in(text)
            for problem in problems_of(command, run_names)]


@pytest.mark.parametrize("document", DOCUMENTS, ids=[str(path.relative_to(ROOT)) for path in DOCUMENTS])
def test_every_command_in_the_documents_names_what_exists(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    assert commands_in(text), f"{document.name} shows no command"
    assert document_problems(text, check_runs=document.name not in RECORDS) == []


def test_the_readme_shows_the_install_and_the_test_command() -> None:
    """.ci/run runs the README's test command; the install steps are what a fresh clone needs."""
    words = {command.words for command in commands_in((ROOT / "README.md").read_text(encoding="utf-8"))}
    assert ("pip", "install", "-e", ".") in words
    assert ("pip", "install", "-e", ".[dev]") in words
    assert ("python", "-m", "pytest", "-q") in words
    assert "python -m pytest -q" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_check_finds_each_kind_of_mistake() -> None:
    document = """
```
python train.py --config configs/missing.yaml
python translate.py --width 5 "Hello"
python -m seq2seq evaluate --config configs/en-hi.yaml --set training.learning_rate=1
python -m seq2seq frobnicate
python bench/nothing.py --threads 2
pip install -e ".[nothing]"
python translate.py --checkpoint runs/en-hi-transformer/best.pt "Hello"
python -m seq2seq average
python bench/serve.py --checkpoint runs/en-hi/best.pt --clients 1,8 --no-such-option
torchrun --nproc_per_node 2 train.py --config configs/en-hi.yaml --resume
echo "I am hungry." | python translate.py - --checkpoint runs/NAME/best.pt
```
In prose `python -m seq2seq average` may leave out what it requires, and `--set name=mine` lets
`python translate.py --checkpoint runs/mine/best.pt` through.
"""
    problems = document_problems(document, check_runs=True)
    expected = ["configs/missing.yaml: no such config", "unrecognized arguments: --width",
                "--set training.learning_rate: no such config key", "invalid choice: 'frobnicate'",
                "bench/nothing.py: no such script", "pip extra nothing", "en-hi-transformer: no shipped config",
                MISSING_REQUIRED, "unrecognized arguments: --no-such-option"]
    assert len(problems) == len(expected), problems
    for problem, fragment in zip(problems, expected):
        assert fragment in problem
    assert document_problems(document, check_runs=False) == problems[:6] + problems[7:]
