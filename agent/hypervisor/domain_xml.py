"""Domain XML from a DomainSpec, through the jinja2 templates."""
import dataclasses
import functools
import os
import pathlib
import sys

import jinja2
from oslo_config import cfg

from agent.conf import CONF

# drover's own namespace in <metadata> (read back with
# virDomain.metadata(VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS)).
METADATA_NS = "http://drover.invalid/xmlns/libvirt/instance/1.0"


def templates_dir():
    """[DEFAULT] templates_path, else the source tree's or the installed
    ``templates`` directory."""
    configured = _default_opt("templates_path")
    if configured:
        return pathlib.Path(configured)
    source = pathlib.Path(__file__).resolve().parents[2] / "templates"
    if source.is_dir():
        return source
    return pathlib.Path(sys.prefix) / "share" / "drover" / "templates"


def _default_opt(name):
    # agent.conf registers [DEFAULT] options as a group named "DEFAULT"
    # (CONF.DEFAULT.x) for now; oslo's usual place is CONF.x.
    try:
        return getattr(CONF, name)
    except cfg.NoSuchOptError:
        return getattr(CONF.DEFAULT, name)


@functools.lru_cache(maxsize=4)
def _environment(directory):
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        autoescape=True, undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True)


def _render(template, **context):
    env = _environment(os.fspath(templates_dir()))
    return env.get_template(template).render(
        virt_type=CONF.libvirt.virt_type,
        cpu_model=CONF.libvirt.cpu_model,
        machine_type=CONF.libvirt.machine_type,
        default_cache=CONF.libvirt.disk_cachemode,
        ns=METADATA_NS, **context)


def render_domain(spec):
    """The XML of the guest described by ``spec`` (a DomainSpec)."""
    return _render("domain.xml.j2", spec=spec)


def render_rescue(spec, rescue_disk):
    """The guest booted from ``rescue_disk`` (a DiskSpec), its own disks
    attached after it with the next targets (vda rescue, vdb disk, ...)."""
    disks = (rescue_disk, *spec.disks)
    both = dataclasses.replace(spec, disks=tuple(
        dataclasses.replace(d, target=None) for d in disks))
    return _render("domain-rescue.xml.j2",
                   spec=dataclasses.replace(both, disks=both.disks[1:]),
                   rescue_disk=both.disks[0])
