"""The old wrapper's option syntaxes for per-emb_id and per-attribute settings (gate-plugin.md §9.1).

``--embs embid:dims:train:minfreq:file[,...]`` and ``--maxlens attrnr:maxlen:shorten[,...]``;
empty fields keep the meta file's value. The per-attribute form of ``--maxlens`` works here
(the old one never matched: D9).
"""

from __future__ import annotations

from dataclasses import dataclass

from lfengine.data.meta import EMB_TRAIN_MODES, SHORTEN_MODES
from lfengine.errors import OptionError


@dataclass(frozen=True)
class EmbOverride:
    emb_id: str
    dims: int | None = None
    train: str | None = None
    minfreq: int | None = None
    file: str | None = None


@dataclass(frozen=True)
class MaxlenOverride:
    attribute: int | None  # None: every list attribute
    maxlen: int
    shorten: str


def _int_field(text: str, what: str, entry: str, minimum: int) -> int | None:
    if text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise OptionError(f"{what} in {entry!r} must be an integer, got {text!r}") from None
    if value < minimum:
        raise OptionError(f"{what} in {entry!r} must be at least {minimum}, got {value}")
    return value


def parse_embs(text: str | None) -> dict[str, EmbOverride]:
    """``token:123:yes``, ``:17``, ``token:50:yes:3``, ``::yes:2:embs/glove.txt.gz``."""
    result: dict[str, EmbOverride] = {}
    for entry in filter(None, (text or "").split(",")):
        parts = entry.split(":", 4)
        parts += [""] * (5 - len(parts))
        emb_id, dims, train, minfreq, file = parts
        if train not in EMB_TRAIN_MODES:
            raise OptionError(
                f"embedding mode in {entry!r} must be yes, no, mapping or onehot, got {train!r}"
            )
        result[emb_id] = EmbOverride(
            emb_id=emb_id,
            dims=_int_field(dims, "dims", entry, 1),
            train=train or None,
            minfreq=_int_field(minfreq, "minfreq", entry, 1),
            file=file or None,
        )
    return result


def parse_maxlens(text: str | None) -> list[MaxlenOverride]:
    """``attrnr:maxlen:shorten``; an empty attrnr means all list attributes."""
    result = []
    for entry in filter(None, (text or "").split(",")):
        parts = entry.split(":")
        if len(parts) < 2 or len(parts) > 3:
            raise OptionError(f"--maxlens entry {entry!r} must be attrnr:maxlen[:shorten]")
        attr = _int_field(parts[0], "attribute number", entry, 0)
        maxlen = _int_field(parts[1], "maxlen", entry, 1)
        if maxlen is None:
            raise OptionError(f"--maxlens entry {entry!r} needs a maxlen > 0")
        shorten = parts[2] if len(parts) == 3 else ""
        if shorten not in SHORTEN_MODES:
            raise OptionError(f"shorten in {entry!r} must be left, right, both or middle, got {shorten!r}")
        result.append(MaxlenOverride(attribute=attr, maxlen=maxlen, shorten=shorten))
    return result


def shorten_list(values: list, maxlen: int, mode: str) -> list:
    """lf-format.md §10 with the old defects fixed (D8)."""
    if maxlen <= 0 or len(values) <= maxlen:
        return values
    if mode in ("", "right"):
        return values[:maxlen]
    if mode == "left":
        return values[len(values) - maxlen :]
    if mode == "both":
        start = (len(values) - maxlen) // 2
        return values[start : start + maxlen]
    head = (maxlen + 1) // 2  # middle: first ceil(maxlen/2), last floor(maxlen/2)
    tail = maxlen - head
    return values[:head] + (values[len(values) - tail :] if tail else [])
