"""Decoding with an exported CTranslate2 model: an engine under seq2seq's Translator.

Text cleaning, encoding, truncation, batching and the output rules are the Translator's;
only the search runs in CTranslate2. Its options map onto seq2seq's decoding settings with
two differences: CTranslate2's length penalty divides by length ** alpha (seq2seq's beam
uses GNMT's ((5 + length) / 6) ** alpha), and its length limit is one per batch, so each
output is cut at its own sentence's limit afterwards, as seq2seq's search would stop it.
CTranslate2 leaves a forced target prefix out of its scores, so outputs with a prefix are
rescored whole (score_batch) and take seq2seq's length penalty: their scores mean what the
PyTorch engine's do.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
import yaml

from seq2seq.config import Config, DecodingConfig, config_from_dict
from seq2seq.data.text_form import TextForm
from seq2seq.errors import UserError
from seq2seq.export import CONFIG_FILE, INFO_FILE, import_ctranslate2
from seq2seq.search import Hypothesis, hypotheses_per_sentence, length_penalty, output_limits, uses_beam
from seq2seq.translator import Translator
from seq2seq.vocab import Vocab

EOS_PIECE = "</s>"


class CTranslate2Engine:
    """Runs the search of an export folder in CTranslate2; `search` takes the settings of each call."""

    def __init__(self, folder: Path, device: str = "cpu", threads: int = 0, max_positions: int | None = None):
        ctranslate2 = import_ctranslate2()
        # CTranslate2 sets the process's OpenMP thread count to intra_threads (0 = every core), which
        # would also change torch's; by default it takes torch's count, so the process keeps one setting
        self.translator = ctranslate2.Translator(str(folder), device=device,
                                                 intra_threads=threads or torch.get_num_threads())
        self.src_vocab = Vocab((folder / "src.spm.model").read_bytes())
        self.tgt_vocab = Vocab((folder / "tgt.spm.model").read_bytes())
        self.device = torch.device(device)  # what the engine runs on; inputs stay on the CPU
        self.max_positions = max_positions

    def search(self, sources: list[list[int]], decoding: DecodingConfig, record_attention: bool,
               prefixes: list[list[int]] | None = None) -> list[list[Hypothesis]]:
        d = decoding
        lengths = torch.tensor([len(s) + 1 for s in sources])
        limits = output_limits(lengths, d, self.max_positions).tolist()  # steps, EOS included
        if prefixes is not None:  # as seq2seq's search: a prefix always has room for EOS after it
            limits = [max(limit, len(prefix) + 1) for limit, prefix in zip(limits, prefixes)]
        if d.method == "sample":
            import_ctranslate2().set_random_seed(d.seed)
        options = dict(
            beam_size=d.beam_size if uses_beam(d) else 1,
            num_hypotheses=hypotheses_per_sentence(d),
            length_penalty=d.length_penalty if uses_beam(d) else 0.0,
            no_repeat_ngram_size=d.no_repeat_ngram,
            max_decoding_length=max(limits) - 1,
            min_decoding_length=d.min_len,
            return_scores=True,
            return_attention=record_attention,
            return_end_token=True,  # so that the attention has the </s> step's row, as seq2seq's search gives it
            sampling_topk=(d.top_k or 0) if d.method == "sample" else 1,
            sampling_topp=d.top_p if d.method == "sample" else 1.0,
            sampling_temperature=max(d.temperature, 1e-6) if d.method == "sample" else 1.0,
        )
        if prefixes is not None:
            options["target_prefix"] = [self.tgt_vocab.pieces(prefix) for prefix in prefixes]
        batch = [self.src_vocab.pieces(row) + [EOS_PIECE] for row in sources]
        results = self.translator.translate_batch(batch, **options)
        outputs = []
        for result, limit, source in zip(results, limits, sources):
            nbest = []
            for k, pieces in enumerate(result.hypotheses):
                if pieces and pieces[-1] == EOS_PIECE:
                    pieces = pieces[:-1]
                tokens = [self.tgt_vocab.piece_id(p) for p in pieces][: limit - 1]
                attention = None
                if record_attention and result.attention:
                    rows = torch.tensor(result.attention[k])[: len(tokens) + 1]
                    attention = rows[:, : len(source) + 1]
                nbest.append(Hypothesis(tokens, float(result.scores[k]), attention))
            outputs.append(nbest)
        if prefixes is not None:
            self.rescore_prefixed(batch, prefixes, outputs, d)
        return outputs

    def rescore_prefixed(self, batch: list[list[str]], prefixes: list[list[int]], outputs: list[list[Hypothesis]],
                         decoding: DecodingConfig) -> None:
        """Whole-output log-probabilities (prefix and EOS included) for the sentences that had a prefix, best first."""
        rows = [(i, h) for i, prefix in enumerate(prefixes) if prefix for h in outputs[i]]
        if not rows:
            return
        scored = self.translator.score_batch([batch[i] for i, _ in rows],
                                             [self.tgt_vocab.pieces(h.tokens) for _, h in rows])
        alpha = decoding.length_penalty if uses_beam(decoding) else 0.0
        for (_, hypothesis), result in zip(rows, scored):
            hypothesis.score = sum(result.log_probs) / length_penalty(len(hypothesis.tokens) + 1, alpha)
        for i in {i for i, _ in rows}:
            outputs[i].sort(key=lambda h: -h.score)


class CTranslate2Translator(Translator):
    """The Translator of an export folder, with the exported checkpoint's config and provenance."""

    def __init__(self, folder: Path, config: Config, device: str = "cpu", threads: int = 0,
                 decoding: DecodingConfig | None = None):
        engine = CTranslate2Engine(folder, device, threads, config.model.max_positions)
        super().__init__(engine, engine.src_vocab, engine.tgt_vocab, decoding or config.decoding,
                         text_form=TextForm.of(config.data), evaluation=config.evaluation)
        self.folder = folder
        self.config = config
        # where the model came from; exports made before export.json existed have none
        info = folder / INFO_FILE
        self.info: dict = json.loads(info.read_text(encoding="utf-8")) if info.is_file() else {}

    @classmethod
    def from_directory(cls, folder: str | Path, device: str = "auto", threads: int = 0,
                       **decoding_overrides) -> CTranslate2Translator:
        folder = Path(folder)
        if not (folder / "model.bin").is_file() or not (folder / CONFIG_FILE).is_file():
            raise UserError(f"{folder}: not a CTranslate2 export of seq2seq "
                            "(make one with python -m seq2seq export --format ctranslate2)")
        config = config_from_dict(yaml.safe_load((folder / CONFIG_FILE).read_text(encoding="utf-8")),
                                  source=f"{folder / CONFIG_FILE}")
        engine_device = "cuda" if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()) else "cpu"
        return cls(folder, config, engine_device, threads, dataclasses.replace(config.decoding, **decoding_overrides))
