"""Which instances are highly available, and in which order they are
recovered (pure functions of the records; no I/O but the store reads).

- An instance is HA when its property ``ha`` (``server create --property
  ha=true``) says so; else when its flavor's property ``ha`` says so
  (``flavor create|set --property ha=true``); else the fleet default
  [ha] default_ha.  ``ha=false`` on the instance overrides a flavor or a
  default that says true.
- ``ha_priority`` (an integer property, instance first, then flavor;
  default 0) orders the recovery when capacity is short: higher first.

These property keys are drover's own: the scheduler does not match them
against aggregate metadata (agent.controller.scheduler.filters).
"""
from agent.common.errors import NotFound
from agent.conf import CONF

HA_KEY = "ha"
PRIORITY_KEY = "ha_priority"
KEYS = frozenset({HA_KEY, PRIORITY_KEY})
TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off"})


def parse_bool(value):
    """True / False for a property value, None when it says neither."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    return None


def _sources(store, instance):
    """The property dicts that may say it, in the order they win: the
    instance's, then its flavor's as the flavor is now (so that ``flavor
    set --property ha=true`` protects the instances already booted with
    it), or the snapshot taken at boot when the flavor is gone."""
    yield instance.get("guest_metadata") or {}
    props = None
    if store is not None and instance.get("flavor_id") is not None:
        try:
            props = store.get_flavor(str(instance["flavor_id"]))["properties"]
        except NotFound:        # deleted since: its snapshot says
            props = None
    if props is None:
        props = (instance.get("flavor") or {}).get("properties")
    yield props or {}


def decide_ha(instance_props, flavor_props, default):
    """The rule itself: the instance's word, else the flavor's, else the
    default (a value that is neither true nor false says nothing)."""
    for props in (instance_props, flavor_props):
        said = parse_bool(props.get(HA_KEY)) if HA_KEY in props else None
        if said is not None:
            return said
    return bool(default)


def is_ha(store, instance):
    """True if ``instance`` (a store record) is HA."""
    inst_props, flavor_props = _sources(store, instance)
    return decide_ha(inst_props, flavor_props, CONF.ha.default_ha)


def decide_priority(instance_props, flavor_props):
    for props in (instance_props, flavor_props):
        try:
            return int(str(props[PRIORITY_KEY]).strip())
        except (KeyError, ValueError):
            continue
    return 0


def ha_priority(store, instance):
    """The recovery priority of ``instance``: higher first, default 0."""
    inst_props, flavor_props = _sources(store, instance)
    return decide_priority(inst_props, flavor_props)


def recovery_order(store, instances):
    """``instances`` that are HA, grouped by priority, highest first:
    a list of lists (each group keeps its given order)."""
    groups = {}
    for inst in instances:
        if is_ha(store, inst):
            groups.setdefault(ha_priority(store, inst), []).append(inst)
    return [groups[p] for p in sorted(groups, reverse=True)]
