"""Small learnable LF corpora written in the exact export format (lf-format.md §2-§6).

Tests, demos and benchmarks need LF data of any size without shipping real corpora. The
writer computes the meta statistics the way the LF exporter does (string counts, numeric
statistics with the sample variance, per-element counts for sequences), so a reader sees the
same shapes as with a real export. The generators are seeded and their labels depend on the
features, so a model can learn them to high accuracy.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TYPESEP, NAMESEP = "\u2506", "\u256c"
SAVED_ON = "2024.01.01,00:00:00"  # fixed, so seeded corpora are byte-identical


@dataclass(frozen=True)
class LfAttribute:
    """One element of an LF feature specification (ATTRIBUTE, ATTRIBUTELIST or NGRAM)."""

    code: str  # A | L | N (LF's featureCode; the meta file's kind)
    feature: str
    ann_type: str = "Token"
    datatype: str = "nominal"  # nominal | numeric | bool
    window: tuple[int, int] | None = None  # (from, to) for L
    number: int = 1  # n for N
    listsep: str = ""  # a regex: the nominal values are lists (§5.5)
    within: str | None = None
    name: str = ""
    emb_id: str = ""
    emb_dims: int = 0
    emb_train: str = ""
    emb_file: str = ""
    emb_minfreq: int = 1
    maxlen: int = 0
    shorten: str = ""

    def column_names(self) -> list[str]:
        base = self.name or f"{self.ann_type}{TYPESEP}{self.feature}"
        if self.code == "L":
            lo, hi = self.window
            return [f"{base}{NAMESEP}L{offset}" for offset in range(lo, hi + 1)]
        return [f"{base}{NAMESEP}{self.code}{self.number if self.code == 'N' else ''}"]

    def to_json(self, index: int) -> dict[str, Any]:
        """The keys a current LF version writes for this element (lf-format.md §3.3)."""
        d: dict[str, Any] = {
            "annType": self.ann_type,
            "feature": self.feature,
            "name": self.name,
            "featureId": index,
            "missingValueValue": "" if self.datatype == "nominal" else "0.0",
            "datatype": self.datatype,
            "featureCode": self.code,
            "code": self.code,
            "featureName4Value": "",
            "emb_file": self.emb_file,
            "emb_id": self.emb_id,
            "emb_dims": self.emb_dims,
            "emb_train": self.emb_train,
            "emb_minfreq": self.emb_minfreq,
        }
        if self.code == "N":
            d.update(listsep=None, number=self.number, maxlen=self.maxlen, shorten=self.shorten)
        else:
            d.update(
                listsep=self.listsep,
                codeas="one_of_k" if self.datatype == "nominal" else "number",
                missingValueTreatment="keep" if self.datatype == "nominal" else "special_value",
                alphabet=None,
                withinType=self.within,
            )
        if self.code == "L":
            d["from"], d["to"] = self.window
        return d


def value_stats(values: Iterable[Any]) -> dict[str, Any]:
    """An LF stats object: strings and list items are counted, numbers and booleans summarised;
    ``n`` counts values (records or elements), not list items (lf-format.md §3.4)."""
    values = list(values)
    counts: Counter = Counter()
    numbers: list[float] = []
    first = values[0] if values else ""
    if isinstance(first, (str, list)):
        counts.update(v for v in values if isinstance(v, str))
        for v in values:
            if isinstance(v, list):
                counts.update(v)
    else:
        numbers = [float(v) for v in values]
    stats = {"isString": not numbers, "stringCounts": dict(counts), "n": len(values)}
    stats.update(zip(("min", "max", "mean", "variance"), _summary(numbers)))
    return stats


def _summary(numbers: Sequence[float]) -> tuple[float, float, float, float]:
    """min, max, mean and the sample variance (divisor n - 1); zeros when there is nothing."""
    if not numbers:
        return 0.0, 0.0, 0.0, 0.0
    n = len(numbers)
    mean = sum(numbers) / n
    variance = sum((x - mean) ** 2 for x in numbers) / (n - 1) if n > 1 else 0.0
    return float(min(numbers)), float(max(numbers)), mean, variance


def write_lf(
    directory: str | Path,
    base: str,
    attributes: Sequence[LfAttribute],
    records: Sequence[list],
    *,
    is_sequence: bool,
) -> Path:
    """Write ``<base>.meta.json`` and ``<base>.data.json``; returns the meta path.

    ``records`` are training records: ``[vector, target]``, or ``[[vector, ...], [target, ...]]``
    for sequences. Statistics are computed from the records; a target of None is left out of
    ``targetStats`` (as LF_Export without a target).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta_path, data_path = directory / f"{base}.meta.json", directory / f"{base}.data.json"
    columns = [(i, name) for i, a in enumerate(attributes) for name in a.column_names()]
    with open(data_path, "w", encoding="utf-8", newline="\n") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
    if is_sequence:
        vectors = [vec for seq, _ in records for vec in seq]
        targets = [t for _, labels in records for t in labels]
    else:
        vectors = [vec for vec, _ in records]
        targets = [t for _, t in records]
    by_column = list(zip(*vectors)) if vectors else [()] * len(columns)
    meta: dict[str, Any] = {
        "featureStats": {name: value_stats(by_column[j]) for j, (_, name) in enumerate(columns)},
        "linesWritten": len(records),
        "features": [
            {"attrid": i, "datatype": attributes[i].datatype, "kind": attributes[i].code, "name": name}
            for i, name in columns
        ],
        "isSequence": is_sequence,
        "featureInfo": {
            "globalScalingMethod": "NONE",
            "attributes": [a.to_json(i) for i, a in enumerate(attributes)],
        },
        "savedOn": SAVED_ON,
        "featureNames": [name for _, name in columns],
        "dataFile": str(data_path.resolve()),
    }
    present = [t for t in targets if t is not None]
    if present:
        meta["targetStats"] = value_stats(present)
    if is_sequence:
        lengths = [float(len(seq)) for seq, _ in records]
        summary = _summary(lengths)
        meta.update({f"sequLengths.{k}": v for k, v in zip(("min", "max", "mean", "variance"), summary)})
    meta_path.write_text(json.dumps(meta, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    return meta_path


# --- made-up language -------------------------------------------------------------------------

_ONSETS = "b c d f g h j k l m n p r s t v w z br dr gr kl pl st tr sk".split()
_VOWELS = "a e i o u ai ou".split()
_CODAS = ["", "", "n", "r", "s", "l", "m", "t", "nd", "rk"]


def _invent_words(rng: random.Random, count: int, taken: set[str], syllables: tuple[int, int]) -> list[str]:
    """``count`` new pronounceable lowercase words, none of them in ``taken`` (which grows)."""
    words = []
    while len(words) < count:
        word = "".join(
            rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
            for _ in range(rng.randint(*syllables))
        )
        if word not in taken:
            taken.add(word)
            words.append(word)
    return words


def word_shape(word: str) -> str:
    """Short word shape as LF's wordShapeShort: A/a/9 per character class, runs collapsed."""
    out: list[str] = []
    for ch in word:
        c = "A" if ch.isupper() else "a" if ch.islower() else "9" if ch.isdigit() else ch
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out)


def _zipf_picker(rng: random.Random, words: list[str]):
    """Draw words with Zipf-like frequencies (a few frequent, many rare), like real text."""
    cumulative, total = [], 0.0
    for rank in range(len(words)):
        total += 1.0 / (rank + 1)
        cumulative.append(total)
    return lambda k=1: rng.choices(words, cum_weights=cumulative, k=k)


# --- (a) sequence tagging with chunk labels ---------------------------------------------------

_SEQ_TEMPLATES = [
    "PER VERB the NOUN in LOC .",
    "ORG VERB PER on NUM NOUN .",
    "the NOUN of LOC VERB NUM NOUN .",
    "PER and PER VERB to LOC , said ORG .",
    "in LOC , ORG VERB the NOUN .",
    "NOUN VERB PER .",
]


def write_sequence_corpus(directory: str | Path, n: int, seed: int) -> Path:
    """``n`` sentences tagged with chunk labels (``PER|B``, ``PER|I``, ``LOC|B``, ``ORG|B``,
    ``ORG|I``, ``O``); features: the token string (A) and a window L-1..1 of its word shape.
    Names, places and organisations come from disjoint made-up word lists, so the labels follow
    from the tokens and their neighbours."""
    rng = random.Random(seed)
    taken = {"the", "of", "in", "on", "and", "to", "said"}
    first = [w.capitalize() for w in _invent_words(rng, 60, taken, (1, 2))]
    last = [w.capitalize() for w in _invent_words(rng, 80, taken, (2, 3))]
    places = [w.capitalize() for w in _invent_words(rng, 50, taken, (2, 3))]
    orgs = [w.capitalize() for w in _invent_words(rng, 30, taken, (2, 2))]
    org_tails = ["Group", "Bank", "Union"]
    verbs = _invent_words(rng, 40, taken, (1, 2))
    nouns = _invent_words(rng, 120, taken, (1, 3))

    def expand(slot: str) -> list[tuple[str, str]]:
        if slot == "PER":
            words = [rng.choice(first)] + ([rng.choice(last)] if rng.random() < 0.6 else [])
            return [(w, "PER|B" if i == 0 else "PER|I") for i, w in enumerate(words)]
        if slot == "LOC":
            return [(rng.choice(places), "LOC|B")]
        if slot == "ORG":
            return [(rng.choice(orgs), "ORG|B"), (rng.choice(org_tails), "ORG|I")]
        pools = {"VERB": verbs, "NOUN": nouns}
        if slot == "NUM":
            return [(str(rng.randint(2, 999)), "O")]
        return [(rng.choice(pools[slot]) if slot in pools else slot, "O")]

    records = []
    for _ in range(n):
        tagged = [pair for slot in rng.choice(_SEQ_TEMPLATES).split() for pair in expand(slot)]
        tokens = [w for w, _ in tagged]
        shapes = [""] + [word_shape(w) for w in tokens] + [""]
        vectors = [[w, shapes[i], shapes[i + 1], shapes[i + 2]] for i, w in enumerate(tokens)]
        records.append([vectors, [t for _, t in tagged]])
    attributes = [
        LfAttribute("A", "string", emb_id="token"),
        LfAttribute("L", "shape", window=(-1, 1), within="Sentence", emb_id="shape", emb_dims=4),
    ]
    return write_lf(directory, "seq-synth", attributes, records, is_sequence=True)


# --- (b) classification with a token list, a number and a boolean -----------------------------

_TOPICS = ("sport", "politics", "science")


def write_classification_corpus(directory: str | Path, n: int, seed: int) -> Path:
    """``n`` short texts labelled by topic. Columns: the tokens (N1 list), a numeric score whose
    mean depends on the topic, and a boolean that is mostly true for one topic. Each text draws
    about half its words from its topic's own vocabulary."""
    rng = random.Random(seed)
    taken: set[str] = set()
    common = _zipf_picker(rng, _invent_words(rng, 150, taken, (1, 2)))
    topical = {t: _zipf_picker(rng, _invent_words(rng, 80, taken, (2, 3))) for t in _TOPICS}
    records = []
    for _ in range(n):
        topic = rng.choice(_TOPICS)
        k = rng.randint(4, 16)
        own = rng.randint(k // 3 + 1, k)
        tokens = topical[topic](own) + common(k - own)
        rng.shuffle(tokens)
        centre = _TOPICS.index(topic) - 1.0
        score = round(rng.gauss(centre, 0.5), 5)
        flag = rng.random() < (0.8 if topic == "science" else 0.2)
        records.append([[tokens, score, flag], topic])
    attributes = [
        LfAttribute("N", "string", emb_id="token", maxlen=0),
        LfAttribute("A", "score", ann_type="", datatype="numeric"),
        LfAttribute("A", "question", ann_type="", datatype="bool"),
    ]
    return write_lf(directory, "class-synth", attributes, records, is_sequence=False)


# --- (c) token classification with window columns (like class-window-pos1) --------------------

_TAG_TEMPLATES = [
    "DET NOUN VERB ADP DET ADJ NOUN PUNCT",
    "PRON VERB DET NOUN PUNCT",
    "PROPN PROPN AUX VERB ADP PROPN PUNCT",
    "DET ADJ NOUN AUX ADV ADJ CCONJ PRON VERB PRON PUNCT",
    "PRON AUX PART VERB NUM NOUN ADP DET NOUN PUNCT",
    "ADV PUNCT PRON VERB SCONJ PRON VERB DET NOUN PUNCT",
    "INTJ PUNCT DET NOUN VERB X SYM NUM PUNCT",
]
_TAG_SIZES = {"NOUN": 1500, "VERB": 800, "ADJ": 500, "ADV": 200, "PROPN": 600, "NUM": 60, "X": 30}
_CLOSED = ("DET", "ADP", "PRON", "AUX", "CCONJ", "PART", "SCONJ", "INTJ")


def write_window_corpus(directory: str | Path, n: int, seed: int) -> Path:
    """``n`` token instances with the 26 nominal window columns of class-window-pos1: token
    L-3..L2, previous labels L-2..L-1 (onehot), word shape, suf2 and suf3 L-3..L2; the suffix
    attributes share the emb_id ``suf``. Each word of the made-up lexicon has one tag, so the
    target follows from the token at L0."""
    rng = random.Random(seed)
    taken: set[str] = set()
    pickers = {}
    for tag in sorted({t for tmpl in _TAG_TEMPLATES for t in tmpl.split()}):
        if tag == "PUNCT":
            words = [".", ",", "!", "?", ";"]
        elif tag == "SYM":
            words = ["%", "$", "&"]
        elif tag == "NUM":
            words = [str(i) for i in range(_TAG_SIZES[tag])]
        else:
            count = _TAG_SIZES.get(tag, 8 if tag in _CLOSED else 50)
            words = _invent_words(rng, count, taken, (1, 1) if tag in _CLOSED else (1, 3))
            if tag == "PROPN":
                words = [w.capitalize() for w in words]
        pickers[tag] = _zipf_picker(rng, words)
    features: dict[str, tuple[str, str, str]] = {}

    def token_features(word: str) -> tuple[str, str, str]:
        if word not in features:
            features[word] = (
                word_shape(word),
                word[-2:] if len(word) > 2 else "",
                word[-3:] if len(word) > 3 else "",
            )
        return features[word]

    records = []
    templates = [t.split() for t in _TAG_TEMPLATES]
    while len(records) < n:
        tags = rng.choice(templates)
        words = [pickers[t]()[0] for t in tags]
        pad = ["", "", ""]
        w = pad + words + pad
        g = pad + tags + pad
        f = [("", "", "")] * 3 + [token_features(x) for x in words] + [("", "", "")] * 3
        for i in range(3, 3 + len(words)):
            window = range(i - 3, i + 3)
            vector = [w[j] for j in window] + [g[i - 2], g[i - 1]]
            for part in range(3):
                vector += [f[j][part] for j in window]
            records.append([vector, tags[i - 3]])
            if len(records) == n:
                break
    attributes = [
        LfAttribute("L", "string", window=(-3, 2), within="Sentence", emb_id="token", emb_train="yes"),
        LfAttribute("L", "gate.LF.target", window=(-2, -1), emb_id="label", emb_train="onehot"),
        LfAttribute("L", "wordShapeShort", window=(-3, 2), emb_id="shape", emb_train="yes", emb_dims=10),
        LfAttribute("L", "suf2", window=(-3, 2), emb_id="suf", emb_train="yes", emb_dims=10),
        LfAttribute("L", "suf3", window=(-3, 2), emb_id="suf", emb_train="yes", emb_dims=10),
    ]
    return write_lf(directory, "class-window-synth", attributes, records, is_sequence=False)
