"""Realistic development sets for sequence taggers: NER-like and POS-like LF exports.

    python bench/seq_corpora.py DIR [--sentences 1500] [--seed 7]   # writes both kinds

The shared files (80-1,000 sentences, lowercased NER) are too small to decide defaults, and
``lfengine.data.synthetic.write_sequence_corpus`` is learnable to ~100 % (six templates, fixed
name lists). These corpora are built to be hard in the way real held-out documents are:

* **Documents.** Sentences come in documents of 8-20 sentences, written in order (LF exports
  documents in order). Each document introduces its own new names, reused inside it, so the
  last 20 % of the lines (the tail bench_generalisation tests on) holds mostly entity words
  never seen in training, as real NER does (79 % on the CEO's WikiGold-size set).
* **NER-like** (``ner-synth``): cased tokens; PER, LOC, ORG, MISC chunks of 1-3 words
  (``PER|B`` ``PER|I`` ...). Cues a model can learn: affixes (surnames in -son/-ez/-ski...,
  places in -burg/-ville/-ia..., organisations ending in Corp/Group or -tech, nationalities in
  -ian/-ese), titles and context words (``Mr.``, ``in``, ``said``, ``shares of``), casing
  (entities capitalised; but so is every sentence's first word, some headline sentences are all
  capitalised, and a share of entity words have no affix cue). Frequent first names and a few
  famous places/organisations recur across documents (the known-word part).
  Columns: the token string (A, cased) and GATE's ``orth`` of the token (A: upperInitial,
  lowercase, allCaps, mixedCaps, or empty for punctuation and numbers), as ANNIE writes them.
* **POS-like** (``pos-synth``): UPOS-like tags from a small grammar (DET ADJ* NOUN, PRON,
  VERB with AUX, ADP phrases, ADV, NUM, PUNCT, CCONJ, PROPN); closed classes are fixed word
  lists, open classes carry the suffix cues of English (-ly ADV, -ed/-ing/-s VERB, -s NOUN,
  -ous/-al/-ive ADJ) with noise; a fifth of the open-class words is ambiguous between NOUN and
  VERB (context decides), and each document adds new open-class words. Column: token string.

Limits: a made-up language from syllables, no real syntax beyond templates, no nested entities,
no long-distance dependencies; entity-context associations are cleaner than in news text. The
numbers measure robustness to unseen words and use of affix/casing/context cues, not
real-language accuracy: judge a change on these and on the shared files together.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lfengine.data.synthetic import LfAttribute, write_lf  # noqa: E402

_ONSETS = "b c d f g h j k l m n p r s t v w z br dr gr kl pl st tr sk ch sh th".split()
_VOWELS = "a e i o u ai ou ea".split()
_CODAS = ["", "", "", "n", "r", "s", "l", "m", "t", "nd", "rk", "ck"]


class _Lexicon:
    """Made-up words, never the same string twice across all classes."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.taken: set[str] = set()

    def word(self, syllables: tuple[int, int] = (1, 3), suffix: str = "") -> str:
        while True:
            stem = "".join(
                self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) + self.rng.choice(_CODAS)
                for _ in range(self.rng.randint(*syllables))
            )
            word = stem + suffix
            if word not in self.taken and len(word) > 2:
                self.taken.add(word)
                return word

    def words(
        self, count: int, syllables: tuple[int, int] = (1, 3), suffixes: tuple[str, ...] = ("",)
    ) -> list[str]:
        return [self.word(syllables, self.rng.choice(suffixes)) for _ in range(count)]


def _zipf(rng: random.Random, words: list[str]) -> str:
    weights = [1.0 / (rank + 1) for rank in range(len(words))]
    return rng.choices(words, weights=weights)[0]


def orth(token: str) -> str:
    """GATE ANNIE tokeniser's ``orth`` feature of a word token; "" for numbers and punctuation."""
    letters = [ch for ch in token if ch.isalpha()]
    if not letters:
        return ""
    if all(ch.isupper() for ch in letters):
        return "allCaps"
    if all(ch.islower() for ch in letters):
        return "lowercase"
    if token[0].isupper() and all(ch.islower() for ch in letters[1:]):
        return "upperInitial"
    return "mixedCaps"


# --- NER-like -----------------------------------------------------------------------------------

_SUR = ("son", "ez", "ski", "ova", "elli", "berg", "")
_PLACE = ("burg", "ville", "ia", "stan", "ford", "ton", "")
_ORG = ("tech", "corp", "ex", "")
_NAT = ("ian", "ese", "ish")
_ORG_TAILS = ("Corp", "Group", "Bank", "Inc", "Union", "Party")
#: Templates; ``ENT`` slots take a type from the distribution named after the colon, so a
#: context suggests a type without deciding it.
_TEMPLATES = [
    "ENT:per said on DAY that the NOUN would VERB .",
    "Mr. ENT:per VERB the NOUN in ENT:loc .",
    "ENT:org VERB NUM NOUN in ENT:loc on DAY .",
    "shares of ENT:org VERB NUM percent , said ENT:any .",
    "the ENT:misc NOUN VERB ENT:any in ENT:loc .",
    "ENT:any , who VERB for ENT:org , VERB the NOUN .",
    "in ENT:loc , the NOUN of ENT:any VERB a NOUN .",
    "ENT:any and ENT:any VERB at the ENT:misc NOUN .",
    "the NOUN VERB that ENT:any would VERB the NOUN .",
    "NOUN VERB the NOUN of the NOUN .",
    "a ENT:misc NOUN VERB ENT:any to VERB NUM NOUN .",
    "President ENT:per VERB ENT:loc on DAY .",
    "the NOUN in ENT:any VERB , ENT:per said .",
    "ENT:any VERB ENT:any , the Minister said .",
    "TITLE NOUN VERB in the NOUN .",
    "ENT:any VERB NUM NOUN ( ENT:any ) .",
]
_SLOT_TYPES = {
    "per": {"PER": 0.8, "ORG": 0.2},
    "loc": {"LOC": 0.7, "ORG": 0.2, "MISC": 0.1},
    "org": {"ORG": 0.75, "PER": 0.1, "LOC": 0.15},
    "misc": {"MISC": 0.7, "LOC": 0.2, "ORG": 0.1},
    "any": {"PER": 0.3, "LOC": 0.25, "ORG": 0.3, "MISC": 0.15},
}
_AFFIXES = {"PER": _SUR, "LOC": _PLACE, "ORG": _ORG, "MISC": _NAT}
#: Capitalised words that are no entity (headline words, titles, months).
_TITLES = ["Minister", "Government", "Police", "Monday", "Report", "Court", "Market", "January"]


def ner_records(n: int, seed: int) -> list[list]:
    rng = random.Random(seed)
    lex = _Lexicon(rng)
    nouns = lex.words(600, (1, 3))
    verbs = lex.words(200, (1, 2), ("ed", "s", ""))
    days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
    first = [w.capitalize() for w in lex.words(150, (1, 2))]  # recur across documents
    famous = {kind: [w.capitalize() for w in lex.words(30, (1, 3), ("",))] for kind in _AFFIXES}

    def name(kind: str) -> str:
        """A new name; its affix tells its type half of the time, misleads a fifth of that."""
        roll = rng.random()
        if roll < 0.4:
            suffixes = _AFFIXES[kind]
        elif roll < 0.5:
            suffixes = _AFFIXES[rng.choice([k for k in _AFFIXES if k != kind])]
        else:
            suffixes = ("",)
        return lex.word((1, 3), rng.choice(suffixes)).capitalize()

    def entity(kind: str, names: dict[str, list[str]]) -> list[tuple[str, str]]:
        local = rng.choice(names[kind]) if rng.random() < 0.65 else _zipf(rng, famous[kind])
        if kind == "PER":
            words = [local]
            if rng.random() < 0.5:
                words.insert(0, _zipf(rng, first))
        elif kind == "LOC":
            words = [local] + ([rng.choice(("City", "Island", "Valley"))] if rng.random() < 0.1 else [])
        elif kind == "ORG":
            words = [local]
            roll = rng.random()
            if roll < 0.3:
                words.append(rng.choice(_ORG_TAILS))
            elif roll < 0.4:
                words = ["Bank", "of", local]
            elif roll < 0.5:
                words = [local.upper()[:4]]  # an acronym
        else:
            words = [local] + ([rng.choice(("Cup", "Games", "Open"))] if rng.random() < 0.3 else [])
        return [(w, f"{kind}|B" if i == 0 else f"{kind}|I") for i, w in enumerate(words)]

    records: list[list] = []
    while len(records) < n:
        names = {kind: [name(kind) for _ in range(3)] for kind in _AFFIXES}  # this document's
        for _ in range(rng.randint(8, 20)):
            tagged: list[tuple[str, str]] = []
            for slot in rng.choice(_TEMPLATES).split():
                if slot.startswith("ENT:"):
                    types = _SLOT_TYPES[slot[4:]]
                    tagged += entity(rng.choices(list(types), weights=list(types.values()))[0], names)
                elif slot == "NOUN":
                    tagged.append((_zipf(rng, nouns), "O"))
                elif slot == "VERB":
                    tagged.append((_zipf(rng, verbs), "O"))
                elif slot == "DAY":
                    tagged.append((rng.choice(days), "O"))
                elif slot == "TITLE":
                    tagged.append((rng.choice(_TITLES), "O"))
                elif slot == "NUM":
                    tagged.append((str(rng.randint(2, 999)), "O"))
                else:
                    tagged.append((slot, "O"))
            words = [w for w, _ in tagged]
            words[0] = words[0][0].upper() + words[0][1:]
            if rng.random() < 0.1:  # a headline: every word capitalised
                words = [w[0].upper() + w[1:] for w in words]
            vectors = [[w, orth(w)] for w in words]
            records.append([vectors, [label for _, label in tagged]])
    return records[:n]


def write_ner(directory: Path, n: int, seed: int) -> Path:
    attributes = [LfAttribute("A", "string", emb_id="token"), LfAttribute("A", "orth")]
    return write_lf(directory, "ner-synth", attributes, ner_records(n, seed), is_sequence=True)


# --- POS-like -----------------------------------------------------------------------------------

_CLOSED = {
    "DET": ["the", "a", "this", "every", "some"],
    "ADP": ["in", "of", "on", "with", "from", "by", "to"],
    "PRON": ["he", "she", "they", "it", "we"],
    "AUX": ["was", "is", "will", "has", "could"],
    "CCONJ": ["and", "but", "or"],
    "PUNCT": [",", ";"],
}
_POS_TEMPLATES = [
    "NP VP .",
    "NP AUX VP ADP NP .",
    "PRON VP NP ADV .",
    "NP VP NP CCONJ VP NP .",
    "ADP NP PUNCT NP VP ADV .",
    "PROPN VP NUM NOUN ADP NP .",
    "PRON AUX ADV VP ADP PROPN .",
    "NP AUX ADJ .",
    "PRON AUX VP NP .",
    "NP AUX ADV ADJ CCONJ ADJ .",
]


def pos_records(n: int, seed: int) -> list[list]:
    rng = random.Random(seed)
    lex = _Lexicon(rng)
    for words in _CLOSED.values():
        lex.taken.update(words)

    def open_class(count: int) -> dict[str, list[str]]:
        return {
            "NOUN": lex.words(count, (1, 3), ("", "", "s", "tion", "ment")),
            "VERB": lex.words(count // 2, (1, 2), ("ed", "ing", "s", "", "")),
            "ADJ": lex.words(count // 2, (1, 3), ("ous", "al", "ive", "", "")),
            "ADV": lex.words(count // 6, (1, 3), ("ly", "")),
            "PROPN": [w.capitalize() for w in lex.words(count // 3, (2, 3))],
        }

    shared = open_class(400)
    ambiguous = lex.words(120, (1, 2), ("s", "", "ing", "al"))  # NOUN, VERB or ADJ, by context

    def pick(tag: str, local: dict[str, list[str]]) -> str:
        if tag in ("NOUN", "VERB", "ADJ") and rng.random() < 0.3:
            return _zipf(rng, ambiguous)
        pool = local[tag] if rng.random() < 0.4 else shared[tag]
        return _zipf(rng, pool) if pool is shared[tag] else rng.choice(pool)

    records: list[list] = []
    while len(records) < n:
        local = open_class(30)  # the document's own new words
        for _ in range(rng.randint(8, 20)):
            tags: list[str] = []
            for slot in rng.choice(_POS_TEMPLATES).split():
                if slot == "NP":
                    tags += ["DET"] + ["ADJ"] * rng.choice((0, 0, 1, 2)) + ["NOUN"]
                elif slot == "VP":
                    tags += ["VERB"]
                elif slot == ".":
                    tags += ["PUNCT"]
                else:
                    tags.append(slot)
            words = []
            for tag in tags:
                if tag in _CLOSED:
                    words.append(rng.choice(_CLOSED[tag]))
                elif tag == "NUM":
                    words.append(str(rng.randint(2, 99)))
                else:
                    words.append(pick(tag, local))
            words = [
                "." if tag == "PUNCT" and i == len(tags) - 1 else w
                for i, (w, tag) in enumerate(zip(words, tags))
            ]
            words[0] = words[0][0].upper() + words[0][1:]
            records.append([[[w] for w in words], tags])
    return records[:n]


def write_pos(directory: Path, n: int, seed: int) -> Path:
    return write_lf(
        directory,
        "pos-synth",
        [LfAttribute("A", "string", emb_id="token")],
        pos_records(n, seed),
        is_sequence=True,
    )


#: name -> (writer, score key of evaluate's report)
CORPORA = {"ner-synth": (write_ner, "span_f1"), "pos-synth": (write_pos, "accuracy")}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--sentences", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    for name, (writer, _) in CORPORA.items():
        print(writer(args.directory / name, args.sentences, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
