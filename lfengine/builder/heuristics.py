"""Every size and training heuristic, in one place, each with its reason.

``choose_config`` fills a ModelConfig: a setting given by the user (a TrainOptions field or a
key of ``TrainOptions.model``) wins; else the chosen module's ``config_defaults``; else the
rule below. Rules run in the order of ``RULES`` and may read settings chosen before them.
The data sets this is tuned for are small (100 to a few thousand training items).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from lfengine.builder.config import ModelConfig, coerce_value, field_names
from lfengine.errors import OptionError
from lfengine.options import TrainOptions
from lfengine.settings import OPTIONS, model_setting_of

if TYPE_CHECKING:  # torch and numpy load where a rule runs, not when --help reads RULES' docstrings
    from lfengine.data.batch import InputLayout

HEURISTIC = "heuristic"
OPTION = "option"


@dataclass
class Context:
    layout: InputLayout
    n_train: int
    values: dict[str, Any] = field(default_factory=dict)


def _module(ctx: Context) -> str | None:
    """The auto-built network for the data's task."""
    return None


def _list_encoder(ctx: Context) -> str:
    """CNN: on short texts Kim's CNN matches a BiLSTM's accuracy and trains several times faster."""
    return "cnn"


def _cnn_kernels(ctx: Context) -> tuple[int, ...]:
    """Widths 3, 4, 5 (Kim 2014): tri- to five-gram detectors."""
    return (3, 4, 5)


def _cnn_channels(ctx: Context) -> int:
    """100 filters per width (Kim 2014): 300 features per list column."""
    return 100


def _list_lstm_hidden(ctx: Context) -> int:
    """100 per direction: 200 features, close to the CNN's 300."""
    return 100


def _char_encoder(ctx: Context) -> bool:
    """On for tagging when the data carry characters: spelling shows unseen words' classes."""
    return ctx.layout.is_sequence and ctx.layout.chars is not None


def _char_dims(ctx: Context) -> int:
    """30 (Ma & Hovy 2016): characters are few, small vectors suffice."""
    return 30


def _char_filters(ctx: Context) -> int:
    """50 filters (NCRF++'s default for its char CNN). 100 gained little on unseen documents once
    ``word_shape`` is on (seq-pos1 tail 0.896 vs 0.892, seq-pos2 0.268 vs 0.255, seeds 1-3,
    bench/bench_generalisation.py) for 14 % more CPU per epoch on seq-pos1."""
    return 50


def _char_kernel(ctx: Context) -> int:
    """Width 3 (Ma & Hovy 2016): character trigrams (affixes)."""
    return 3


def _word_shape(ctx: Context) -> bool:
    """On with the character encoder: casing and digits flag the class of a word never seen in
    training (a capitalised unknown word is mostly a name), which the character CNN's max-pooled
    trigrams show only weakly (Reimers & Gurevych 2017's casing feature)."""
    return bool(ctx.values["char_encoder"])


def _affix_dims(ctx: Context) -> int:
    """0 (off). Hashed 1-4 character prefix/suffix embeddings (``affix_dims=20``, the CRF
    baseline's winning features) raised seq-pos1's unseen tail (token accuracy 0.899 -> 0.904,
    unknown words 0.732 -> 0.765) but lowered seq-pos2's (span F1 0.227 -> 0.170) and the
    generated NER-like set's (0.774 -> 0.767), seeds 1-3 (seq-pos1 1-2), bench/baselines_seq.py:
    the character CNN and shape flags already carry most of that signal. Worth a try on POS-like
    data (``--set affix_dims=20``)."""
    return 0


def _crf(ctx: Context) -> bool:
    """On for chunk labels (X|B / X|I / O): a CRF learns that X|I follows X|B or X|I."""
    from lfengine.evaluation.metrics import is_chunk_label_set

    return ctx.layout.is_sequence and is_chunk_label_set(ctx.layout.labels)


def _chunk_constraints(ctx: Context) -> bool:
    """On with the CRF over chunk labels: a path that continues a chunk never opened (``X|I``
    after ``O`` or after ``Y``) is forbidden in training and decoding; GATE would drop such a
    token from its span (Lample et al. 2016 constrain IOB transitions the same way)."""
    from lfengine.evaluation.metrics import is_chunk_label_set

    return bool(ctx.values["crf"]) and is_chunk_label_set(ctx.layout.labels)


def _linear_crf(ctx: Context) -> bool:
    """On for sequence tagging: a classical CRF over the columns, the lowercased word, 1-4
    character affixes, the casing shape and the neighbours' words and shapes, fitted before the
    network and averaged with it in every prediction. Alone, that CRF led the tagger on the
    NER-like set and seq-pos1; averaged, the two led both (held-out tails, seeds 1-5,
    bench/baselines_seq.py): ner-synth-1500 span F1 0.762 -> 0.796 (the CRF 0.784), seq-pos1
    token accuracy 0.894 -> 0.905 (the CRF 0.904). On pos-synth-1500, where the network alone
    led the CRF by 2 points, 0.990 -> 0.988 (docs/training.md)."""
    return ctx.layout.is_sequence


def _lstm_hidden(ctx: Context) -> int:
    """100 per direction for < 1000 sequences, 150 below 10000, else 200: capacity follows data."""
    if ctx.n_train < 1000:
        return 100
    return 150 if ctx.n_train < 10000 else 200


def _lstm_layers(ctx: Context) -> int:
    """One layer: a second rarely helps tagging on small data (Reimers & Gurevych 2017)."""
    return 1


def _dropout(ctx: Context) -> float:
    """0.5 between learned layers: the standard for small data (Kim 2014; Lample et al. 2016)."""
    return 0.5


def _embedding_dropout(ctx: Context) -> float:
    """Classification 0.2; sequences 0, since the tagger's input dropout already covers embeddings."""
    return 0.0 if ctx.layout.is_sequence else 0.2


def _hidden_layers(ctx: Context) -> int:
    """0 for classification whose only inputs are token lists encoded by the CNN: the CNN is the
    learned feature layer and the label layer reads its max-pooled features directly, as in Kim
    (2014). A hidden layer on top of it overfit: on class-ngram-sp1's unseen tail (seeds 1-16,
    bench/bench_generalisation.py) 0 layers gave 0.645 accuracy against 0.625, higher on 12
    seeds and lower on 3, and cut the validation-tail gap from 0.057 to 0.021 (over mean-pooled
    embeddings the hidden layer helped: 0.631 against 0.620, seeds 1-8). Else one hidden layer,
    which combines the columns of window and numeric data (the old wrapper's linear-only
    classifier underfit them, defect C11)."""
    layout = ctx.layout
    only_lists = bool(layout.lists) and not (layout.nominal or layout.numeric or layout.kinds)
    text_cnn = layout.task == "classification" and only_lists and ctx.values["list_encoder"] == "cnn"
    return 0 if text_cnn else 1


def _wide_ngrams(ctx: Context) -> int:
    """0 (off): a linear part over words and hashed bigrams (2) beside the text CNN did not beat
    the CNN alone on unseen documents across data sizes (bench/bench_baselines.py); opt in with
    wide_ngrams=2. Training it at 30x the rate, or as a separate model whose probabilities are
    averaged with the network's, gained 2 points on polarity-1k but lost 0.7-4 on polarity-4k
    (docs/training.md, "Against classical models")."""
    return 0


def _linear_text(ctx: Context) -> bool:
    """On for classification whose inputs are all token lists (text): an NB-weighted logistic
    regression over their words and word pairs, fitted before the network, mixed into every
    prediction at the share under which the validation labels are likeliest. Unseen documents,
    network alone -> with it (bench/bench_baselines.py, docs/training.md): class-ngram-sp1 0.630
    -> 0.653 (best linear model 0.650), polarity-1k 0.647 -> 0.688 (0.689), polarity-4k 0.771 ->
    0.776 (0.742), polarity-8k 0.798 -> 0.800 (0.766): 2-4 points where a linear model beats the
    CNN, a little where the CNN wins."""
    layout = ctx.layout
    return (
        layout.task == "classification"
        and bool(layout.lists)
        and not (layout.nominal or layout.numeric or layout.kinds)
    )


def _gated_evidence(ctx: Context) -> bool:
    """On with ``linear_text``: the linear model enters the mix through gates that its words'
    contexts set (builder/gated_evidence.py), trained beside the network. Unseen documents,
    defaults without -> with them (bench/bench_baselines.py, docs/training.md): polarity-1k 0.688
    -> 0.719 (best linear model 0.689), polarity-2k 0.724 -> 0.729 (0.719), seeds 1-5; polarity-4k
    0.776 -> 0.774, polarity-8k 0.800 -> 0.801, seeds 1-3: a gain where the linear model is the
    stronger one, as on the real 8.5k-sentence polarity set of issue 18, and level elsewhere."""
    return bool(ctx.values["linear_text"])


def _hidden_size(ctx: Context) -> int:
    """Half the concatenated input, kept within 32..200: enough to combine features, small
    enough not to overfit a few hundred items."""
    return min(200, max(32, _classifier_input_size(ctx) // 2))


def _learning_rate(ctx: Context) -> float:
    """Adam 2e-3 for small data (few steps per epoch), 1e-3 from 5000 items on."""
    return 2e-3 if ctx.n_train < 5000 else 1e-3


def _batch_size(ctx: Context) -> int:
    """About 32 updates per epoch, within 8..64 instances (8..32 sequences): small data learn
    more from many small steps."""
    if ctx.layout.is_sequence:
        return min(32, max(8, ctx.n_train // 32))
    return min(64, max(8, ctx.n_train // 32))


def _max_epochs(ctx: Context) -> int:
    """100 below 2000 items, else 50: early stopping normally ends training long before."""
    return 100 if ctx.n_train < 2000 else 50


def _es_patience(ctx: Context) -> int:
    """8 validations below 500 items (small validation sets are noisy), 5 below 5000, else 3:
    large data converge in few epochs, and ``lr_decay`` has cut the rate by then."""
    if ctx.n_train < 500:
        return 8
    return 5 if ctx.n_train < 5000 else 3


def _weight_decay(ctx: Context) -> float:
    """1e-5: a light L2 term; dropout does most of the regularising."""
    return 1e-5


def _grad_clip(ctx: Context) -> float:
    """Norm 5: keeps rare LSTM/CRF gradient spikes from wrecking a small-data run."""
    return 5.0


def _previous_label_dropout(ctx: Context) -> float:
    """0.5: GATE fills gate.LF.target window columns with gold labels when training but leaves
    them empty when applying (gate-plugin.md §8, item 8); hiding them in half of the training
    items teaches the model to work without them (defect C13 of the old wrapper)."""
    return 0.5


def _unk_replace(ctx: Context) -> float:
    """0.25: a quarter of the occurrences of a word seen once in training are fed as OOV, so the
    OOV row learns what an unseen word in that place means (Lample et al. 2016 use 0.5 on the
    CoNLL corpora; on the small shared sets 0.25 kept more known-word accuracy: seq-pos1 tail
    0.893 against 0.887, bench/bench_generalisation.py)."""
    return 0.25


def _word_dropout(ctx: Context) -> float:
    """0: singleton replacement already teaches the OOV row; dropping frequent words as well
    costs known-word accuracy (bench/bench_generalisation.py)."""
    return 0.0


def _oov_untrained(ctx: Context) -> bool:
    """On: a row no training item updated holds its random start, worse than the learned OOV row."""
    return True


def _lr_decay(ctx: Context) -> float:
    """From 5000 items on 0.5 per validation without improvement once half of ``es_patience`` is
    used up (reduce on plateau): the rate that found the plateau is too coarse to leave it, and
    halving gets the final gains in a few epochs (12k synthetic sentences: 5 epochs instead of
    16+ at equal test accuracy). Below, 1 (constant): on the small shared sets the decay stopped
    runs early at lower tail scores (bench/bench_generalisation.py)."""
    return 0.5 if ctx.n_train >= 5000 else 1.0


def _es_min_delta(ctx: Context) -> float:
    """From 5000 items on 0.001: a smaller gain is noise and does not restart patience (the best
    model is still kept). Below, 0: small validation sets move in large steps anyway."""
    return 1e-3 if ctx.n_train >= 5000 else 0.0


#: Rules in evaluation order (settings a rule reads come before it).
RULES: dict[str, Callable[[Context], Any]] = {
    "module": _module,
    "list_encoder": _list_encoder,
    "cnn_kernels": _cnn_kernels,
    "cnn_channels": _cnn_channels,
    "list_lstm_hidden": _list_lstm_hidden,
    "char_encoder": _char_encoder,
    "char_dims": _char_dims,
    "char_filters": _char_filters,
    "char_kernel": _char_kernel,
    "word_shape": _word_shape,
    "affix_dims": _affix_dims,
    "crf": _crf,
    "chunk_constraints": _chunk_constraints,
    "linear_crf": _linear_crf,
    "lstm_hidden": _lstm_hidden,
    "lstm_layers": _lstm_layers,
    "dropout": _dropout,
    "embedding_dropout": _embedding_dropout,
    "hidden_layers": _hidden_layers,
    "hidden_size": _hidden_size,
    "wide_ngrams": _wide_ngrams,
    "linear_text": _linear_text,
    "gated_evidence": _gated_evidence,
    "learning_rate": _learning_rate,
    "batch_size": _batch_size,
    "max_epochs": _max_epochs,
    "es_patience": _es_patience,
    "weight_decay": _weight_decay,
    "grad_clip": _grad_clip,
    "previous_label_dropout": _previous_label_dropout,
    "unk_replace": _unk_replace,
    "word_dropout": _word_dropout,
    "oov_untrained": _oov_untrained,
    "lr_decay": _lr_decay,
    "es_min_delta": _es_min_delta,
}


def _classifier_input_size(ctx: Context) -> int:
    """Width of the concatenated features of the auto classifier with the settings chosen so far."""
    from lfengine.builder.features import feature_width

    return feature_width(ctx.layout, SimpleNamespace(**ctx.values))


def user_settings(options: TrainOptions) -> dict[str, Any]:
    """The settings the user gave (option fields and ``options.model``), type-checked."""
    known = field_names()
    unknown = sorted(set(options.model) - set(known))
    if unknown:
        raise OptionError(
            f"unknown model setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    settings = {name: coerce_value(name, value) for name, value in options.model.items()}
    for option in OPTIONS:
        name, value = model_setting_of(option), getattr(options, option.name)
        if name is None or value is None:
            continue
        value = coerce_value(name, value)
        if name in settings and settings[name] != value:
            raise OptionError(
                f"option {option.name}={value!r} contradicts model setting {name}={settings[name]!r}"
            )
        settings[name] = value
    return settings


def choose_config(
    layout: InputLayout, options: TrainOptions, n_train: int
) -> tuple[ModelConfig, dict[str, str]]:
    """The configuration for this data and these options, and where each value came from."""
    from lfengine.builder.registry import resolve_module

    settings = user_settings(options)
    module = resolve_module(settings.get("module"))
    module.check_layout(layout)
    defaults = {name: coerce_value(name, value) for name, value in module.config_defaults.items()}
    ctx = Context(layout=layout, n_train=max(0, n_train))
    provenance: dict[str, str] = {}
    for name, rule in RULES.items():
        if name in settings:
            ctx.values[name], provenance[name] = settings[name], OPTION
        elif name in defaults:
            ctx.values[name], provenance[name] = defaults[name], HEURISTIC
        else:
            ctx.values[name], provenance[name] = rule(ctx), HEURISTIC
    if not layout.is_sequence:
        for name in ("crf", "chunk_constraints", "char_encoder", "word_shape", "affix_dims", "linear_crf"):
            if settings.get(name):
                raise OptionError(f"{name} applies to sequence tagging only, but the data are {layout.task}")
    if settings.get("linear_text") and layout.task != "classification":
        raise OptionError(f"linear_text applies to classification only, but the data are {layout.task}")
    config = ModelConfig(**ctx.values)
    module.check_config(layout, config)
    return config, {name: provenance[name] for name in field_names()}
