"""Domain XML from a DomainSpec, through the jinja2 templates
``domain.xml.j2`` and ``domain-rescue.xml.j2`` (autoescaped)."""
import dataclasses

from agent.common import templates
from agent.conf import CONF

# drover's own namespace in <metadata> (read back with
# virDomain.metadata(VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS)).
METADATA_NS = "http://drover.invalid/xmlns/libvirt/instance/1.0"


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


def _render(name, **context):
    return templates.render(
        name, autoescape=True,
        virt_type=CONF.libvirt.virt_type,
        cpu_model=CONF.libvirt.cpu_model,
        machine_type=CONF.libvirt.machine_type,
        default_cache=CONF.libvirt.disk_cachemode,
        ns=METADATA_NS, **context)
