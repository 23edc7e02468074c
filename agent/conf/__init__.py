"""Configuration: oslo.config option groups, one module per group.

Every group module exposes ``GROUP`` (a name), ``OPTS`` (a list of options)
and is listed in ``_MODULES``.  ``list_opts`` feeds ``oslo-config-generator``
(entry point ``oslo.config.opts``: ``drover``).
"""
from oslo_config import cfg

from agent.common.errors import InvalidInput, one_line

from agent.conf import (agent_opts, compute, controller, database, default,
                        fencing, ha, lab, libvirt, migration, rebalance,
                        scheduler, ssh)

CONF = cfg.CONF

_MODULES = (default, libvirt, agent_opts, compute, controller, database,
            scheduler, ssh, migration, fencing, ha, lab, rebalance)


def register_opts(conf):
    for mod in _MODULES:
        group = None if mod.GROUP == "DEFAULT" else mod.GROUP
        conf.register_opts(mod.OPTS, group=group)


def list_opts():
    return [(mod.GROUP, mod.OPTS) for mod in _MODULES]


def load(argv=None, conf=CONF, default_config_files=None):
    """Parse command-line and config files into ``conf``, and read every
    option once: oslo.config reports a bad value only when it is read,
    which could be in the middle of an operation.  InvalidInput (one
    line) for a missing file or a bad value."""
    try:
        conf(args=argv or [], project="drover",
             default_config_files=default_config_files)
    except cfg.Error as err:
        raise InvalidInput(f"configuration: {one_line(err)}") \
            from None
    for group, opts in list_opts():
        section = conf if group == "DEFAULT" else conf[group]
        for opt in opts:
            try:
                section[opt.dest]
            except cfg.Error as err:
                why = one_line(err).rpartition("is not valid: ")[2]
                raise InvalidInput(f"configuration: [{group}] {opt.dest}: "
                                   f"{why}") from None
    return conf


register_opts(CONF)
