"""Checkpoints: exact round trips, atomic writes, and every bad file refused with one clear UserError."""

from __future__ import annotations

import codecs
import errno
import io
import os
import pickle
import random
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import sentencepiece as spm
import torch

from seq2seq import __version__
from seq2seq.checkpoint import FORMAT_VERSION, REQUIRED_KEYS, load_checkpoint, save_checkpoint
from seq2seq.cli import main
from seq2seq.config import Config, ModelConfig, VocabConfig, config_to_dict
from seq2seq.errors import UserError
from seq2seq.model.build import build_model
from seq2seq.translator import Translator
from seq2seq.vocab import train_vocab

ROOT = Path(__file__).resolve().parents[1]
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel".split()


@pytest.fixture(scope="module")
def real_payload() -> dict:
    """What the trainer stores, for an untrained 8-unit model: builds in well under a second."""
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(5)) for _ in range(200)]
    vocab = train_vocab(texts, 30, VocabConfig(byte_fallback=False), seed=1)
    config = Config(model=ModelConfig(emb_size=8, encoder_hidden=8, decoder_hidden=8, dropout=0.0))
    model = build_model(config.model, len(vocab), len(vocab))
    return {
        "config": config_to_dict(config),
        "src_vocab": vocab.model_proto,
        "tgt_vocab": vocab.model_proto,
        "model": model.state_dict(),
        "training": {"rng": {"python": random.Random(5).getstate(), "torch": torch.get_rng_state()},
                     "progress": {"step": 7, "best": 1.5}},
    }


@pytest.fixture(scope="module")
def real_checkpoint(real_payload, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    save_checkpoint(path, real_payload)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(UserError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert str(path) in message, f"path not named: {message}"
    assert "\n" not in message
    return message


# --- round trip ------------------------------------------------------------------------


def test_round_trip_is_exact(real_payload, real_checkpoint) -> None:
    loaded = load_checkpoint(real_checkpoint)
    assert loaded["format_version"] == FORMAT_VERSION
    assert loaded["package_version"] == __version__
    assert loaded["config"] == real_payload["config"]
    for side in ("src_vocab", "tgt_vocab"):
        assert type(loaded[side]) is bytes and loaded[side] == real_payload[side]
    assert loaded["model"].keys() == real_payload["model"].keys()
    for name, tensor in real_payload["model"].items():
        assert loaded["model"][name].dtype == tensor.dtype
        assert torch.equal(loaded["model"][name], tensor), name
    rng = loaded["training"]["rng"]
    assert rng["python"] == real_payload["training"]["rng"]["python"]
    assert torch.equal(rng["torch"], real_payload["training"]["rng"]["torch"])
    assert loaded["training"]["progress"] == {"step": 7, "best": 1.5}


def test_round_trip_of_awkward_values(tmp_path) -> None:
    payload = {key: None for key in REQUIRED_KEYS if key not in ("format_version", "package_version")}
    payload.update(src_vocab=bytes(range(256)) * 3, tgt_vocab=b"\x00",
                   model={"half": torch.randn(3, 2).half(), "int": torch.arange(5), "empty": torch.zeros(0, 4),
                          "strided": torch.arange(12.0).reshape(3, 4).t()},
                   config={"unicode": "हिन्दी ✓", "nested": [1, 2.5, None, True, {"k": (1, 2)}]})
    save_checkpoint(tmp_path / "c.pt", payload)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["src_vocab"] == bytes(range(256)) * 3 and loaded["tgt_vocab"] == b"\x00"
    assert loaded["config"] == payload["config"]
    for name, tensor in payload["model"].items():
        assert loaded["model"][name].dtype == tensor.dtype and torch.equal(loaded["model"][name], tensor)


class EmptyBytes:
    """Pickles as _codecs.encode("", "latin1"), the form weights_only loads as b"".

    torch.save writes a plain b"" as builtins.bytes(), a global the loader refuses before any field check.
    """

    def __reduce__(self):
        return codecs.encode, ("", "latin1")


@pytest.mark.parametrize("side", ["src_vocab", "tgt_vocab"])
def test_empty_vocab_field_is_refused_cleanly(side, tmp_path) -> None:
    # every other field well formed, so only the empty-bytes check can refuse the file
    payload = {"config": {}, "src_vocab": b"s", "tgt_vocab": b"t", "model": {}, side: EmptyBytes()}
    save_checkpoint(tmp_path / "c.pt", payload)
    assert f"field {side!r} is missing or malformed" in error_of(tmp_path / "c.pt")


def test_checkpoint_drives_a_translator(real_checkpoint) -> None:
    translator = Translator.from_checkpoint(real_checkpoint, device="cpu", method="greedy")
    payload = load_checkpoint(real_checkpoint)
    for name, tensor in translator.model.state_dict().items():
        assert torch.equal(tensor, payload["model"][name]), name
    (result,) = translator.translate(["alpha bravo charlie"])
    # an untrained model emits arbitrary pieces: check they are pieces of the stored vocabulary and that the
    # text is what a SentencePiece processor loaded on its own from the file makes of them
    processor = spm.SentencePieceProcessor(model_proto=payload["tgt_vocab"])
    assert result[0].source_pieces == processor.encode("alpha bravo charlie", out_type=str)
    assert len(result[0].pieces) <= translator.decoding.max_len
    assert all(processor.piece_to_id(piece) != processor.unk_id() or piece == "<unk>" for piece in result[0].pieces)
    assert result[0].text == processor.decode_pieces(result[0].pieces)


# --- atomic writes ---------------------------------------------------------------------


def interrupted_save(exception: BaseException):
    """A torch.save that writes half a file and then fails, like a full disk or a Ctrl-C."""

    def fake_save(obj, stream, *args, **kwargs):
        stream.write(b"PK\x03\x04 partial checkpoint")
        stream.flush()
        raise exception

    return fake_save


@pytest.mark.parametrize("exception", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()],
                         ids=["disk-full", "interrupt"])
def test_failed_save_keeps_previous_checkpoint(exception, tmp_path, monkeypatch) -> None:
    path = tmp_path / "best.pt"
    first = {"config": {"generation": 1}, "src_vocab": b"s", "tgt_vocab": b"t", "model": {"w": torch.ones(3)}}
    save_checkpoint(path, first)
    before = path.read_bytes()

    monkeypatch.setattr(torch, "save", interrupted_save(exception))
    second = {**first, "config": {"generation": 2}, "model": {"w": torch.zeros(3)}}
    expected = UserError if isinstance(exception, OSError) else type(exception)
    with pytest.raises(expected) as caught:
        save_checkpoint(path, second)
    monkeypatch.undo()

    if expected is UserError:
        assert str(path) in str(caught.value) and "cannot write" in str(caught.value)
    assert path.read_bytes() == before
    loaded = load_checkpoint(path)
    assert loaded["config"] == {"generation": 1} and torch.equal(loaded["model"]["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"], "temporary file left behind"


def test_save_replaces_and_leaves_no_temporary_files(tmp_path) -> None:
    path = tmp_path / "deep" / "er" / "step.pt"
    for generation in range(3):
        save_checkpoint(path, {"config": {"g": generation}, "src_vocab": b"s", "tgt_vocab": b"t", "model": {}})
    assert load_checkpoint(path)["config"] == {"g": 2}
    assert [p.name for p in path.parent.iterdir()] == ["step.pt"]


def test_path_under_a_regular_file_is_user_error(tmp_path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    target = blocker / "ckpt.pt"
    with pytest.raises(UserError) as caught:
        save_checkpoint(target, {"config": {}, "src_vocab": b"s", "tgt_vocab": b"t", "model": {}})
    assert str(target) in str(caught.value) and "cannot write" in str(caught.value)
    assert blocker.read_text() == "not a folder"


def test_read_only_folder_is_user_error(tmp_path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        probe = folder / "probe"
        try:
            probe.write_bytes(b"")
        except OSError:
            pass
        else:
            pytest.skip("permissions are not enforced here (running as root)")
        with pytest.raises(UserError, match="cannot write"):
            save_checkpoint(folder / "ckpt.pt", {"config": {}, "src_vocab": b"s", "tgt_vocab": b"t", "model": {}})
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


# --- hostile and broken files ----------------------------------------------------------


class Exploit:
    """Unpickling this runs a command: a checkpoint must never be loaded with full pickle."""

    def __init__(self, marker: Path, how: str):
        self.marker, self.how = marker, how

    def __reduce__(self):
        if self.how == "system":
            return os.system, (f"touch {shlex.quote(str(self.marker))}",)
        return eval, (f"open({str(self.marker)!r}, 'w').close()",)


def write_exploit(folder: Path, how: str) -> tuple[Path, Path]:
    marker = folder / "pwned"
    path = folder / "evil.pt"
    payload = {"format_version": FORMAT_VERSION, "package_version": __version__, "config": {},
               "src_vocab": b"s", "tgt_vocab": b"t", "model": {"w": torch.ones(1)}, "training": Exploit(marker, how)}
    torch.save(payload, path)
    return path, marker


@pytest.mark.parametrize("how", ["system", "eval"])
def test_malicious_checkpoint_is_refused_without_running_code(how, tmp_path) -> None:
    path, marker = write_exploit(tmp_path, how)
    message = error_of(path)
    assert "refused" in message
    assert not marker.exists(), "load_checkpoint executed code from the file"
    with pytest.raises(UserError):
        Translator.from_checkpoint(path, device="cpu")
    assert not marker.exists()
    # The file really is hostile: plain pickle, reading the archive's data.pkl, runs the payload.
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(name for name in archive.namelist() if name.endswith("data.pkl")))
    unpickler = pickle.Unpickler(io.BytesIO(data))
    unpickler.persistent_load = lambda pid: pid[1](pid[4])  # ("storage", type, key, location, numel): blank storage
    unpickler.load()
    assert marker.exists()


def test_malicious_checkpoint_at_the_cli(tmp_path, capsys) -> None:
    path, marker = write_exploit(tmp_path, "system")
    assert main(["translate", "--checkpoint", str(path), "--device", "cpu", "hello"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "refused" in err
    assert not marker.exists()


def test_first_100_bytes_is_truncated(real_checkpoint, tmp_path) -> None:
    path = tmp_path / "cut.pt"
    path.write_bytes(real_checkpoint.read_bytes()[:100])
    assert "truncated or corrupt" in error_of(path)


def test_every_truncation_is_truncated_or_corrupt(real_checkpoint, tmp_path) -> None:
    raw = real_checkpoint.read_bytes()
    path = tmp_path / "cut.pt"
    # every length up to 64 (the zip signature "PK\x03\x04" and the first local header), then a sample
    offsets = [*range(64), *range(64, len(raw), max(1, len(raw) // 150)), len(raw) - 1]
    for offset in offsets:
        path.write_bytes(raw[:offset])
        assert "truncated or corrupt" in error_of(path), offset


def test_every_truncation_of_an_old_style_checkpoint_is_truncated_or_corrupt(tmp_path) -> None:
    """torch < 1.6 wrote plain pickles, whose GLOBAL opcodes a cut can split ("ctorch._utils\\n_reb")."""
    stream = io.BytesIO()
    torch.save({"model": {"w": torch.ones(2)}}, stream, _use_new_zipfile_serialization=False)
    raw = stream.getvalue()
    assert b"ctorch._utils\n_rebuild_tensor_v2\n" in raw
    path = tmp_path / "cut.pt"
    for offset in range(len(raw)):
        path.write_bytes(raw[:offset])
        assert "truncated or corrupt" in error_of(path), (offset, raw[max(0, offset - 12):offset])


def test_hostile_old_style_checkpoint_is_refused_once_it_names_the_global(tmp_path) -> None:
    stream = io.BytesIO()
    torch.save({"training": Exploit(tmp_path / "pwned", "system")}, stream, _use_new_zipfile_serialization=False)
    raw = stream.getvalue()
    end = raw.index(b"\nsystem\n") + len(b"\nsystem\n")
    path = tmp_path / "evil.pt"
    for offset in (end - 1, end, end + 1, len(raw)):
        path.write_bytes(raw[:offset])
        message = error_of(path)
        if offset < end:
            assert "truncated or corrupt" in message, offset
        else:
            assert "refused" in message and "system)" in message, offset
    assert not (tmp_path / "pwned").exists()


def test_garbage_after_a_zip_signature_is_corrupt(tmp_path) -> None:
    path = tmp_path / "junk.pt"
    for seed in range(20):
        path.write_bytes(b"PK\x03\x04" + random.Random(seed).randbytes(3000))
        assert "truncated or corrupt" in error_of(path), seed


def test_random_bytes_are_truncated_or_corrupt(tmp_path) -> None:
    path = tmp_path / "noise.pt"
    for seed in range(60):
        path.write_bytes(random.Random(seed).randbytes(2000))
        assert "truncated or corrupt" in error_of(path), seed


@pytest.mark.parametrize("content", [b".", b"\x80", b"t", b"\x80\x02.", b"c", b"\x80\x02c", b"cos\n",
                                     b"\x80\x02cos\nsys", b"\x80\x02cbuiltins\nev"], ids=repr)
def test_tiny_garbage_file_is_user_error(content, tmp_path) -> None:
    path = tmp_path / "tiny.pt"
    path.write_bytes(content)
    assert "truncated or corrupt" in error_of(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_flipped_bytes_never_escape_as_other_exceptions(real_checkpoint, tmp_path) -> None:
    raw = real_checkpoint.read_bytes()
    path = tmp_path / "flipped.pt"
    escaped = []
    for offset in range(0, 300):  # the start of archive/data.pkl
        corrupt = bytearray(raw)
        corrupt[offset] = 0x4B  # BININT1: pushes an int where the unpickler expects something else
        path.write_bytes(bytes(corrupt))
        try:
            load_checkpoint(path)
        except UserError:
            pass
        except Exception as error:  # noqa: BLE001 - collecting exactly what escapes
            escaped.append((offset, type(error).__name__))
    assert escaped == []


def test_wrong_format_version_names_both_versions(tmp_path) -> None:
    path = tmp_path / "future.pt"
    save_checkpoint(path, {"format_version": FORMAT_VERSION + 98, "package_version": "9.9.9", "config": {},
                           "src_vocab": b"s", "tgt_vocab": b"t", "model": {}})
    message = error_of(path)
    assert f"format {FORMAT_VERSION + 98}" in message and "9.9.9" in message
    assert f"format {FORMAT_VERSION})" in message and __version__ in message


@pytest.mark.parametrize("content", [
    {"model": {"w": torch.ones(2)}},
    {},
    {"format_version": FORMAT_VERSION, "package_version": __version__, "config": {}, "src_vocab": b"s",
     "model": {}},  # no tgt_vocab
    [1, 2, 3],
    torch.zeros(3),
], ids=["model-only", "empty-dict", "no-tgt-vocab", "list", "tensor"])
def test_foreign_file_is_not_a_seq2seq_checkpoint(content, tmp_path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save(content, path)
    assert "not a seq2seq checkpoint" in error_of(path)


def test_missing_file_and_folder(tmp_path) -> None:
    assert "checkpoint not found" in error_of(tmp_path / "nope.pt")
    assert "checkpoint not found" in error_of(tmp_path)


# --- checkpoints whose contents do not fit together ------------------------------------


def test_stored_config_errors_name_the_checkpoint(real_payload, tmp_path) -> None:
    config = config_to_dict(Config(model=ModelConfig(emb_size=8, encoder_hidden=8, decoder_hidden=8)))
    config["model"]["dropout"] = 1.0
    path = tmp_path / "bad-config.pt"
    save_checkpoint(path, {**real_payload, "config": config})
    with pytest.raises(UserError, match=r"\(stored config\): model\.dropout"):
        Translator.from_checkpoint(path, device="cpu")


@pytest.mark.parametrize("change", ["drop-weight", "resize-weight", "wider-config"])
def test_weights_that_do_not_fit_the_config(change, real_payload, tmp_path) -> None:
    payload = {**real_payload, "model": dict(real_payload["model"]), "config": config_to_dict(
        Config(model=ModelConfig(emb_size=8, encoder_hidden=8, decoder_hidden=8, dropout=0.0)))}
    first = next(iter(payload["model"]))
    if change == "drop-weight":
        del payload["model"][first]
    elif change == "resize-weight":
        payload["model"][first] = torch.zeros(3, 3)
    else:
        payload["config"]["model"]["decoder_hidden"] = 16
    path = tmp_path / "mismatch.pt"
    save_checkpoint(path, payload)
    with pytest.raises(UserError) as caught:
        Translator.from_checkpoint(path, device="cpu")
    assert str(path) in str(caught.value) and "weights do not match" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_broken_vocabulary_is_user_error(real_payload, tmp_path) -> None:
    path = tmp_path / "bad-vocab.pt"
    save_checkpoint(path, {**real_payload, "tgt_vocab": b"not a sentencepiece model"})
    with pytest.raises(UserError, match="invalid SentencePiece model"):
        Translator.from_checkpoint(path, device="cpu")


@pytest.mark.parametrize("field,value", [("model", [1, 2]), ("model", None), ("src_vocab", "text"),
                                         ("src_vocab", None)])
def test_fields_of_the_wrong_type_are_user_errors(field, value, real_payload, tmp_path) -> None:
    path = tmp_path / "wrong-type.pt"
    save_checkpoint(path, {**real_payload, field: value})
    with pytest.raises(UserError):
        Translator.from_checkpoint(path, device="cpu")


# --- the command line ------------------------------------------------------------------


def test_translate_cli_with_truncated_checkpoint(real_checkpoint, tmp_path) -> None:
    path = tmp_path / "cut.pt"
    path.write_bytes(real_checkpoint.read_bytes()[:100])
    result = subprocess.run([sys.executable, "translate.py", "--checkpoint", str(path), "--device", "cpu", "hello"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert str(path) in result.stderr and "truncated or corrupt" in result.stderr
    assert result.stdout == ""


def test_translate_cli_with_good_checkpoint(real_checkpoint, capsys) -> None:
    assert main(["translate", "--checkpoint", str(real_checkpoint), "--device", "cpu", "--method", "greedy",
                 "alpha bravo", ""]) == 0
    out = capsys.readouterr().out
    assert len(out.split("\n")) == 3 and out.endswith("\n\n")
