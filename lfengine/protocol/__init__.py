"""The wire protocol of the resident engine (protocol.md at the repository root).

framing: how messages are cut from the byte stream (JSON lines, msgpack stream, detection);
envelope: JSON-RPC 2.0 request/response shapes and the one error-code table;
legacy: the old GATE wrapper's line protocol, used by the drop-in scripts.
Nothing here imports torch.
"""

from lfengine.protocol.envelope import (
    ERROR_CODES,
    PROTOCOL_VERSION,
    EngineBusy,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    Params,
    Request,
    ShuttingDown,
    error_code,
    error_response,
    notification,
    parse_request,
    result_response,
)
from lfengine.protocol.framing import DEFAULT_MAX_MESSAGE_BYTES, MessageWriter, open_reader
from lfengine.protocol.stream import FORMATS, FramingError, MessageParseError, MessageTooLarge, StreamCorrupt

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "ERROR_CODES",
    "FORMATS",
    "PROTOCOL_VERSION",
    "EngineBusy",
    "FramingError",
    "InvalidParams",
    "InvalidRequest",
    "MessageParseError",
    "MessageTooLarge",
    "MessageWriter",
    "MethodNotFound",
    "Params",
    "Request",
    "ShuttingDown",
    "StreamCorrupt",
    "error_code",
    "error_response",
    "notification",
    "open_reader",
    "parse_request",
    "result_response",
]
