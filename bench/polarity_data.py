"""Made-up sentence-polarity exports (LF format, one token-list column) of any size, for benches.

The shared class-ngram-sp1 has 1,000 lines: too few to decide a default (issue 18). This writes
``n`` sentences shaped like review snippets, with the properties that make real polarity data
hard for a bag of words and for a neural model alike:

* a Zipfian vocabulary: a few function words and many rare content words, so that much of a
  held-out part is made of words seen once or never;
* sentiment words (positive and negative, each set Zipfian too) mixed into mostly neutral
  text: about one token in seven carries polarity, and half the neutral words lean weakly to
  one side (appear less often in the other's text), as most words of real reviews do;
* polarity against the label (a reviewer's "the cast is fine" in a negative review) and
  negation: "not", "n't", "never" or "hardly" before a word of the opposite polarity
  ("not good" in a negative sentence), so that unigrams mislead and bigrams help;
* contrast: after "but" the clause states the sentence's polarity, before it the opposite;
* documents: sentences come in reviews of 4-12 sentences that share the review's own names
  (people, titles: words of that review only), written in order, so that the file's tail
  (bench_generalisation's split) holds reviews, and names, never seen in training;
* label noise: a share of the labels is flipped, which caps every model's accuracy.

Limits: the words are independent given the polarity (no syntax, no topics that correlate with
the label, no sarcasm), sentence polarity does not drift along the file, and the vocabulary is
invented, so pretrained vectors cannot help. Scores are comparable between systems on the same
file, not to real data; the defaults (``PolaritySpec``) put the linear baselines at 0.75-0.80 on
4-10k sentences, where they score on the real 8.5k-sentence set.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from lfengine.data.synthetic import LfAttribute, _invent_words, _zipf_picker, write_lf

FUNCTION_WORDS = tuple(
    "the a of and to is in that it with as for its this film movie an be on by "
    "his her their about more than one has are from so at who all like most".split()
)
NEGATIONS = ("not", "n't", "never", "hardly")


@dataclass(frozen=True)
class PolaritySpec:
    """The generator's knobs; the defaults are tuned as said in the module docstring."""

    neutral_words: int = 12000
    sentiment_words: int = 1500  # per polarity
    sentiment_share: float = 0.18  # of the tokens
    against_share: float = 0.1  # sentiment words whose polarity is the other label's
    negation_share: float = 0.2  # sentiment slots written as negation + opposite word
    contrast_share: float = 0.1  # sentences of the form "X but Y"
    name_share: float = 0.05  # tokens that are the review's own names
    lean_share: float = 0.5  # neutral words that lean to one polarity (rarer in the other's text)
    lean_reject: float = 0.4  # chance that a leaning word drawn for the other polarity is redrawn
    label_noise: float = 0.03
    mean_length: float = 16.0  # plus 5: a snippet has at least 5 tokens


def polarity_records(n: int, seed: int, spec: PolaritySpec = PolaritySpec()) -> list[list]:
    """``n`` records ``[[tokens], "pos"|"neg"]`` in review order."""
    rng = random.Random(seed)
    taken = set(FUNCTION_WORDS) | set(NEGATIONS) | {"but", "."}
    content = _invent_words(rng, spec.neutral_words, taken, (1, 3))
    neutral = _zipf_picker(rng, list(FUNCTION_WORDS) + content)
    lean = {w: rng.choice(("pos", "neg")) for w in content if rng.random() < spec.lean_share}
    polar = {
        label: _zipf_picker(rng, _invent_words(rng, spec.sentiment_words, taken, (1, 3)))
        for label in ("pos", "neg")
    }
    other = {"pos": "neg", "neg": "pos"}
    records: list[list] = []

    def clause(label: str, length: int, names: list[str]) -> list[str]:
        tokens: list[str] = []
        while len(tokens) < length:
            r = rng.random()
            if r < spec.sentiment_share:
                polarity = other[label] if rng.random() < spec.against_share else label
                if rng.random() < spec.negation_share:
                    tokens += [rng.choice(NEGATIONS), polar[other[polarity]]()[0]]
                else:
                    tokens.append(polar[polarity]()[0])
            elif r < spec.sentiment_share + spec.name_share:
                tokens.append(rng.choice(names))
            else:
                word = neutral()[0]
                if lean.get(word, label) != label and rng.random() < spec.lean_reject:
                    word = neutral()[0]
                tokens.append(word)
        return tokens

    while len(records) < n:
        names = _invent_words(rng, 3, taken, (2, 3))  # this review's own words
        for _ in range(rng.randint(4, 12)):
            label = rng.choice(("pos", "neg"))
            length = 5 + int(rng.expovariate(1.0 / spec.mean_length))
            if rng.random() < spec.contrast_share and length > 6:
                head = clause(other[label], length // 2, names)
                tokens = head + ["but"] + clause(label, length - length // 2, names)
            else:
                tokens = clause(label, length, names)
            if rng.random() < spec.label_noise:
                label = other[label]
            records.append([[tokens + ["."]], label])
            if len(records) == n:
                break
    return records


def write_polarity_corpus(directory: str | Path, n: int, seed: int, base: str = "polarity") -> Path:
    """Write ``base``.meta.json / .data.json with ``n`` sentences; returns the meta path."""
    attributes = [LfAttribute("N", "string", emb_id="token", maxlen=0)]
    return write_lf(directory, base, attributes, polarity_records(n, seed), is_sequence=False)
