"""List encoders and the character encoder: padding, empty lists, short lists."""

from __future__ import annotations

import pytest
import torch

from lfengine.builder.dropout import Dropout
from lfengine.builder.encoders import (
    CharEncoder,
    MaskedCnnEncoder,
    MaskedLstmEncoder,
    MaskedMeanEncoder,
    encode_positions,
)


def _encoders():
    torch.manual_seed(0)
    return [MaskedCnnEncoder(4, (3, 4, 5), 6), MaskedLstmEncoder(4, 5), MaskedMeanEncoder(4)]


@pytest.mark.parametrize("encoder", _encoders(), ids=["cnn", "lstm", "mean"])
def test_padding_and_batch_company_do_not_change_the_encoding(encoder):
    encoder.eval()
    torch.manual_seed(1)
    item = torch.randn(1, 2, 4)  # a list of 2 tokens, shorter than every CNN kernel
    alone = encoder(item, torch.tensor([2]))
    # The same list padded to 9 steps with garbage, next to a long list and an empty one.
    batch = torch.randn(3, 9, 4) * 10
    batch[1, :2] = item[0]
    together = encoder(batch, torch.tensor([9, 2, 0]))
    assert torch.allclose(together[1], alone[0], atol=1e-6)
    assert torch.equal(together[2], torch.zeros(encoder.output_size))
    assert together.shape == (3, encoder.output_size)


@pytest.mark.parametrize("encoder", _encoders(), ids=["cnn", "lstm", "mean"])
def test_a_batch_of_empty_lists_gives_zeros(encoder):
    out = encoder(torch.zeros(2, 0, 4), torch.tensor([0, 0]))
    assert torch.equal(out, torch.zeros(2, encoder.output_size))


def test_lstm_encoder_uses_the_state_at_the_real_end():
    torch.manual_seed(2)
    encoder = MaskedLstmEncoder(3, 4)
    seq = torch.randn(1, 5, 3)
    _, (hidden, _) = encoder.lstm(seq)
    expected = torch.cat([hidden[0, 0], hidden[1, 0]])
    padded = torch.cat([seq, torch.ones(1, 3, 3)], dim=1)
    assert torch.allclose(encoder(padded, torch.tensor([5]))[0], expected, atol=1e-6)


def test_cnn_gradients_flow_and_ignore_padding():
    torch.manual_seed(3)
    encoder = MaskedCnnEncoder(4, (3,), 5)
    inputs = torch.randn(2, 6, 4, requires_grad=True)
    encoder(inputs, torch.tensor([6, 3])).sum().backward()
    assert inputs.grad[1, 3:].abs().sum() == 0
    assert inputs.grad[1, :3].abs().sum() > 0


def test_encode_positions_runs_only_real_sequence_positions():
    torch.manual_seed(4)
    encoder = MaskedMeanEncoder(2)
    inputs = torch.randn(2, 3, 4, 2)
    lengths = torch.tensor([[4, 1, 2], [2, 0, 0]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    out = encode_positions(encoder, inputs, lengths, mask)
    assert out.shape == (2, 3, 2)
    assert torch.allclose(out[0, 2], inputs[0, 2, :2].mean(0))
    assert torch.equal(out[1, 1:], torch.zeros(2, 2))


def test_char_encoder_handles_empty_words_and_padding():
    torch.manual_seed(5)
    encoder = CharEncoder(vocab_size=12, dims=4, filters=6, kernel=3, dropout=0.0).eval()
    chars = torch.tensor([[[3, 4, 5, 0, 0], [0, 0, 0, 0, 0]]])  # "abc" and an empty word
    out = encoder(chars)
    assert out.shape == (1, 2, 6)
    assert torch.equal(out[0, 1], torch.zeros(6))
    wider = torch.cat([chars, torch.zeros(1, 2, 7, dtype=torch.long)], dim=-1)
    assert torch.allclose(encoder(wider), out, atol=1e-6)
    masked = encoder(chars, mask=torch.tensor([[True, False]]))
    assert torch.allclose(masked, out, atol=1e-6)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_zeroes_a_share_p_and_scales_the_rest(p):
    torch.manual_seed(3)
    dropout = Dropout(p)
    inputs = torch.full((400, 1000), 2.0, requires_grad=True)
    out = dropout(inputs)
    zeroed = float((out == 0).float().mean())
    assert abs(zeroed - p) < 0.005  # 400k draws: the standard error is below 0.001
    kept = out[out != 0]
    assert torch.allclose(kept, torch.full_like(kept, 2.0 / (1 - p)))
    out.sum().backward()  # the gradient is the same mask, scaled the same way
    assert torch.equal(inputs.grad, out.detach() / 2.0)
    dropout.eval()
    assert torch.equal(dropout(inputs), inputs)


def test_dropout_is_repeatable_under_a_seed_and_a_plain_nn_dropout_for_torch():
    dropout = Dropout(0.5)
    inputs = torch.randn(50, 60)
    torch.manual_seed(5)
    first = dropout(inputs)
    torch.manual_seed(5)
    assert torch.equal(dropout(inputs), first)
    assert isinstance(dropout, torch.nn.Dropout) and Dropout(0.0)(inputs) is inputs
