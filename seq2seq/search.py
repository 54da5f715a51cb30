"""Batched greedy search, beam search and sampling: pure functions of a model and a source batch.

Sentences that finish leave the batch, so a long sentence never makes the short ones pay.
Every hypothesis ends with exactly one EOS, which is stripped from `tokens`. A forced target
prefix is decoded as the model's own choice would be: its pieces are scored and fed back, and the
search (greedy, beam or sampling) continues from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from seq2seq.config import DecodingConfig
from seq2seq.model.interface import EncoderDecoder
from seq2seq.special_ids import BOS_ID, EOS_ID, PAD_ID


@dataclass
class Hypothesis:
    tokens: list[int]  # output piece ids (a forced prefix included), EOS stripped
    score: float  # log-probability of tokens + EOS (beam: divided by the length penalty)
    attention: torch.Tensor | None = None  # (len(tokens) + 1, src_len) when recorded


def output_limits(src_lengths: torch.Tensor, config: DecodingConfig, positions: int | None = None) -> torch.Tensor:
    """Steps allowed per sentence, EOS included: min(max_len, ratio * source + extra) + 1, and never
    more than the model's target positions (a validated config already stays within them)."""
    source_pieces = (src_lengths - 1).double()  # src_lengths count the source EOS
    relative = (source_pieces * config.max_len_ratio).floor().long() + config.max_len_extra
    cap = config.max_len if positions is None else min(config.max_len, positions - 1)
    return relative.clamp(min=min(config.min_len, cap), max=cap) + 1


def length_penalty(length: int | torch.Tensor, alpha: float) -> float | torch.Tensor:
    """GNMT length penalty ((5 + length) / 6) ** alpha (Wu et al., 2016)."""
    return ((5 + length) / 6) ** alpha


def constrain(log_probs: torch.Tensor, step: int, limits: torch.Tensor, min_len: int) -> torch.Tensor:
    """Forbid PAD and BOS, EOS before min_len, and anything but EOS at a sentence's last step."""
    log_probs[:, PAD_ID] = -math.inf
    log_probs[:, BOS_ID] = -math.inf
    if step < min_len:
        log_probs[:, EOS_ID] = -math.inf
    last = limits <= step + 1
    if bool(last.any()):
        eos = log_probs[last, EOS_ID].clone()
        log_probs[last] = -math.inf
        log_probs[last, EOS_ID] = torch.where(torch.isfinite(eos), eos, torch.zeros_like(eos))
    return log_probs


def block_repeats(log_probs: torch.Tensor, history: torch.Tensor, n: int) -> torch.Tensor:
    """Forbid each row's pieces that would complete an n-gram its history already holds.

    An undertrained model loops ("the the the ..." up to the length cap); blocking repeated
    n-grams ends the loop where it starts. history is (rows, steps so far), BOS excluded.
    """
    if n == 0 or history.size(1) < n:
        return log_probs
    windows = history.unfold(1, n, 1)  # (rows, steps - n + 1, n): every n-gram so far
    prefix = history[:, history.size(1) - n + 1:].unsqueeze(1)  # the last n - 1 pieces
    repeats = (windows[:, :, :-1] == prefix).all(dim=-1)  # n-grams that this step would start again
    banned = torch.zeros_like(log_probs).scatter_reduce_(1, windows[:, :, -1], repeats.to(log_probs.dtype), "amax")
    return log_probs.masked_fill_(banned.bool(), -math.inf)


class Prefixes:
    """Forced target prefixes of a batch: (batch, longest) piece ids, PAD-padded, and their lengths."""

    def __init__(self, rows: list[list[int]], device: torch.device):
        width = max(map(len, rows), default=0)
        self.tokens = torch.tensor([row + [PAD_ID] * (width - len(row)) for row in rows],
                                   dtype=torch.long, device=device).view(len(rows), width)
        self.lengths = torch.tensor([len(row) for row in rows], dtype=torch.long, device=device)

    def force(self, log_probs: torch.Tensor, raw: torch.Tensor, step: int, rows: torch.Tensor) -> torch.Tensor:
        """Rows (sentence indices) still inside their prefix may only take its next piece, at its
        unconstrained log-probability: the prefix is given, so no rule (min_len, n-gram block) applies."""
        inside = self.lengths[rows] > step
        if step >= self.tokens.size(1) or not bool(inside.any()):
            return log_probs
        forced = self.tokens[rows[inside], step]
        kept = raw[inside].gather(1, forced.unsqueeze(1))
        log_probs[inside] = -math.inf
        log_probs[inside] = log_probs[inside].scatter(1, forced.unsqueeze(1), kept)
        return log_probs

    def extend(self, limits: torch.Tensor, cap: int) -> torch.Tensor:
        """Limits that leave every prefix room for EOS after it (the caller keeps prefixes within max_len)."""
        return torch.maximum(limits, (self.lengths + 1).clamp(max=cap + 1))


def uses_beam(config: DecodingConfig) -> bool:
    """A beam of one is greedy search; the length penalty could only make it wander."""
    return config.method == "beam" and config.beam_size > 1


def hypotheses_per_sentence(config: DecodingConfig) -> int:
    return config.n_best if uses_beam(config) else 1


def search(
    model: EncoderDecoder, src: torch.Tensor, src_lengths: torch.Tensor, config: DecodingConfig,
    record_attention: bool = False, prefixes: list[list[int]] | None = None,
) -> list[list[Hypothesis]]:
    """hypotheses_per_sentence(config) hypotheses per sentence, best first; each starts with its
    sentence's prefix (target piece ids) when prefixes are given."""
    forced = Prefixes(prefixes, src.device) if prefixes is not None else None
    with torch.inference_mode():
        if uses_beam(config):
            return beam_search(model, src, src_lengths, config, record_attention, forced)
        return sample_or_greedy(model, src, src_lengths, config, record_attention, forced)


def step_limits(model: EncoderDecoder, src_lengths: torch.Tensor, config: DecodingConfig,
                prefixes: Prefixes | None) -> torch.Tensor:
    """output_limits, widened where a prefix needs more room."""
    limits = output_limits(src_lengths, config, model.max_target_positions).to(src_lengths.device)
    if prefixes is None:
        return limits
    positions = model.max_target_positions
    cap = config.max_len if positions is None else min(config.max_len, positions - 1)
    return prefixes.extend(limits, cap)


def pick_tokens(
    logits: torch.Tensor, log_probs: torch.Tensor, config: DecodingConfig, generator: torch.Generator | None
) -> torch.Tensor:
    """Argmax, or a draw from the temperature / top-k / top-p reshaped distribution."""
    if generator is None or config.temperature == 0 or config.top_k == 1:
        return log_probs.argmax(dim=-1)
    scaled = logits.float() / config.temperature
    scaled = scaled.masked_fill(~torch.isfinite(log_probs), -math.inf)
    if config.top_k:
        kth = scaled.topk(min(config.top_k, scaled.size(-1)), dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, -math.inf)
    if config.top_p < 1.0:
        sorted_logits, order = scaled.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        outside = cumulative - sorted_logits.softmax(dim=-1) >= config.top_p  # keeps the first token always
        scaled = scaled.scatter(-1, order, sorted_logits.masked_fill(outside, -math.inf))
    return torch.multinomial(scaled.softmax(dim=-1), 1, generator=generator).squeeze(1)


def sample_or_greedy(
    model: EncoderDecoder, src: torch.Tensor, src_lengths: torch.Tensor, config: DecodingConfig, record_attention: bool,
    prefixes: Prefixes | None = None,
) -> list[list[Hypothesis]]:
    batch, device = src.size(0), src.device
    memory, state = model.encode(src, src_lengths)
    limits = step_limits(model, src_lengths, config, prefixes)
    generator = None
    if config.method == "sample":
        generator = torch.Generator(device=device)
        generator.manual_seed(config.seed)
    active = torch.arange(batch, device=device)  # the original index of each sentence still decoding
    tokens = torch.full((batch,), BOS_ID, dtype=torch.long, device=device)
    outputs = torch.full((batch, int(limits.max())), PAD_ID, dtype=torch.long, device=device)
    scores = torch.zeros(batch, dtype=torch.float64, device=device)
    attention_steps: list[tuple[torch.Tensor, torch.Tensor]] = []
    for step in range(outputs.size(1)):
        logits, state, weights = model.step(tokens, state, memory)
        raw = model.log_probs(logits)
        log_probs = raw.clone() if prefixes is not None else raw
        if config.no_repeat_ngram:
            log_probs = block_repeats(log_probs, outputs[active, :step], config.no_repeat_ngram)
        log_probs = constrain(log_probs, step, limits, config.min_len)
        if prefixes is not None:
            log_probs = prefixes.force(log_probs, raw, step, active)
        chosen = pick_tokens(logits, log_probs, config, generator)
        outputs[active, step] = chosen
        scores.index_add_(0, active, log_probs.gather(1, chosen.unsqueeze(1)).squeeze(1).double())
        if record_attention and weights is not None:
            attention_steps.append((active, weights.float().cpu()))
        keep = chosen != EOS_ID
        if not bool(keep.all()):
            index = keep.nonzero().squeeze(1)
            if index.numel() == 0:
                break
            active, chosen, limits = active[index], chosen[index], limits[index]
            state, memory = state.select(index), memory.select(index)
        tokens = chosen
    rows = outputs.tolist()
    attention = _attention_by_sentence(attention_steps, batch)
    return [[Hypothesis(row[: row.index(EOS_ID)], score, attention[b])]
            for b, (row, score) in enumerate(zip(rows, scores.tolist()))]


def _attention_by_sentence(
    steps: list[tuple[torch.Tensor, torch.Tensor]], batch: int
) -> list[torch.Tensor | None]:
    """Per sentence, its attention rows of every step it was active: (steps, src_len)."""
    rows: list[list[torch.Tensor]] = [[] for _ in range(batch)]
    for active, weights in steps:
        for row, sentence in enumerate(active.tolist()):
            rows[sentence].append(weights[row])
    return [torch.stack(r) if r else None for r in rows]


def beam_search(
    model: EncoderDecoder, src: torch.Tensor, src_lengths: torch.Tensor, config: DecodingConfig, record_attention: bool,
    prefixes: Prefixes | None = None,
) -> list[list[Hypothesis]]:
    """Beam search in which finished hypotheses leave the beam, so K live ones are always explored.

    A sentence stops once it has n_best finished hypotheses and its best live one, scored
    as if it ended at the next step, cannot beat them. Live log-probabilities only fall, so
    this is exact for alpha = 0; with a length penalty a hypothesis could in principle
    still win by growing much longer, which beam search is known to over-reward anyway.
    """
    batch, beam, device = src.size(0), config.beam_size, src.device
    alpha = config.length_penalty
    memory, state = model.encode(src, src_lengths)
    expand = torch.arange(batch, device=device).repeat_interleave(beam)
    memory, state = memory.select(expand), state.select(expand)
    limits_all = step_limits(model, src_lengths, config, prefixes)
    sentences = torch.arange(batch, device=device)  # the original index of each active sentence
    live_scores = torch.full((batch, beam), -math.inf, device=device)
    live_scores[:, 0] = 0.0  # all beams start identical: keep one
    history = torch.full((batch * beam, 0), BOS_ID, dtype=torch.long, device=device)
    attention_history: torch.Tensor | None = None
    tokens = torch.full((batch * beam,), BOS_ID, dtype=torch.long, device=device)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    # per sentence: the n_best-th best finished score, -inf until there are n_best of them
    threshold = torch.full((batch,), -math.inf, device=device)
    row_offsets = torch.arange(batch, device=device).unsqueeze(1)
    for step in range(int(limits_all.max())):
        active = sentences.numel()
        limits = limits_all[sentences].repeat_interleave(beam)
        logits, state, weights = model.step(tokens, state, memory)
        raw = model.log_probs(logits)
        log_probs = block_repeats(raw.clone() if prefixes is not None else raw, history, config.no_repeat_ngram)
        log_probs = constrain(log_probs, step, limits, config.min_len)
        if prefixes is not None:
            log_probs = prefixes.force(log_probs, raw, step, sentences.repeat_interleave(beam))
        vocab = log_probs.size(-1)
        candidates = (live_scores.view(-1, 1) + log_probs).view(active, beam * vocab)
        top_scores, top_index = candidates.topk(2 * beam, dim=1)  # (active, 2 * beam)
        origin = top_index // vocab
        top_tokens = top_index % vocab
        flat_origin = (origin + row_offsets[:active] * beam).view(-1)
        if record_attention and weights is not None:
            rows = weights.float().unsqueeze(1)
            attention_history = rows if attention_history is None else torch.cat([attention_history, rows], 1)
            attention_history = attention_history[flat_origin].view(active, 2 * beam, step + 1, -1)
        new_history = torch.cat([history[flat_origin], top_tokens.view(-1, 1)], dim=1).view(active, 2 * beam, -1)

        ends = (top_tokens == EOS_ID) & torch.isfinite(top_scores)
        ends[:, beam:] = False  # only candidates ranked within the beam may finish
        if bool(ends.any()):
            _collect(finished, threshold, ends, sentences, top_scores, new_history, attention_history,
                     length_penalty(step + 1, alpha), config.n_best)

        # the best `beam` candidates that did not end become the live beams
        continuing = top_scores.masked_fill(top_tokens == EOS_ID, -math.inf)
        live_scores, keep = continuing.topk(beam, dim=1)  # (active, beam)
        chosen = (keep + row_offsets[:active] * 2 * beam).view(-1)
        history = new_history.view(active * 2 * beam, -1)[chosen]
        if attention_history is not None:
            attention_history = attention_history.view(active * 2 * beam, step + 1, -1)[chosen]
        # beams move only within their sentence, whose memory rows are all alike: memory stays
        state = state.select(flat_origin.view(active, 2 * beam).gather(1, keep).view(-1))
        tokens = top_tokens.gather(1, keep).view(-1)

        best_live = live_scores.max(dim=1).values
        hopeless = best_live / length_penalty(step + 2, alpha) <= threshold[sentences]
        done = hopeless | ~torch.isfinite(best_live)
        if bool(done.any()):
            stay = (~done).nonzero().squeeze(1)
            if stay.numel() == 0:
                break
            rows = (stay.unsqueeze(1) * beam + torch.arange(beam, device=device)).view(-1)
            sentences, live_scores = sentences[stay], live_scores[stay]
            history, tokens = history[rows], tokens[rows]
            state, memory = state.select(rows), memory.select(rows)
            if attention_history is not None:
                attention_history = attention_history[rows]
    return [sorted(hyps, key=lambda h: -h.score)[: config.n_best] for hyps in finished]


def _collect(
    finished: list[list[Hypothesis]], threshold: torch.Tensor, ends: torch.Tensor, sentences: torch.Tensor,
    scores: torch.Tensor, history: torch.Tensor, attention: torch.Tensor | None, penalty: float, n_best: int,
) -> None:
    """Move the candidates that just emitted EOS into `finished`, and raise each sentence's threshold."""
    positions = ends.nonzero().tolist()
    picked = [a * ends.size(1) + c for a, c in positions]
    texts = history.view(-1, history.size(-1))[picked, :-1].tolist()
    values = (scores.view(-1)[picked].double() / penalty).tolist()
    originals = sentences.tolist()
    for (a, c), tokens, value in zip(positions, texts, values):
        sentence = originals[a]
        weights = attention[a, c].cpu() if attention is not None else None
        finished[sentence].append(Hypothesis(tokens, value, weights))
        if len(finished[sentence]) >= n_best:
            threshold[sentence] = sorted((h.score for h in finished[sentence]), reverse=True)[n_best - 1]
