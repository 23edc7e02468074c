"""Matching a flavor property value against aggregate metadata values, with
Nova's operators:

- ``true`` (no operator): string equality;
- ``s== x`` ``s!= x`` ``s>= x`` ``s<= x`` ``s< x`` ``s> x``: string compare;
- ``= n``: number at least n; ``== n`` ``!= n`` ``>= n`` ``<= n``: numeric;
- ``<in> x``: x is a substring of the value; ``<all-in> a b``: a and b
  are both among the value's words;
- ``<or> a <or> b``: equal to one of a, b.
"""
import operator

from agent.controller import ha_policy

SCOPE = "aggregate_instance_extra_specs"

_STRING = {"s==": operator.eq, "s!=": operator.ne, "s>=": operator.ge,
           "s<=": operator.le, "s<": operator.lt, "s>": operator.gt}
_NUMERIC = {"=": operator.ge, "==": operator.eq, "!=": operator.ne,
            ">=": operator.ge, "<=": operator.le}


def _number(text):
    try:
        return float(text)
    except ValueError:
        return None


def matches(value, requirement):
    """True if aggregate metadata ``value`` satisfies ``requirement``."""
    words = requirement.split()
    if not words:
        return value == requirement
    op, rest = words[0], words[1:]
    if op == "<or>":
        return value in [alt.strip() for alt in requirement.split("<or>")[1:]]
    if op == "<in>":
        return " ".join(rest) in value
    if op == "<all-in>":
        present = set(value.split())
        return bool(rest) and all(w in present for w in rest)
    if op in _STRING and rest:
        return _STRING[op](value, " ".join(rest))
    if op in _NUMERIC and len(rest) == 1:
        have, want = _number(value), _number(rest[0])
        return have is not None and want is not None and \
            _NUMERIC[op](have, want)
    return value == requirement.strip()


def exact(requirement):
    """The one value ``requirement`` is equal to (as ``matches`` reads
    it), or None when it uses an operator."""
    words = requirement.split()
    if not words:
        return requirement
    op, rest = words[0], words[1:]
    if op in ("<or>", "<in>", "<all-in>") or (op in _STRING and rest) or \
            (op in _NUMERIC and len(rest) == 1):
        return None
    return requirement.strip()


def scoped(properties):
    """The (key, requirement) pairs of flavor ``properties`` that
    aggregate metadata must match: ``aggregate_instance_extra_specs:KEY``
    and unscoped ``KEY``; other scopes (``hw:``, ``quota:``) are not
    ours, nor are drover's own keys (``ha``, ``ha_priority``:
    agent.controller.ha_policy), which no host is asked to match."""
    pairs = []
    for key, want in properties.items():
        if key in ha_policy.KEYS:
            continue
        scope, sep, bare = key.partition(":")
        if sep:
            if scope != SCOPE:
                continue
            key = bare
        pairs.append((key, str(want)))
    return tuple(pairs)
