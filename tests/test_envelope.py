"""Envelope: request validation, params access, the error-code table and response shapes."""

from __future__ import annotations

import json

import pytest

from lfengine import errors
from lfengine.protocol.envelope import (
    ERROR_CODES,
    INTERNAL_ERROR,
    EngineBusy,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    Params,
    ShuttingDown,
    error_code,
    error_object,
    error_response,
    notification,
    parse_request,
    result_response,
)
from lfengine.protocol.framing import encode_json_line
from lfengine.protocol.stream import MessageParseError, MessageTooLarge, StreamCorrupt

# --- requests ---------------------------------------------------------------------------------


def test_request_with_named_params():
    request = parse_request({"jsonrpc": "2.0", "id": 7, "method": "train", "params": {"meta": "m"}, "x": 1})
    assert (request.method, request.params, request.id, request.notification) == (
        "train",
        {"meta": "m"},
        7,
        False,
    )


@pytest.mark.parametrize("request_id", ["abc", 0, -3, 2**70, None])
def test_every_valid_id_type_is_kept(request_id):
    request = parse_request({"jsonrpc": "2.0", "id": request_id, "method": "status"})
    assert request.id == request_id and not request.notification


def test_a_message_without_id_is_a_notification_and_params_default_to_empty():
    request = parse_request({"jsonrpc": "2.0", "method": "cancel"})
    assert request.notification and request.id is None and request.params == {}
    assert parse_request({"jsonrpc": "2.0", "id": 1, "method": "status", "params": None}).params == {}


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        (5, "must be an object"),
        ("status", "must be an object"),
        (None, "must be an object"),
        ([{"jsonrpc": "2.0", "id": 1, "method": "status"}], "batch"),
        ({"jsonrpc": "2.0", "id": 1.5, "method": "status"}, "id must be"),
        ({"jsonrpc": "2.0", "id": True, "method": "status"}, "id must be"),
        ({"jsonrpc": "2.0", "id": {"a": 1}, "method": "status"}, "id must be"),
        ({"jsonrpc": "2.0", "id": [1], "method": "status"}, "id must be"),
    ],
)
def test_invalid_requests_whose_id_cannot_be_used(message, fragment):
    with pytest.raises(InvalidRequest, match=fragment) as caught:
        parse_request(message)
    assert caught.value.request_id is None


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        ({"id": 4, "method": "status"}, "jsonrpc"),
        ({"jsonrpc": "1.0", "id": 4, "method": "status"}, "jsonrpc"),
        ({"jsonrpc": 2.0, "id": 4, "method": "status"}, "jsonrpc"),
        ({"jsonrpc": "2.0", "id": 4}, "method"),
        ({"jsonrpc": "2.0", "id": 4, "method": ""}, "method"),
        ({"jsonrpc": "2.0", "id": 4, "method": 12}, "method"),
        ({"jsonrpc": "2.0", "id": 4, "method": "status", "params": "x"}, "params"),
        ({"jsonrpc": "2.0", "id": 4, "method": "status", "params": 3}, "params"),
    ],
)
def test_invalid_requests_keep_a_usable_id_for_the_reply(message, fragment):
    with pytest.raises(InvalidRequest, match=fragment) as caught:
        parse_request(message)
    assert caught.value.request_id == 4


# --- params -----------------------------------------------------------------------------------


def test_positional_params_are_refused_as_invalid_params():
    request = parse_request({"jsonrpc": "2.0", "id": 1, "method": "train", "params": ["meta", "dir"]})
    with pytest.raises(InvalidParams, match="named parameters"):
        Params(request.params)


def test_params_typed_access():
    params = Params({"s": "x", "b": False, "i": 3, "m": {"k": 1}, "l": [1], "n": None})
    assert params.text("s") == "x"
    assert params.flag("b") is False
    assert params.integer("i", minimum=1) == 3
    assert params.mapping("m") == {"k": 1}
    assert params.items("l") == [1]
    assert params.text("n", "default") == "default"  # null counts as absent
    assert params.text("absent", None) is None
    assert "s" in params and "n" not in params


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda p: p.text("missing"), 'missing parameter "missing"'),
        (lambda p: p.text("i"), "must be a string, got a number"),
        (lambda p: p.text("empty"), "must not be empty"),
        (lambda p: p.integer("b"), "must be an integer, got a boolean"),
        (lambda p: p.integer("f"), "must be an integer, got a number"),
        (lambda p: p.integer("i", minimum=5), "at least 5"),
        (lambda p: p.flag("i"), "true or false"),
        (lambda p: p.mapping("l"), "an object"),
        (lambda p: p.items("m"), "an array"),
    ],
)
def test_params_errors_name_the_parameter(call, fragment):
    params = Params({"i": 3, "b": True, "f": 1.5, "l": [], "m": {}, "empty": ""})
    with pytest.raises(InvalidParams, match=fragment) as caught:
        call(params)
    assert caught.value.data["param"]


# --- error codes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (MessageParseError("x"), -32700),
        (InvalidRequest("x"), -32600),
        (MethodNotFound("x"), -32601),
        (InvalidParams("x"), -32602),
        (MessageTooLarge("x"), -32001),
        (StreamCorrupt("x"), -32002),
        (EngineBusy("x"), -32003),
        (ShuttingDown("x"), -32004),
        (errors.DataError("x"), 1000),
        (errors.MetaFileError("x"), 1001),
        (errors.DataLineError("x"), 1002),
        (errors.EmbeddingsError("x"), 1003),
        (errors.OptionError("x"), 1010),
        (errors.ModelError("x"), 1020),
        (errors.UnknownModelError("x"), 1021),
        (errors.TrainingCancelled("x"), 1030),
        (errors.LfEngineError("x"), 1099),
        (KeyError("x"), INTERNAL_ERROR),
        (RuntimeError("x"), INTERNAL_ERROR),
    ],
)
def test_each_error_class_has_its_code(exc, code):
    assert error_code(exc) == code


def test_every_error_class_of_the_engine_is_in_the_table_with_a_distinct_code():
    engine_errors = {
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.LfEngineError)
    }
    assert engine_errors - set(SHARES_ITS_PARENTS_CODE) <= set(ERROR_CODES)
    assert len(set(ERROR_CODES.values())) == len(ERROR_CODES)
    assert not set(SHARES_ITS_PARENTS_CODE) & set(ERROR_CODES)


# Error classes that keep their parent's code on purpose (what a client already handles).
SHARES_ITS_PARENTS_CODE = {
    errors.UntrustedModuleError: "1020 since protocol 1.1: a user module the request did not allow",
}


def test_subclasses_inherit_the_code_of_their_nearest_listed_ancestor():
    class ColumnError(errors.DataLineError):
        pass

    assert error_code(ColumnError("x")) == 1002


def test_error_data_carries_the_structured_fields():
    exc = errors.DataLineError(
        "wrong number of values", file="d.json", line=3, index=2, feature="pos", found="5"
    )
    obj = error_object(exc)
    assert obj["code"] == 1002
    assert obj["message"] == exc.message and "d.json:3" in obj["message"]
    assert obj["data"] == {
        "file": "d.json",
        "line": 3,
        "index": 2,
        "feature": "pos",
        "found": "5",
        "type": "DataLineError",
    }


def test_internal_errors_name_the_exception_type():
    obj = error_object(ZeroDivisionError("division by zero"))
    assert obj["code"] == INTERNAL_ERROR
    assert "ZeroDivisionError" in obj["message"] and obj["data"] == {"type": "ZeroDivisionError"}


# --- responses --------------------------------------------------------------------------------


def test_response_shapes():
    assert result_response(3, {"a": 1}) == {"jsonrpc": "2.0", "id": 3, "result": {"a": 1}}
    error = error_response(None, MessageParseError("bad", position=4))
    assert error == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": "bad", "data": {"position": 4, "type": "MessageParseError"}},
    }
    assert notification("progress", {"id": 1}) == {
        "jsonrpc": "2.0",
        "method": "progress",
        "params": {"id": 1},
    }


def test_responses_encode_as_strict_json():
    response = error_response("é", errors.DataError("value “x” is not numeric", feature="wört"))
    assert json.loads(encode_json_line(response)) == response
