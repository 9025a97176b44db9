"""Constrained chunk transitions: a CRF over LF chunk labels never decodes ``X|I`` without an
open X, whatever the emissions; its likelihood and marginals are those of the valid paths only;
models stored before the setting existed load and decode as they did."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from lfengine import service
from lfengine.builder.crf import Crf, chunk_transitions
from lfengine.data.synthetic import write_sequence_corpus
from lfengine.options import TrainOptions

LABELS = ["O", "PER|B", "PER|I", "LOC|B", "LOC|I"]


def _valid(labels: list[str]) -> bool:
    """Every X|I continues an X opened by the previous label (the rule, written independently)."""
    previous: set[str] = set()
    for label in labels:
        parts = [] if label == "O" else [p.split("|") for p in label.split(",")]
        if any(code == "I" and kind not in previous for kind, code in parts):
            return False
        previous = {kind for kind, _ in parts}
    return True


def _crf(labels: list[str], seed: int = 0) -> Crf:
    torch.manual_seed(seed)
    crf = Crf(len(labels), labels)
    with torch.no_grad():
        crf.transitions.normal_()
        crf.start.normal_()
        crf.end.normal_()
    return crf


def test_the_allowed_transitions_of_chunk_labels():
    allowed, start = chunk_transitions(LABELS + ["PER|B,LOC|I"])
    assert start.tolist() == [True, True, False, True, False, False]
    # rows: from; columns: to
    assert allowed[0].tolist() == [True, True, False, True, False, False]  # O -> no I
    assert allowed[1].tolist() == [True, True, True, True, False, False]  # PER|B -> PER|I
    assert allowed[4].tolist() == [True, True, False, True, True, True]  # LOC|I -> LOC|I, PER|B+LOC|I
    assert allowed[5, 2] and allowed[5, 4]  # PER|B,LOC|I continues both


def test_decoding_never_produces_an_invalid_path_even_against_huge_emissions():
    crf = _crf(LABELS)
    torch.manual_seed(3)
    emissions = torch.randn(64, 12, len(LABELS)) * 50
    emissions[..., 2] += 1e6  # every token screams PER|I, the first one too
    emissions[::2, :, 4] += 2e6
    lengths = torch.randint(0, 13, (64,))
    mask = torch.arange(12).unsqueeze(0) < lengths.unsqueeze(1)
    for dtype in (torch.float32, torch.float64):
        paths = crf.decode(emissions.to(dtype), mask)
        for path, length in zip(paths.tolist(), lengths.tolist(), strict=True):
            assert _valid([LABELS[i] for i in path[:length]])
    free = Crf(len(LABELS))
    free.load_state_dict(crf.state_dict())
    assert not _valid(
        [LABELS[i] for i in free.decode(emissions[:1], mask[:1])[0, : int(lengths[0])].tolist()]
    )


def _valid_paths(length: int) -> list[tuple[int, ...]]:
    paths = itertools.product(range(len(LABELS)), repeat=length)
    return [p for p in paths if _valid([LABELS[i] for i in p])]


def _score(crf: Crf, emissions: torch.Tensor, path: tuple[int, ...]) -> torch.Tensor:
    score = crf.start[path[0]] + crf.end[path[-1]] + sum(emissions[t, i] for t, i in enumerate(path))
    return score + sum(crf.transitions[path[t - 1], path[t]] for t in range(1, len(path)))


def test_viterbi_likelihood_and_marginals_are_those_of_the_valid_paths():
    crf = _crf(LABELS, seed=1)
    emissions = torch.randn(1, 4, len(LABELS), dtype=torch.float64)
    mask = torch.ones(1, 4, dtype=torch.bool)
    paths = _valid_paths(4)
    scores = torch.stack([_score(crf, emissions[0], p).double() for p in paths])
    assert tuple(crf.decode(emissions, mask)[0].tolist()) == paths[int(scores.argmax())]
    torch.testing.assert_close(crf.log_partition(emissions, mask)[0], torch.logsumexp(scores, 0))
    gold = torch.tensor([paths[7]])
    nll = crf.neg_log_likelihood(emissions, gold, mask)[0]
    torch.testing.assert_close(nll, torch.logsumexp(scores, 0) - scores[7])
    marginals = crf.marginals(emissions, mask)[0]
    probs = (scores - torch.logsumexp(scores, 0)).exp()
    expected = torch.zeros(4, len(LABELS), dtype=torch.float64)
    for p, prob in zip(paths, probs, strict=True):
        expected[torch.arange(4), torch.tensor(p)] += prob
    torch.testing.assert_close(marginals, expected)
    assert marginals[0, 2] == 0 and marginals[0, 4] == 0  # no sequence starts inside a chunk


def test_a_gold_path_the_constraints_forbid_costs_its_unconstrained_loss_and_grads_stay_finite():
    crf = _crf(LABELS, seed=2)
    emissions = torch.randn(2, 3, len(LABELS), requires_grad=True)
    mask = torch.ones(2, 3, dtype=torch.bool)
    gold = torch.tensor([[2, 2, 0], [1, 2, 0]])  # the first starts with PER|I (cut at a sentence edge)
    nll = crf.neg_log_likelihood(emissions, gold, mask)
    free = Crf(len(LABELS))
    free.load_state_dict(crf.state_dict())
    torch.testing.assert_close(nll[0], free.neg_log_likelihood(emissions, gold, mask)[0])
    # a valid gold path: normalised over fewer paths, so more likely than without constraints
    assert 0 < float(nll[1].detach()) < float(free.neg_log_likelihood(emissions, gold, mask)[1].detach())
    nll.sum().backward()
    assert torch.isfinite(emissions.grad).all() and torch.isfinite(crf.transitions.grad).all()


def test_a_trained_tagger_is_constrained_and_an_older_stored_model_loads_unconstrained(tmp_path):
    meta = write_sequence_corpus(tmp_path / "data", 40, seed=5)
    model_dir = tmp_path / "m"
    service.train(str(meta), str(model_dir), TrainOptions(max_epochs=1, threads=1, device="cpu"))
    model = service.load_model(str(model_dir))
    assert model.metadata["config"]["chunk_constraints"] is True
    assert model.predictor.model.crf.constrained
    stored = json.loads((model_dir / "model.json").read_text())
    del stored["metadata"]["config"]["chunk_constraints"]  # as written before the setting existed
    (model_dir / "model.json").write_text(json.dumps(stored))
    old = service.load_model(str(model_dir))
    assert not old.predictor.model.crf.constrained


def test_chunk_constraints_need_the_crf_and_chunk_labels(tmp_path):
    from lfengine.errors import OptionError

    meta = write_sequence_corpus(tmp_path / "data", 20, seed=5)
    with pytest.raises(OptionError, match="chunk_constraints needs the CRF"):
        service.train(
            str(meta),
            str(tmp_path / "m"),
            TrainOptions(max_epochs=1, threads=1, model={"crf": False, "chunk_constraints": True}),
        )
