import pytest

from agent.common import errors
from agent.common.rpc import protocol as proto
from agent.transport.errors import AgentError, HostUnreachable


def test_encode_is_one_line_even_with_newlines_in_values():
    line = proto.encode({"id": 1, "result": "a\nb"})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert proto.decode(line) == {"id": 1, "result": "a\nb"}


@pytest.mark.parametrize("line", [b"garbage", b"[1, 2]", b"\xff\xfe", b"3"])
def test_decode_rejects_what_is_not_an_object(line):
    with pytest.raises(proto.ProtocolError):
        proto.decode(line)


class _DomainMissing(errors.NotFound):
    """An agent-side subclass the controller does not know."""


@pytest.mark.parametrize("exc, kind", [
    (errors.NotFound("x"), "NotFound"),
    (errors.Conflict("x"), "Conflict"),
    (errors.InvalidInput("x"), "InvalidInput"),
    (errors.DroverError("x"), "DroverError"),
    (errors.CommandFailed(["qemu-img"], 1, "bad"), "CommandFailed"),
    (_DomainMissing("x"), "NotFound"),
    (HostUnreachable("x"), "DroverError"),
    (KeyError("x"), "InternalError"),
])
def test_error_type_is_the_nearest_common_error_class(exc, kind):
    assert proto.error_type(exc) == kind


def test_internal_errors_name_the_exception_on_one_line():
    body = proto.error_body(ValueError("bad value\nmore detail"))
    assert body == {"type": "InternalError",
                    "message": "ValueError: bad value"}
    assert proto.error_body(RuntimeError()) == {
        "type": "InternalError", "message": "RuntimeError"}


@pytest.mark.parametrize("cls", [errors.NotFound, errors.Conflict,
                                 errors.InvalidInput, errors.DroverError])
def test_errors_round_trip_as_their_class(cls):
    exc = proto.error_from_body(proto.error_body(cls("no such thing")),
                                AgentError)
    assert type(exc) is cls and str(exc) == "no such thing"


def test_command_failed_keeps_its_class_and_message():
    sent = errors.CommandFailed(["qemu-img", "info"], 1, "x\ncould not open")
    exc = proto.error_from_body(proto.error_body(sent), AgentError)
    assert isinstance(exc, errors.CommandFailed)
    assert str(exc) == "qemu-img failed (exit 1): could not open"
    assert exc.exit_code == 1


@pytest.mark.parametrize("body", [
    {"type": "InternalError", "message": "KeyError: 'x'"},
    {"type": "SomethingNew", "message": "KeyError: 'x'"},
    {"type": "__class__", "message": "KeyError: 'x'"},
])
def test_unknown_and_internal_errors_become_the_fallback(body):
    exc = proto.error_from_body(body, AgentError)
    assert type(exc) is AgentError and str(exc) == "KeyError: 'x'"


def test_a_malformed_error_body_still_gives_an_error():
    exc = proto.error_from_body("nonsense", AgentError)
    assert type(exc) is AgentError and str(exc) == "InternalError"
