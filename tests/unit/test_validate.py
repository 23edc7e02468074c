"""Names a user gives never reach a shell or a path unchecked."""
import pytest

from agent.common.errors import InvalidInput
from agent.controller.db import addresses, validate


@pytest.mark.parametrize("name", ["vm1", "host-2", "a", "web_01.prod",
                                  "9lives", "x" * 63])
def test_good_names(name):
    assert validate.name(name) == name


@pytest.mark.parametrize("name", [
    "", "x" * 64, "a;rm -rf /", "a b", "$(id)", "a`b`", "../etc", "a/b",
    "-rf", ".hidden", "..", "a|b", "a&b", "a\nb", "naïve", None, 12])
def test_bad_names_are_one_clear_line(name):
    with pytest.raises(InvalidInput) as err:
        validate.name(name, "instance name")
    text = str(err.value)
    assert text.startswith("invalid instance name")
    assert "\n" not in text and len(text) < 160


def test_keys_allow_scopes_and_values_must_be_printable():
    assert validate.key("aggregate_instance_extra_specs:ssd")
    with pytest.raises(InvalidInput):
        validate.key("a=b")
    with pytest.raises(InvalidInput):
        validate.value("a\x00b")
    with pytest.raises(InvalidInput):
        validate.value("v" * 256)


def test_counts():
    assert validate.count(0, "disk_gb") == 0
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(InvalidInput):
            validate.count(bad, "ram_mb")


def test_first_free_address_skips_used_and_ends():
    rng = "198.18.0.10-198.18.0.12"
    assert addresses.first_free(rng, set()) == "198.18.0.10"
    assert addresses.first_free(rng, {"198.18.0.10"}) == "198.18.0.11"
    assert addresses.first_free(
        rng, {"198.18.0.10", "198.18.0.11", "198.18.0.12"}) is None


@pytest.mark.parametrize("rng", ["198.18.0.12-198.18.0.10", "nope",
                                 "198.18.0.1-::1", "1.2.3.4"])
def test_bad_ranges(rng):
    with pytest.raises(InvalidInput, match="guest_address_range"):
        addresses.parse_range(rng)


def test_macs_are_qemu_local():
    mac = addresses.random_mac()
    assert mac.startswith("52:54:00:") and len(mac) == 17
