"""The classical models beside an ejected network: the tagger's linear CRF (linear_crf.py) and
the text classifier's NB-weighted linear model (linear_text.py) with its gated evidence
(gated_evidence.py).

Each comes as the lines that build it (last in ``__init__``, as the built network does, so that
seeded training draws the same numbers), the methods that fit it (and train the gates) and mix
it into ``predict``, a line of the docstring's diagram and the lfengine names it imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lfengine.builder.config import ModelConfig
from lfengine.builder.linear_text import carried_by
from lfengine.data.batch import InputLayout


@dataclass
class Classical:
    init: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    diagram: list[str] = field(default_factory=list)
    imports: dict[str, set[str]] = field(default_factory=dict)


def _fit_hook(what: str, folds: bool = False) -> list[str]:
    return [
        "",
        "    def fit_before_training(self, train: Encoded) -> None:",
        f'        """Fit the {what} on the training split (once: a resumed run has it)."""',
        "        if not self.linear.fitted:",
        "            self.linear.fit(train)",
        *(
            ["        self.linear.fit_folds(train)  # for the gate, not stored: once per run"]
            if folds
            else []
        ),
    ]


def tagger_classical(config: ModelConfig) -> Classical:
    """The linear CRF, its marginals averaged with the network's (nothing without linear_crf)."""
    if not config.linear_crf:
        return Classical()
    labels = "LABELS" if config.chunk_constraints else "None"
    own, network = (
        (
            "self.crf.prediction(self(batch), batch.mask, batch.lengths)",
            "self.crf.marginals(self(batch).double(), batch.mask)",
        )
        if config.crf
        else ("super().predict(batch)", "torch.softmax(self(batch).float(), dim=-1)")
    )
    return Classical(
        init=[
            "        with torch.random.fork_rng(devices=[]):  # draws nothing: training as without it",
            f"            self.linear = LinearCrf(layout, {labels})",
        ],
        methods=[
            "",
            "    def predict(self, batch: Batch) -> Prediction:",
            '        """The mean of this network\'s and the classical CRF\'s probabilities, decoded."""',
            "        if not self.linear.fitted:",
            f"            return {own}",
            f"        return self.linear.mix(batch, {network})",
            *_fit_hook("classical CRF"),
        ],
        diagram=["marginals averaged with a classical CRF's (sparse token features, fitted before training)"],
        imports={
            "lfengine.builder.base": {"Prediction"},
            "lfengine.builder.linear_crf": {"LinearCrf"},
            "lfengine.data.encoding": {"Encoded"},
        },
    )


def classifier_classical(layout: InputLayout, config: ModelConfig) -> Classical:
    """The NB-weighted linear model, mixed in at the share chosen on validation, with
    ``gated_evidence`` through its gates (nothing without linear_text or token lists)."""
    if not carried_by(layout, config):
        return Classical()
    if config.gated_evidence:
        return _gated_text()
    return Classical(
        init=["        self.linear = LinearText(layout)  # from zeros, drawing nothing"],
        methods=[
            "",
            "    def predict(self, batch: Batch) -> Prediction:",
            '        """share x the linear model\'s label distribution + (1 - share) x this network\'s."""',
            "        if not self.linear.fitted:",
            "            return super().predict(batch)",
            "        return self.linear.mix(batch, torch.softmax(self(batch).float(), dim=-1))",
            *_fit_hook("linear model"),
            "",
            "    def choose_on_validation(self, val: Encoded) -> None:",
            '        """Set the linear model\'s share: the likeliest validation labels."""',
            "        self.linear.choose_share(val, self)",
        ],
        diagram=[
            "label distribution mixed with an NB-weighted logistic regression's (words and word pairs, "
            "fitted before training; its share chosen at each validation)"
        ],
        imports=_TEXT_IMPORTS,
    )


_TEXT_IMPORTS = {
    "lfengine.builder.base": {"Prediction"},
    "lfengine.builder.linear_text": {"LinearText"},
    "lfengine.data.encoding": {"Encoded"},
}


def _gated_text() -> Classical:
    """The linear model read through gates that train beside the network (gated_evidence.py)."""
    return Classical(
        init=[
            "        self.linear = LinearText(layout)  # from zeros, drawing nothing",
            "        with torch.random.fork_rng(devices=[]):  # the network starts as without the gates",
            "            self.gate = GatedEvidence(layout, self.features.embeddings)",
        ],
        methods=[
            "",
            "    def gated_scores(self, batch: Batch) -> torch.Tensor | None:",
            '        """(B, C) the linear model\'s label scores through the gates (None before its fit)."""',
            "        if not self.linear.fitted:",
            "            return None",
            "        return self.gate(batch, self.features.embeddings, self.linear)",
            "",
            "    def loss(self, batch: Batch) -> torch.Tensor:",
            '        """The network\'s loss; in training, plus the gates\' (they train beside it)."""',
            "        own = super().loss(batch)",
            "        gated = self.gated_scores(batch) if self.training else None",
            "        if gated is None:",
            "            return own",
            "        return own + nn.functional.cross_entropy(gated, batch.targets.long())",
            "",
            "    def predict(self, batch: Batch) -> Prediction:",
            '        """share x the gated linear model\'s distribution + (1 - share) x this network\'s."""',
            "        gated = self.gated_scores(batch)",
            "        if gated is None:",
            "            return super().predict(batch)",
            "        linear = torch.softmax(gated.double(), dim=-1)",
            "        return self.linear.mix(batch, torch.softmax(self(batch).float(), dim=-1), linear)",
            *_fit_hook("linear model", folds=True),
            "",
            "    def choose_on_validation(self, val: Encoded) -> None:",
            '        """Set the gated linear model\'s share: the likeliest validation labels."""',
            "        self.linear.choose_share(val, self, self.gated_scores)",
        ],
        diagram=[
            "label distribution mixed with an NB-weighted logistic regression's (words and word pairs, "
            "fitted before training), each word's and word pair's weight times a gate in -1..3 from "
            "a width-3 convolution over the word vectors (trained beside the network); its share "
            "chosen at each validation"
        ],
        imports={**_TEXT_IMPORTS, "lfengine.builder.gated_evidence": {"GatedEvidence"}},
    )
