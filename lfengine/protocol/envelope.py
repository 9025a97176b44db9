"""JSON-RPC 2.0 envelope: request validation, response shapes, and the one error-code table.

Everything that can go wrong in the engine is a typed exception; ERROR_CODES below is the only
place where an exception class becomes a protocol error code. Handlers never build error
objects themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lfengine.errors import (
    DataError,
    DataLineError,
    EmbeddingsError,
    LfEngineError,
    MetaFileError,
    ModelError,
    ModelInUse,
    OptionError,
    TrainingCancelled,
    UnknownModelError,
)
from lfengine.protocol.stream import MessageParseError, MessageTooLarge, StreamCorrupt

JSONRPC_VERSION = "2.0"
PROTOCOL_VERSION = "1.1"  # major.minor: minor adds fields or methods, major breaks clients


class InvalidRequest(LfEngineError):
    """The message is not a valid JSON-RPC request. ``request_id``: its id, when usable."""

    def __init__(self, message: str, *, request_id: str | int | None = None, **data: Any) -> None:
        super().__init__(message, **data)
        self.request_id = request_id


class MethodNotFound(LfEngineError):
    """The request names a method this engine does not have."""


class InvalidParams(LfEngineError):
    """A parameter is missing or of the wrong type (``param`` names it)."""


class EngineBusy(LfEngineError):
    """Too many requests are waiting; this one was refused without being run."""


class ShuttingDown(LfEngineError):
    """The engine is stopping (shutdown request or signal); this request was not run."""


INTERNAL_ERROR = -32603

ERROR_CODES: dict[type[BaseException], int] = {
    # JSON-RPC 2.0 standard codes
    MessageParseError: -32700,
    InvalidRequest: -32600,
    MethodNotFound: -32601,
    InvalidParams: -32602,
    # transport and engine state (the range JSON-RPC reserves for the server)
    MessageTooLarge: -32001,
    StreamCorrupt: -32002,
    EngineBusy: -32003,
    ShuttingDown: -32004,
    # application errors: 1000-1009 data, 1010 options, 1020-1029 models, 1030 training
    DataError: 1000,
    MetaFileError: 1001,
    DataLineError: 1002,
    EmbeddingsError: 1003,
    OptionError: 1010,
    ModelError: 1020,
    ModelInUse: 1022,
    UnknownModelError: 1021,
    TrainingCancelled: 1030,
    LfEngineError: 1099,
}


def error_code(exc: BaseException) -> int:
    """The code of the most specific class in ERROR_CODES; anything unlisted is internal."""
    for cls in type(exc).__mro__:
        code = ERROR_CODES.get(cls)
        if code is not None:
            return code
    return INTERNAL_ERROR


def error_object(exc: BaseException) -> dict[str, Any]:
    """``{code, message, data}``; data carries the error's structured fields and its type."""
    code = error_code(exc)
    if isinstance(exc, LfEngineError):
        message = exc.message
        data = dict(exc.data)
    else:
        message = f"internal error ({type(exc).__name__}): {exc}"
        data = {}
    data["type"] = type(exc).__name__
    return {"code": code, "message": message, "data": data}


def result_response(request_id: str | int | None, result: Any) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC_VERSION, "id": request_id, "result": result}


def error_response(request_id: str | int | None, exc: BaseException) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC_VERSION, "id": request_id, "error": error_object(exc)}


def notification(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC_VERSION, "method": method, "params": params}


@dataclass(frozen=True)
class Request:
    """A validated request. ``notification``: it had no id, so it gets no response."""

    method: str
    params: dict[str, Any] | list[Any] = field(default_factory=dict)
    id: str | int | None = None
    notification: bool = False


def _valid_id(value: Any) -> bool:
    return value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def parse_request(message: Any) -> Request:
    """Validate a decoded message as a JSON-RPC 2.0 request or notification.

    Raises InvalidRequest, carrying the id when it is usable. Positional (array) params pass
    here and are refused by Params, since every method takes named parameters. Unknown
    top-level members are ignored.
    """
    if isinstance(message, list):
        raise InvalidRequest(
            "batch requests (arrays of requests) are not supported; send one request per message"
        )
    if not isinstance(message, dict):
        raise InvalidRequest(f"a request must be an object, got {json_type(message)}")
    has_id = "id" in message
    request_id = message.get("id")
    if not _valid_id(request_id):
        raise InvalidRequest("id must be a string, an integer or null")
    if message.get("jsonrpc") != JSONRPC_VERSION:
        raise InvalidRequest('"jsonrpc" must be "2.0"', request_id=request_id)
    method = message.get("method")
    if not isinstance(method, str) or not method:
        raise InvalidRequest('"method" must be a non-empty string', request_id=request_id)
    params = message.get("params")
    if params is None:
        params = {}
    elif not isinstance(params, (dict, list)):
        raise InvalidRequest("params must be an object", request_id=request_id)
    return Request(method=method, params=params, id=request_id, notification=not has_id)


_MISSING: Any = object()


class Params:
    """Typed access to a request's named parameters; every failure is an InvalidParams."""

    def __init__(self, values: dict[str, Any] | list[Any]) -> None:
        if not isinstance(values, dict):
            raise InvalidParams("params must be an object (named parameters), not an array", param="params")
        self._values = values

    def __contains__(self, name: str) -> bool:
        return self._values.get(name) is not None

    def _get(self, name: str, kinds: tuple[type, ...], what: str, default: Any) -> Any:
        value = self._values.get(name)
        if value is None:
            if default is _MISSING:
                raise InvalidParams(f'missing parameter "{name}" ({what})', param=name)
            return default
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise InvalidParams(f'parameter "{name}" must be {what}, got {json_type(value)}', param=name)
        return value

    def text(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, (str,), "a string", default)
        if value == "":
            raise InvalidParams(f'parameter "{name}" must not be empty', param=name)
        return value

    def flag(self, name: str, default: Any = _MISSING) -> Any:
        return self._get(name, (bool,), "true or false", default)

    def integer(
        self, name: str, default: Any = _MISSING, minimum: int | None = None, maximum: int | None = None
    ) -> Any:
        value = self._get(name, (int,), "an integer", default)
        if value is not None and minimum is not None and value < minimum:
            raise InvalidParams(f'parameter "{name}" must be at least {minimum}, got {value}', param=name)
        if value is not None and maximum is not None and value > maximum:
            raise InvalidParams(f'parameter "{name}" must be at most {maximum}, got {value}', param=name)
        return value

    def file_path(self, name: str, default: Any = _MISSING) -> Any:
        """A path of a file to read. Never "-": the engine's stdin carries the protocol, and
        reading it would swallow the client's next requests. (Devices, FIFOs and directories
        are refused, without blocking, by whoever opens the path: lfengine.files.paths.)"""
        value = self.text(name, default)
        if value == "-":
            raise InvalidParams(
                f'parameter "{name}" cannot be "-": the engine\'s stdin carries the protocol, '
                "so data cannot be read from it; give the path of a file",
                param=name,
            )
        return value

    def mapping(self, name: str, default: Any = _MISSING) -> Any:
        return self._get(name, (dict,), "an object", default)

    def items(self, name: str, default: Any = _MISSING) -> Any:
        return self._get(name, (list,), "an array", default)


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages a client's author reads."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
