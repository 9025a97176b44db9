"""CRF checked against brute-force enumeration of every label path on tiny cases."""

from __future__ import annotations

import itertools

import pytest
import torch

from lfengine.builder.crf import Crf
from lfengine.data.batch import IGNORE_INDEX


def _random_case(seed: int, lengths: list[int], labels: int = 3, steps: int | None = None):
    torch.manual_seed(seed)
    crf = Crf(labels)
    with torch.no_grad():  # make the transitions matter more than their small default start
        crf.transitions.normal_()
        crf.start.normal_()
        crf.end.normal_()
    steps = max(lengths) if steps is None else steps
    emissions = torch.randn(len(lengths), steps, labels)
    mask = torch.arange(steps).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    return crf, emissions, mask


def _path_score(crf: Crf, emissions: torch.Tensor, path: tuple[int, ...]) -> torch.Tensor:
    score = crf.start[path[0]] + crf.end[path[-1]]
    for t, label in enumerate(path):
        score = score + emissions[t, label]
        if t:
            score = score + crf.transitions[path[t - 1], label]
    return score


def _enumerate(crf: Crf, emissions: torch.Tensor, length: int):
    paths = list(itertools.product(range(crf.num_labels), repeat=length))
    scores = torch.stack([_path_score(crf, emissions[:length], p) for p in paths])
    return paths, scores


LENGTHS = [[4, 2, 1, 3], [1], [3, 3], [2, 0, 4]]


@pytest.mark.parametrize("lengths", LENGTHS)
def test_log_partition_and_path_score_match_enumeration(lengths):
    crf, emissions, mask = _random_case(1, lengths)
    log_z = crf.log_partition(emissions, mask)
    for b, length in enumerate(lengths):
        if length == 0:
            assert log_z[b] == 0
            continue
        paths, scores = _enumerate(crf, emissions[b], length)
        assert torch.allclose(log_z[b], torch.logsumexp(scores, 0), atol=1e-5)
        gold = torch.tensor(list(paths[5 % len(paths)]) + [IGNORE_INDEX] * (emissions.shape[1] - length))
        score = crf.path_score(emissions[b : b + 1], gold.unsqueeze(0), mask[b : b + 1])
        assert torch.allclose(score[0], scores[5 % len(paths)], atol=1e-5)


@pytest.mark.parametrize("lengths", LENGTHS)
def test_viterbi_finds_the_best_path(lengths):
    crf, emissions, mask = _random_case(2, lengths)
    decoded = crf.decode(emissions, mask)
    for b, length in enumerate(lengths):
        assert (decoded[b, length:] == IGNORE_INDEX).all()
        if length == 0:
            continue
        paths, scores = _enumerate(crf, emissions[b], length)
        assert tuple(decoded[b, :length].tolist()) == paths[int(scores.argmax())]


@pytest.mark.parametrize("lengths", LENGTHS)
def test_marginals_are_probabilities_matching_enumeration(lengths):
    crf, emissions, mask = _random_case(3, lengths)
    marginals = crf.marginals(emissions, mask)
    for b, length in enumerate(lengths):
        assert (marginals[b, length:] == 0).all()
        if length == 0:
            continue
        paths, scores = _enumerate(crf, emissions[b], length)
        probs = torch.softmax(scores, 0)
        expected = torch.zeros(length, crf.num_labels)
        for p, path in zip(probs, paths, strict=True):
            for t, label in enumerate(path):
                expected[t, label] += p
        assert torch.allclose(marginals[b, :length], expected, atol=1e-5)
        assert torch.allclose(marginals[b, :length].sum(-1), torch.ones(length), atol=1e-5)


def test_nll_is_positive_and_trains_towards_the_gold_path():
    crf, emissions, mask = _random_case(4, [3, 2])
    emissions.requires_grad_(True)
    gold = torch.tensor([[2, 0, 1], [1, 1, IGNORE_INDEX]])
    nll = crf.neg_log_likelihood(emissions, gold, mask)
    assert (nll > 0).all()
    nll.sum().backward()
    assert emissions.grad is not None and torch.isfinite(emissions.grad).all()
    assert (emissions.grad[1, 2] == 0).all()  # padding receives no gradient


def test_padding_does_not_change_any_result():
    crf, emissions, mask = _random_case(5, [3, 1])
    padded = torch.cat([emissions, torch.randn(2, 4, 3) * 50], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(2, 4, dtype=torch.bool)], dim=1)
    assert torch.allclose(crf.log_partition(emissions, mask), crf.log_partition(padded, padded_mask))
    assert torch.equal(crf.decode(emissions, mask), crf.decode(padded, padded_mask)[:, :3])
    assert torch.allclose(
        crf.marginals(emissions, mask), crf.marginals(padded, padded_mask)[:, :3], atol=1e-6
    )


def test_batch_without_steps():
    crf = Crf(3)
    emissions, mask = torch.zeros(2, 0, 3), torch.zeros(2, 0, dtype=torch.bool)
    assert crf.decode(emissions, mask).shape == (2, 0)
    assert crf.marginals(emissions, mask).shape == (2, 0, 3)
    assert (crf.neg_log_likelihood(emissions, torch.zeros(2, 0, dtype=torch.long), mask) == 0).all()


def test_inference_runs_in_the_dtype_of_the_emissions_float64_for_the_tagger():
    """Forward-backward in float32 rounds differently with the batch and the CPU (1e-5 apart on
    an AVX2 machine); given float64 emissions every step stays in float64."""
    crf, emissions, mask = _random_case(2, [5, 3, 1])
    wide = emissions.double()
    marginals = crf.marginals(wide, mask)
    assert marginals.dtype == torch.float64 and crf.log_partition(wide, mask).dtype == torch.float64
    narrow = crf.marginals(emissions, mask)
    torch.testing.assert_close(narrow.double(), marginals, rtol=1e-5, atol=1e-6)
    assert torch.equal(crf.decode(wide, mask), crf.decode(emissions, mask))


def test_the_tagger_predicts_with_float64_marginals(tmp_path):
    from lfengine import service
    from lfengine.data.batching import collate
    from lfengine.data.reader import read_data
    from lfengine.data.synthetic import write_sequence_corpus
    from lfengine.options import TrainOptions

    meta = write_sequence_corpus(tmp_path, 30, seed=4)
    model_dir = tmp_path / "m"
    service.train(str(meta), str(model_dir), TrainOptions(max_epochs=1, threads=1, model={"crf": True}))
    model = service.load_model(str(model_dir))
    data = read_data(model.codec, str(meta).replace(".meta.", ".data.")).data
    batch = collate(data, torch.arange(len(data)).numpy())
    with torch.inference_mode():
        prediction = model.predictor.model.predict(batch)
    assert prediction.distribution.dtype == torch.float64
