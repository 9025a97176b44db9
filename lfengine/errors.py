"""Typed errors of lfengine.

Every failure a user can cause is one of these. The protocol layer maps each class to a
protocol error code in one place (lfengine/protocol/envelope.py); the command line prints the
message and exits non-zero. Messages say what went wrong, where, and what to do.
"""

from __future__ import annotations

from typing import Any


class LfEngineError(Exception):
    """Base class: an error with a user-facing message and optional structured data."""

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = {k: v for k, v in data.items() if v is not None}


class DataError(LfEngineError):
    """Bad LF input: meta file, data line, embeddings file or an instance sent for application.

    ``file`` and ``line`` (1-based) locate the problem when there is a file; ``index`` locates an
    instance inside an application batch; ``feature`` names the column.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        line: int | None = None,
        index: int | None = None,
        feature: str | None = None,
        expected: str | None = None,
        found: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = []
        if file is not None:
            where.append(f"{file}:{line}" if line is not None else str(file))
        if index is not None:
            where.append(f"instance {index}")
        if feature is not None:
            where.append(f"feature {feature!r}")
        message = problem
        if expected is not None:
            message += f": expected {expected}"
            if found is not None:
                message += f", found {found}"
        elif found is not None:
            message += f": found {found}"
        if where:
            message = f"{', '.join(where)}: {message}"
        if hint:
            message += f" ({hint})"
        super().__init__(
            message, file=file, line=line, index=index, feature=feature, expected=expected, found=found
        )
        self.problem = problem
        self.file = file
        self.line = line
        self.index = index
        self.feature = feature


class MetaFileError(DataError):
    """The meta file is missing, not JSON, or lacks what the contract requires."""


class DataLineError(DataError):
    """A line of a data file (or an instance of a batch) does not fit the meta file."""


class EmbeddingsError(DataError):
    """An embeddings file is missing, of an unsupported format, or inconsistent."""


class OptionError(LfEngineError):
    """An option or parameter has an invalid value, or options contradict each other."""


class ModelError(LfEngineError):
    """A model directory is missing, of another format version, unsafe, or inconsistent."""


class ModelInUse(ModelError):
    """Another training holds the model directory (lfengine.training.model_lock): one writer at a time."""


class UntrustedModuleError(ModelError):
    """A user module file would be imported although the caller did not name or allow it."""


class UnknownModelError(LfEngineError):
    """A request names a model that is not loaded in this process."""


class TrainingCancelled(LfEngineError):
    """Raised inside training when a cancel was requested; the best checkpoint is kept."""
