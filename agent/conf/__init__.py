"""Configuration: oslo.config option groups, one module per group.

Every group module exposes ``GROUP`` (a name), ``OPTS`` (a list of options)
and is listed in ``_MODULES``.  ``list_opts`` feeds ``oslo-config-generator``
(entry point ``oslo.config.opts``: ``drover``).
"""
from oslo_config import cfg

from agent.conf import (agent_opts, compute, controller, default, lab,
                        libvirt, migration, scheduler, ssh)

CONF = cfg.CONF

_MODULES = (default, libvirt, agent_opts, compute, controller, scheduler, ssh,
            migration, lab)


def register_opts(conf):
    for mod in _MODULES:
        group = None if mod.GROUP == "DEFAULT" else mod.GROUP
        conf.register_opts(mod.OPTS, group=group)


def list_opts():
    return [(mod.GROUP, mod.OPTS) for mod in _MODULES]


def load(argv=None, conf=CONF, default_config_files=None):
    """Parse command-line and config files into ``conf``."""
    conf(args=argv or [], project="drover",
         default_config_files=default_config_files)
    return conf


register_opts(CONF)
