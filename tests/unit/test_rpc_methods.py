"""The agent's method table: the agent serves exactly it, and both ends
refuse what does not match it."""
import pytest

from agent.common.rpc import methods
from agent.common.rpc.methods import AGENT, Method, MethodMismatch, table
from agent.common.rpc.server import RpcServer
from agent.host import daemon
from agent.host.migration import job


def test_the_agent_serves_every_method_of_the_table_and_no_other(mocker):
    server = daemon.build_server(mocker.Mock())
    assert server.table is AGENT
    assert server.registered() == sorted(AGENT)


def test_the_agent_does_not_start_with_a_method_left_unimplemented(mocker):
    mocker.patch.dict(AGENT, {"instance.teleport": Method(
        "instance.teleport", ("uuid",))})
    with pytest.raises(MethodMismatch, match="instance.teleport"):
        daemon.build_server(mocker.Mock())


def test_the_agent_does_not_start_serving_a_method_not_in_the_table(mocker):
    mocker.patch.dict(AGENT)
    del AGENT["host.facts"]
    with pytest.raises(MethodMismatch, match="'host.facts' is not in"):
        daemon.build_server(mocker.Mock())


def test_a_group_implementation_missing_a_method_is_refused(mocker):
    mocker.patch.dict(AGENT, {"storage.probe_erase": Method(
        "storage.probe_erase", ("storage",))})
    with pytest.raises(MethodMismatch, match="storage.probe_erase: .*"
                       "has no probe_erase"):
        daemon.build_server(mocker.Mock())


def test_a_group_serves_only_the_tables_methods(tmp_path):
    server = RpcServer(str(tmp_path / "s.sock"), methods=table(
        Method("x.one", ("a",)), Method("y.two")))

    class Impl:
        def one(self, a):
            pass

        def extra(self):
            pass
    server.register_group("x", Impl())
    assert server.registered() == ["x.one"]
    with pytest.raises(MethodMismatch, match="'x.extra' is not in"):
        server.register("x.extra", Impl().extra)
    with pytest.raises(MethodMismatch, match="without an implementation: "
                       "y.two$"):
        server.check_complete()


def test_the_agent_does_not_start_when_a_signature_differs(mocker):
    mocker.patch.dict(AGENT, {"instance.stop": Method("instance.stop",
                                                      ("uuid",))})
    with pytest.raises(MethodMismatch, match=r"instance.stop: the table "
                       r"says \(uuid\)"):
        daemon.build_server(mocker.Mock())


def _nothing():
    pass


def _two(uuid, storage):
    pass


def _optional(uuid, lines=50):
    pass


def _star(*args, **kwargs):
    pass


@pytest.mark.parametrize("method, fn, fits", [
    (Method("m"), _nothing, True),
    (Method("m", ("uuid", "storage")), _two, True),
    (Method("m", ("storage", "uuid")), _two, True),     # names, not order
    (Method("m", ("uuid",)), _two, False),              # one too many
    (Method("m", ("uuid", "storage", "x")), _two, False),
    (Method("m", ("uuid",), ("lines",)), _optional, True),
    (Method("m", ("uuid", "lines")), _optional, False),  # has a default
    (Method("m", ("uuid",)), _optional, False),
    (Method("m"), _star, False),
    (Method("m", ("a",)), _star, False),
    (Method("m", ("value",)), lambda value: value, True),
])
def test_a_function_is_registered_only_with_the_declared_parameters(
        tmp_path, method, fn, fits):
    server = RpcServer(str(tmp_path / "s.sock"), methods=table(method))
    if fits:
        server.register("m", fn)
        server.check_complete()
    else:
        with pytest.raises(MethodMismatch, match="m: the table says"):
            server.register("m", fn)


def test_a_server_without_a_table_serves_what_it_is_given(tmp_path):
    server = RpcServer(str(tmp_path / "s.sock"))
    server.register("server.show", lambda name: name)
    server.check_complete()


@pytest.mark.parametrize("params, message", [
    ({}, r"call of instance.console_log\(uuid, storage, \[lines\]\): "
         r"missing uuid, storage$"),
    ({"uuid": "u", "storage": "local", "line": 5}, "unknown line$"),
    ({"storage": "local", "x": 1}, "missing uuid; unknown x$"),
])
def test_a_call_must_fit_the_methods_parameters(params, message):
    with pytest.raises(MethodMismatch, match=message):
        methods.check_call(AGENT, "instance.console_log", params)


def test_a_call_may_leave_out_optional_parameters():
    assert methods.check_call(AGENT, "instance.console_log",
                              {"uuid": "u", "storage": "local"}).timeout \
        is None
    assert methods.check_call(AGENT, "subscribe", {}).name == "subscribe"


def test_an_unknown_method_is_a_programming_error():
    with pytest.raises(MethodMismatch) as err:
        methods.check_call(AGENT, "instance.teleport", {"uuid": "u"})
    assert isinstance(err.value, ValueError)


def test_every_entry_is_documented_and_says_why_it_is_not_idempotent():
    for method in AGENT.values():
        assert method.doc, method.name
        assert method.idempotent or "Not idempotent" in method.doc, \
            method.name
        assert not set(method.required) & set(method.optional)
        # AgentClient.call takes "timeout" for itself.
        assert "timeout" not in method.required + method.optional
    assert not set(AGENT) & set(methods.BUILTIN)


def test_the_migration_job_speaks_the_wire_vocabulary():
    assert job.COMPLETED is methods.COMPLETED
    assert job.ACTIVE is methods.ACTIVE
