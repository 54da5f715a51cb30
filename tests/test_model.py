"""Tests for seq2seq.model: shapes, gradients, attention masks, and that the fast paths agree with `step`."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
import torch.nn.functional as F

from seq2seq.config import ModelConfig
from seq2seq.model.build import build_model, count_parameters
from seq2seq.model.interface import EncoderDecoder
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID

SRC_VOCAB, TGT_VOCAB = 17, 13
RNNS = ("gru", "lstm")
ATTENTIONS = ("bahdanau", "luong_dot", "luong_general", "none")
TOL = 1e-5



def tiny_config(rnn: str = "gru", attention: str = "bahdanau", **overrides) -> ModelConfig:
    """Deliberately unequal sizes, so a mixed-up dimension fails loudly (luong_dot needs dec == 2 * enc)."""
    sizes = dict(emb_size=8, encoder_hidden=6, decoder_hidden=12 if attention == "luong_dot" else 10)
    sizes.update(dropout=0.0)
    sizes.update(overrides)
    return ModelConfig(rnn=rnn, attention=attention, **sizes)


def make_model(config: ModelConfig, seed: int = 0) -> EncoderDecoder:
    torch.manual_seed(seed)
    return build_model(config, SRC_VOCAB, TGT_VOCAB)


def random_ids(generator: torch.Generator, length: int, vocab: int) -> list[int]:
    """Ordinary ids only (no PAD/UNK/BOS/EOS)."""
    return torch.randint(4, vocab, (length,), generator=generator).tolist()


def source_batch(lengths: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Sources ending with EOS, right-padded with PAD: (batch, max_len) and (batch,) lengths incl. EOS."""
    generator = torch.Generator().manual_seed(seed)
    src = torch.full((len(lengths), max(lengths)), PAD_ID, dtype=torch.long)
    for row, length in enumerate(lengths):
        src[row, : length - 1] = torch.tensor(random_ids(generator, length - 1, SRC_VOCAB))
        src[row, length - 1] = EOS_ID
    return src, torch.tensor(lengths)


def target_batch(lengths: list[int], seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """tgt_in = BOS y1..yn and tgt_out = y1..yn EOS, right-padded; lengths count BOS (= count EOS)."""
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    tgt_in = torch.full((len(lengths), width), PAD_ID, dtype=torch.long)
    tgt_out = torch.full((len(lengths), width), PAD_ID, dtype=torch.long)
    for row, length in enumerate(lengths):
        words = torch.tensor(random_ids(generator, length - 1, TGT_VOCAB), dtype=torch.long)
        tgt_in[row, 0] = BOS_ID
        tgt_in[row, 1:length] = words
        tgt_out[row, : length - 1] = words
        tgt_out[row, length - 1] = EOS_ID
    return tgt_in, tgt_out


SRC_LENGTHS = [6, 2, 4, 7]  # different lengths, the longest not first: exercises enforce_sorted=False
TGT_LENGTHS = [3, 5, 1, 4]  # a target that is BOS only
SRC, SRC_LEN = source_batch(SRC_LENGTHS)
TGT_IN, TGT_OUT = target_batch(TGT_LENGTHS)

ALL_TYPES = list(itertools.product(RNNS, ATTENTIONS))
VARIANTS = {
    "two_layers": dict(encoder_layers=2, decoder_layers=2),
    "unidirectional": dict(bidirectional=False),
    "layer_norm": dict(layer_norm=True),
    "tied": dict(tie_embeddings=True, emb_size=10),
    "everything": dict(encoder_layers=2, decoder_layers=2, layer_norm=True, tie_embeddings=True, emb_size=10),
}


def variant_config(rnn: str, attention: str, variant: str) -> ModelConfig:
    overrides = dict(VARIANTS[variant])
    bidirectional = overrides.get("bidirectional", True)
    encoder_out = 6 * (2 if bidirectional else 1)
    if attention == "luong_dot":
        overrides["decoder_hidden"] = encoder_out
    if overrides.get("tie_embeddings"):
        overrides["emb_size"] = overrides.get("decoder_hidden", 12 if attention == "luong_dot" else 10)
    return tiny_config(rnn, attention, **overrides)


TRANSFORMER_VARIANTS = {
    "pre_norm": dict(),
    "post_norm": dict(norm="post"),
    "learned_positions": dict(positions="learned"),
    "tied": dict(tie_embeddings=True),
    "three_layers_first_heatmap": dict(encoder_layers=3, decoder_layers=3, attention_layer=0),
}


def transformer_config(**overrides) -> ModelConfig:
    """d_model 8 over 2 heads, feed-forward 12: small and with unequal widths."""
    shape = dict(type="transformer", d_model=8, heads=2, ff_size=12, encoder_layers=2, decoder_layers=2,
                 dropout=0.0, attention_dropout=0.0, max_positions=32)
    shape.update(overrides)
    return ModelConfig(**shape)


def every_config() -> list:
    """Every rnn x attention, plain and with each variant, and each Transformer variant."""
    params = [pytest.param(tiny_config(r, a), id=f"{r}-{a}") for r, a in ALL_TYPES]
    for variant in VARIANTS:
        for r, a in ALL_TYPES:
            params.append(pytest.param(variant_config(r, a, variant), id=f"{r}-{a}-{variant}"))
    for variant, overrides in TRANSFORMER_VARIANTS.items():
        params.append(pytest.param(transformer_config(**overrides), id=f"transformer-{variant}"))
    return params


def stepwise(model: EncoderDecoder, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor):
    """Logits (batch, tgt_len, vocab) and weights by encode + one `step` per gold token."""
    memory, state = model.encode(src, lengths)
    logits, weights = [], []
    for t in range(tgt_in.size(1)):
        step_logits, state, w = model.step(tgt_in[:, t], state, memory)
        logits.append(step_logits)
        weights.append(w)
    attention = None if weights[0] is None else torch.stack(weights, dim=1)
    return torch.stack(logits, dim=1), attention


def masked_loss(logits: torch.Tensor, tgt_out: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.transpose(1, 2), tgt_out, ignore_index=PAD_ID)


# --- shapes and gradients ------------------------------------------------------------------


@pytest.mark.parametrize("config", every_config())
def test_forward_shapes_and_finite_gradients_for_every_parameter(config: ModelConfig) -> None:
    model = make_model(config)
    model.train()
    logits, attention = model(SRC, SRC_LEN, TGT_IN)
    assert logits.shape == (len(SRC_LENGTHS), max(TGT_LENGTHS), TGT_VOCAB)
    assert torch.isfinite(logits).all()
    if config.type == "rnn" and config.attention == "none":
        assert attention is None
    elif config.type == "transformer":
        assert attention is None  # its heatmap weights are an extra product, computed in eval mode only
    else:
        assert attention.shape == (len(SRC_LENGTHS), max(TGT_LENGTHS), max(SRC_LENGTHS))
    loss = masked_loss(logits, TGT_OUT)
    assert torch.isfinite(loss)
    loss.backward()
    for name, parameter in model.named_parameters():
        if config.type == "rnn" and config.attention == "none" and "layer_norm" in name:
            continue  # without attention the encoder states (which LayerNorm normalises) are unused
        assert parameter.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(parameter.grad).all(), f"{name} has a non-finite gradient"
        assert parameter.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize("rnn,attention", ALL_TYPES)
def test_padding_rows_of_embeddings_get_no_gradient(rnn: str, attention: str) -> None:
    model = make_model(tiny_config(rnn, attention))
    logits, _ = model(SRC, SRC_LEN, TGT_IN)
    masked_loss(logits, TGT_OUT).backward()
    assert torch.equal(model.encoder.embedding.weight.grad[PAD_ID], torch.zeros(8))
    assert torch.equal(model.decoder.embedding.weight.grad[PAD_ID], torch.zeros(8))
    assert torch.equal(model.encoder.embedding.weight[PAD_ID], torch.zeros(8))


def test_padded_target_positions_do_not_change_the_loss_gradient() -> None:
    """What stands in tgt_in after a sentence's end must not matter to its real positions."""
    model = make_model(tiny_config("lstm", "luong_general")).eval()
    other = TGT_IN.clone()
    other[TGT_IN == PAD_ID] = 5  # garbage instead of PAD after each sentence's end
    logits, _ = model(SRC, SRC_LEN, TGT_IN)
    logits_other, _ = model(SRC, SRC_LEN, other)
    real = TGT_OUT != PAD_ID
    assert torch.allclose(logits[real], logits_other[real], atol=TOL)


def test_luong_dot_needs_decoder_hidden_equal_to_encoder_output() -> None:
    ok = make_model(tiny_config("gru", "luong_dot", encoder_hidden=6, decoder_hidden=12))
    assert ok.encoder.output_size == 12
    ok(SRC, SRC_LEN, TGT_IN)
    uni = make_model(tiny_config("gru", "luong_dot", encoder_hidden=6, decoder_hidden=6, bidirectional=False))
    assert uni.encoder.output_size == 6
    uni(SRC, SRC_LEN, TGT_IN)
    bad = make_model(tiny_config("gru", "luong_dot", encoder_hidden=6, decoder_hidden=10))
    with pytest.raises(RuntimeError):
        bad(SRC, SRC_LEN, TGT_IN)


# --- attention -----------------------------------------------------------------------------


@pytest.mark.parametrize("config", [p for p in every_config()
                                    if p.values[0].type == "transformer" or p.values[0].attention != "none"])
def test_attention_is_zero_on_padding_and_rows_sum_to_one(config: ModelConfig) -> None:
    model = make_model(config).eval()
    _, attention = model(SRC, SRC_LEN, TGT_IN)
    _, step_attention = stepwise(model, SRC, SRC_LEN, TGT_IN)
    for weights in (attention, step_attention):
        padding = (SRC == PAD_ID).unsqueeze(1).expand_as(weights)
        assert padding.any()
        assert (weights[padding] == 0).all(), "attention leaks onto source padding"
        assert (weights[~padding] > 0).all()
        assert torch.allclose(weights.sum(dim=-1), torch.ones(weights.shape[:2]), atol=TOL)


# --- the fast path agrees with step ----------------------------------------------------------


@pytest.mark.parametrize("config", every_config())
def test_teacher_forced_forward_equals_step_by_step(config: ModelConfig) -> None:
    model = make_model(config).eval()
    with torch.no_grad():
        logits, attention = model(SRC, SRC_LEN, TGT_IN)
        step_logits, step_attention = stepwise(model, SRC, SRC_LEN, TGT_IN)
    assert torch.allclose(logits, step_logits, atol=TOL, rtol=0)
    if attention is not None:
        assert torch.allclose(attention, step_attention, atol=TOL, rtol=0)


@pytest.mark.parametrize("config", every_config())
def test_padding_does_not_change_a_sentences_logits(config: ModelConfig) -> None:
    """Sentence 1 (source 2, target 5) alone, then padded next to longer sources and targets."""
    model = make_model(config).eval()
    row = 1
    src_len, tgt_len = SRC_LENGTHS[row], TGT_LENGTHS[row]
    alone_src, alone_tgt = SRC[row : row + 1, :src_len], TGT_IN[row : row + 1, :tgt_len]
    with torch.no_grad():
        alone, alone_attention = model(alone_src, SRC_LEN[row : row + 1], alone_tgt)
        batched, batched_attention = model(SRC, SRC_LEN, TGT_IN)
    assert SRC.size(1) > src_len  # it really is padded in the batch
    assert torch.allclose(alone[0], batched[row, :tgt_len], atol=TOL, rtol=0)
    if alone_attention is not None:
        assert torch.allclose(alone_attention[0], batched_attention[row, :tgt_len, :src_len], atol=TOL, rtol=0)


@pytest.mark.parametrize("rnn,attention", ALL_TYPES)
def test_batch_order_does_not_change_results(rnn: str, attention: str) -> None:
    model = make_model(tiny_config(rnn, attention)).eval()
    order = torch.tensor([3, 1, 0, 2])
    with torch.no_grad():
        logits, _ = model(SRC, SRC_LEN, TGT_IN)
        shuffled, _ = model(SRC[order], SRC_LEN[order], TGT_IN[order])
    assert torch.allclose(logits[order], shuffled, atol=TOL, rtol=0)


# --- the encoder -----------------------------------------------------------------------------


@pytest.mark.parametrize("rnn", RNNS)
@pytest.mark.parametrize("layers", [1, 2])
def test_encoder_final_state_is_each_sentences_real_end(rnn: str, layers: int) -> None:
    """Forward half = state at the last real token, backward half = state at position 0 (packing works)."""
    model = make_model(tiny_config(rnn, encoder_layers=layers)).eval()
    with torch.no_grad():
        states, final, final_cell = model.encoder(SRC, SRC_LEN)
    hidden = 6
    assert states.shape == (len(SRC_LENGTHS), max(SRC_LENGTHS), 2 * hidden)
    assert final.shape == (len(SRC_LENGTHS), 2 * hidden)
    assert (final_cell is not None) == (rnn == "lstm")
    for row, length in enumerate(SRC_LENGTHS):
        assert torch.allclose(final[row, :hidden], states[row, length - 1, :hidden], atol=TOL)
        assert torch.allclose(final[row, hidden:], states[row, 0, hidden:], atol=TOL)
        assert (states[row, length:] == 0).all()


def test_unidirectional_encoder_output_size_and_final_state() -> None:
    model = make_model(tiny_config("gru", "luong_general", bidirectional=False)).eval()
    assert model.encoder.output_size == 6
    with torch.no_grad():
        states, final, _ = model.encoder(SRC, SRC_LEN)
    assert states.shape[-1] == 6 and final.shape == (len(SRC_LENGTHS), 6)
    for row, length in enumerate(SRC_LENGTHS):
        assert torch.allclose(final[row], states[row, length - 1], atol=TOL)


def test_layer_norm_normalises_encoder_outputs() -> None:
    model = make_model(tiny_config("gru", layer_norm=True)).eval()
    assert isinstance(model.encoder.layer_norm, torch.nn.LayerNorm)
    with torch.no_grad():
        states, _, _ = model.encoder(SRC, SRC_LEN)
    real = SRC != PAD_ID
    assert torch.allclose(states[real].mean(dim=-1), torch.zeros(int(real.sum())), atol=1e-5)
    assert torch.allclose(states[real].var(dim=-1, unbiased=False), torch.ones(int(real.sum())), atol=1e-2)  # LayerNorm eps shrinks small variances slightly
    plain = make_model(tiny_config("gru", layer_norm=False))
    assert isinstance(plain.encoder.layer_norm, torch.nn.Identity)


@pytest.mark.parametrize("rnn", RNNS)
def test_two_layer_decoder_uses_both_layers(rnn: str) -> None:
    model = make_model(tiny_config(rnn, encoder_layers=2, decoder_layers=2)).eval()
    memory, state = model.encode(SRC, SRC_LEN)
    assert state.hidden.shape == (2, len(SRC_LENGTHS), 10)
    assert (state.cell is not None) == (rnn == "lstm")
    assert not torch.allclose(state.hidden[0], state.hidden[1])  # the bridge gives each layer its own start
    before, _ = model(SRC, SRC_LEN, TGT_IN)
    with torch.no_grad():
        model.decoder.rnn.input_to_gates[0].weight.add_(0.5)  # only layer 2 reads this
    after, _ = model(SRC, SRC_LEN, TGT_IN)
    assert not torch.allclose(before, after)


@pytest.mark.parametrize("rnn,attention", ALL_TYPES)
def test_tied_output_weight_is_the_embedding(rnn: str, attention: str) -> None:
    tied_config = variant_config(rnn, attention, "tied")
    tied = make_model(tied_config)
    untied = make_model(dataclasses.replace(tied_config, tie_embeddings=False))
    assert tied.decoder.output.weight is tied.decoder.embedding.weight
    assert untied.decoder.output.weight is not untied.decoder.embedding.weight
    assert count_parameters(untied) - count_parameters(tied) == TGT_VOCAB * tied_config.decoder_hidden
    optimiser = torch.optim.SGD(tied.parameters(), lr=0.5)
    logits, _ = tied(SRC, SRC_LEN, TGT_IN)
    masked_loss(logits, TGT_OUT).backward()
    optimiser.step()
    assert tied.decoder.output.weight is tied.decoder.embedding.weight
    state = tied.state_dict()
    assert torch.equal(state["decoder.output.weight"], state["decoder.embedding.weight"])
    # the loaded copy stays tied
    reloaded = make_model(tied_config, seed=5)
    reloaded.load_state_dict(state)
    assert reloaded.decoder.output.weight is reloaded.decoder.embedding.weight
    assert torch.equal(reloaded.decoder.embedding.weight, tied.decoder.embedding.weight)


def test_initialisation_is_seeded_with_zero_padding_rows() -> None:
    a, b = make_model(tiny_config("lstm")), make_model(tiny_config("lstm"))
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), name
    c = make_model(tiny_config("lstm"), seed=1)
    assert not torch.equal(a.decoder.output.weight, c.decoder.output.weight)
    for table in (a.encoder.embedding.weight, a.decoder.embedding.weight):
        assert (table[PAD_ID] == 0).all() and (table[PAD_ID + 1:].abs().sum(dim=1) > 0).all()


def test_dropout_acts_in_training_only() -> None:
    model = make_model(tiny_config("gru", "bahdanau", dropout=0.5, encoder_layers=2, decoder_layers=2))
    model.train()
    first, _ = model(SRC, SRC_LEN, TGT_IN)
    second, _ = model(SRC, SRC_LEN, TGT_IN)
    assert not torch.allclose(first, second)
    model.eval()
    first, _ = model(SRC, SRC_LEN, TGT_IN)
    second, _ = model(SRC, SRC_LEN, TGT_IN)
    assert torch.equal(first, second)


# --- scheduled sampling ------------------------------------------------------------------------


@pytest.mark.parametrize("rnn,attention", ALL_TYPES)
def test_teacher_forcing_ratio_one_is_deterministic_and_ratio_zero_differs(rnn: str, attention: str) -> None:
    model = make_model(tiny_config(rnn, attention)).eval()
    with torch.no_grad():
        gold, _ = model(SRC, SRC_LEN, TGT_IN, teacher_forcing_ratio=1.0)
        again, _ = model(SRC, SRC_LEN, TGT_IN, teacher_forcing_ratio=1.0)
        free, free_attention = model(SRC, SRC_LEN, TGT_IN, teacher_forcing_ratio=0.0)
    assert torch.equal(gold, again)
    assert free.shape == gold.shape
    if attention != "none":
        assert free_attention.shape == (len(SRC_LENGTHS), max(TGT_LENGTHS), max(SRC_LENGTHS))
    # position 0 is always fed BOS; afterwards a random model's own guesses differ from the gold
    assert torch.allclose(free[:, 0], gold[:, 0], atol=TOL)
    assert not torch.allclose(free, gold)


@pytest.mark.parametrize("rnn,attention", ALL_TYPES)
def test_teacher_forcing_ratio_zero_feeds_the_models_own_argmax(rnn: str, attention: str) -> None:
    model = make_model(tiny_config(rnn, attention)).eval()
    with torch.no_grad():
        free, _ = model(SRC, SRC_LEN, TGT_IN, teacher_forcing_ratio=0.0)
        memory, state = model.encode(SRC, SRC_LEN)
        tokens = TGT_IN[:, 0]
        expected = []
        for _ in range(TGT_IN.size(1)):
            logits, state, _ = model.step(tokens, state, memory)
            expected.append(logits)
            tokens = logits.argmax(dim=-1)
    assert torch.allclose(free, torch.stack(expected, dim=1), atol=TOL, rtol=0)


def test_scheduled_sampling_trains_and_is_reproducible_under_a_seed() -> None:
    model = make_model(tiny_config("lstm", "bahdanau")).train()
    torch.manual_seed(7)
    half, _ = model(SRC, SRC_LEN, TGT_IN, teacher_forcing_ratio=0.5)
    torch.manual_seed(7)
    half_again, _ = model(SRC, SRC_LEN, TGT_IN, teacher_forcing_ratio=0.5)
    assert torch.equal(half, half_again)
    loss = masked_loss(half, TGT_OUT)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
