"""Transformer-only properties: the causal mask, the key/value cache under beam reordering,
shared embeddings, layer-drop and the heatmap layer. Properties shared with the RNNs are
parametrised over both families in test_model.py, test_search.py and test_training.py."""

from __future__ import annotations

import pytest
import torch

from seq2seq.config import ModelConfig, load_config
from seq2seq.errors import UserError
from seq2seq.model.build import build_model, count_parameters
from seq2seq.model.transformer import Transformer
from seq2seq.quantization import quantize_model
from seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID

VOCAB = 23
TOL = 1e-5


def make(seed: int = 0, **overrides) -> Transformer:
    shape = dict(type="transformer", d_model=16, heads=4, ff_size=24, encoder_layers=2, decoder_layers=3,
                 dropout=0.0, attention_dropout=0.0, max_positions=40)
    shape.update(overrides)
    torch.manual_seed(seed)
    return build_model(ModelConfig(**shape), VOCAB, VOCAB).eval()


def batch(lengths: list[int], seed: int, bos: bool) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    rows = torch.full((len(lengths), max(lengths)), PAD_ID, dtype=torch.long)
    for i, length in enumerate(lengths):
        rows[i, :length] = torch.randint(4, VOCAB, (length,), generator=generator)
        rows[i, 0 if bos else length - 1] = BOS_ID if bos else EOS_ID
    return rows


SRC = batch([5, 9, 3], seed=1, bos=False)
SRC_LEN = (SRC != PAD_ID).sum(1)
TGT = batch([7, 7, 7], seed=2, bos=True)


def test_changing_a_later_target_token_never_changes_earlier_logits() -> None:
    model = make()
    changed = TGT.clone()
    changed[:, 4] = (changed[:, 4] + 1 - 4) % (VOCAB - 4) + 4
    with torch.no_grad():
        before, _ = model(SRC, SRC_LEN, TGT)
        after, _ = model(SRC, SRC_LEN, changed)
    assert torch.allclose(before[:, :4], after[:, :4], atol=TOL, rtol=0)
    assert not torch.allclose(before[:, 4:], after[:, 4:], atol=1e-3)


def test_cache_follows_beam_reordering() -> None:
    """Decode three steps, reorder and repeat rows as a beam does, go on: each row's logits equal a
    teacher-forced pass over the prefix that row now holds."""
    model = make()
    with torch.no_grad():
        memory, state = model.encode(SRC, SRC_LEN)
        prefix = TGT[:, :1]
        for t in range(1, 3):
            _, state, _ = model.step(prefix[:, -1], state, memory)
            prefix = torch.cat([prefix, TGT[:, t : t + 1]], dim=1)
        order = torch.tensor([2, 0, 0])
        state, memory, prefix, src = state.select(order), memory.select(order), prefix[order], SRC[order]
        for t in range(3, 6):
            logits, state, _ = model.step(prefix[:, -1], state, memory)
            full, _ = model(src, SRC_LEN[order], prefix)
            assert torch.allclose(logits, full[:, -1], atol=TOL, rtol=0), f"step {t}"
            prefix = torch.cat([prefix, logits.argmax(-1, keepdim=True)], dim=1)


def test_shared_embeddings_are_one_matrix_for_source_target_and_output() -> None:
    shared = make(tie_embeddings=True, share_embeddings=True)
    separate = make()
    assert shared.src_embedder.tokens.weight is shared.tgt_embedder.tokens.weight is shared.output.weight
    assert count_parameters(separate) - count_parameters(shared) == 2 * VOCAB * 16
    state = shared.state_dict()
    reloaded = make(seed=5, tie_embeddings=True, share_embeddings=True)
    reloaded.load_state_dict(state)
    assert reloaded.src_embedder.tokens.weight is reloaded.output.weight
    assert torch.equal(reloaded.output.weight, shared.output.weight)


def test_layerdrop_skips_layers_in_training_only() -> None:
    model = make(decoder_layerdrop=0.5)
    with torch.no_grad():
        first, _ = model(SRC, SRC_LEN, TGT)
        second, _ = model(SRC, SRC_LEN, TGT)
        assert torch.equal(first, second)
        model.train()
        torch.manual_seed(0)
        outputs = {tuple(model(SRC, SRC_LEN, TGT)[0].flatten()[:5].tolist()) for _ in range(12)}
    assert len(outputs) > 1  # different layer subsets, different outputs


def test_heatmap_layer_is_chosen_and_rows_sum_to_one() -> None:
    first, last = make(attention_layer=0), make(attention_layer=-1)
    with torch.no_grad():
        _, first_weights = first(SRC, SRC_LEN, TGT)
        _, last_weights = last(SRC, SRC_LEN, TGT)
    assert first_weights.shape == (3, TGT.size(1), SRC.size(1))
    assert not torch.allclose(first_weights, last_weights)  # same weights (same seed), other layer
    assert torch.allclose(first_weights.sum(-1), torch.ones(3, TGT.size(1)), atol=TOL)
    assert (first_weights[SRC.eq(PAD_ID).unsqueeze(1).expand_as(first_weights)] == 0).all()


def test_sinusoids_are_not_saved_but_learned_positions_are() -> None:
    assert not any("sinusoids" in key for key in make().state_dict())
    assert "src_embedder.learned.weight" in make(positions="learned").state_dict()


def test_int8_quantization_reaches_every_projection() -> None:
    model = make()
    int8 = quantize_model(model)
    linear = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]
    quantized = {name for name, module in int8.named_modules() if "quantized" in type(module).__module__}
    assert len(linear) == 2 * 6 + 3 * 10 + 1  # encoder: 4 attention + 2 feed-forward; decoder: 8 + 2; output
    assert set(linear) <= quantized
    with torch.no_grad():
        memory, state = int8.encode(SRC, SRC_LEN)
        logits, _, _ = int8.step(TGT[:, 0], state, memory)
        float_logits, _ = model(SRC, SRC_LEN, TGT[:, :1])
    assert torch.allclose(logits, float_logits[:, 0], atol=0.1)


def test_a_model_too_large_for_memory_is_a_user_error() -> None:
    with pytest.raises(UserError, match="cannot build a transformer"):
        build_model(ModelConfig(type="transformer", d_model=65536, heads=1, ff_size=65536, encoder_layers=64,
                                decoder_layers=64), 1_000_000, 1_000_000)


def test_sequences_longer_than_max_positions_are_a_config_error() -> None:
    with pytest.raises(UserError, match="decoding.max_len: allows sequences of 201 positions"):
        load_config(None, ["model.type=transformer", "model.max_positions=200", "data.max_src_pieces=50",
                           "data.max_tgt_pieces=50", "decoding.max_input_pieces=50"])
