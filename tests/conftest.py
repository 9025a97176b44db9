"""Shared fixtures: the real LF reference data, and writers for small LF pairs in tmp_path."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # the package is not installed; `.venv/bin/pytest` must find it
    sys.path.insert(0, str(REPO))

from engine_process import Engine  # noqa: E402

from lfengine.data.synthetic import LfAttribute, write_lf  # noqa: E402

LFDATA = REPO.parent / "shared" / "lfdata"
BROKEN = Path(__file__).resolve().parent / "broken"


@pytest.fixture(scope="session")
def lfdata() -> Path:
    """The shared reference files (lf-format.md §12); tests using them skip when absent."""
    if not (LFDATA / "seq-pos1.meta.json").is_file():
        pytest.skip(f"LF reference data not found at {LFDATA}")
    return LFDATA


@pytest.fixture(scope="session")
def broken_dir() -> Path:
    return BROKEN


@pytest.fixture
def lf_pair(tmp_path: Path) -> Callable[..., Path]:
    """Write a valid LF pair with computed statistics; returns the meta path.

    ``lf_pair(attributes, records, is_sequence=False, base="t", patch=None)``; ``patch`` is a
    function that may edit the meta dict before it is written again (for odd settings).
    """

    def make(
        attributes: Sequence[LfAttribute],
        records: Sequence[list],
        *,
        is_sequence: bool = False,
        base: str = "t",
        patch: Callable[[dict], Any] | None = None,
    ) -> Path:
        meta_path = write_lf(tmp_path, base, attributes, records, is_sequence=is_sequence)
        if patch is not None:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            patch(meta)
            meta_path.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        return meta_path

    return make


@pytest.fixture
def raw_pair(tmp_path: Path) -> Callable[..., Path]:
    """Write a meta file (dict or exact text) and data lines (exact bytes or text) verbatim."""

    def make(meta: dict | str, data: bytes | str | None = None, *, base: str = "t") -> Path:
        meta_path = tmp_path / f"{base}.meta.json"
        text = meta if isinstance(meta, str) else json.dumps(meta, ensure_ascii=False)
        meta_path.write_text(text, encoding="utf-8")
        if data is not None:
            raw = data if isinstance(data, bytes) else data.encode("utf-8")
            (tmp_path / f"{base}.data.json").write_bytes(raw)
        return meta_path

    return make


@pytest.fixture
def engines():
    """Start real engine processes (tests/engine_process.py); all are killed after the test."""
    started: list[Engine] = []

    def start(fmt: str, **kwargs: Any) -> Engine:
        engine = Engine(fmt, **kwargs)
        started.append(engine)
        return engine

    yield start
    for engine in started:
        engine.kill()
