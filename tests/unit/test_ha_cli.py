"""drover ha status, host event list, server create --property ha=true:
the CLI asks the controller's methods that exist."""
from agent.cli.common import parse_properties
from agent.cli.main import build_parser
from agent.controller.api import ha, hosts


def test_ha_status_parses_with_formats():
    args = build_parser().parse_args(["ha", "status", "-f", "json"])
    assert (args.verb, args.action, args.format) == ("ha", "status", "json")


def test_host_event_list_parses():
    args = build_parser().parse_args(["host", "event", "list", "h1"])
    assert (args.action, args.what, args.name) == ("event", "list", "h1")


def test_the_methods_the_cli_calls_exist():
    assert "ha.status" in ha.METHODS and "host.events" in ha.METHODS
    assert "host.show" in hosts.METHODS


def test_server_create_property_ha():
    args = build_parser().parse_args(
        ["server", "create", "vm1", "--flavor", "small", "--image", "img",
         "--property", "ha=true", "--property", "ha_priority=5"])
    assert parse_properties(args.property) == {"ha": "true",
                                               "ha_priority": "5"}
