"""Instance primitives the controller calls; each can run twice."""
from agent.common.errors import Conflict, InvalidInput
from agent.conf import CONF
from agent.common import disk
from agent.hypervisor import domain_xml, domains, instance_dir, spec
from agent.hypervisor.spec import DiskSpec

GIB = 1 << 30
STORAGE = ("local", "shared")
RESCUE_DISK = "disk.rescue"     # the rescue overlay, in the instance dir


def base_path(storage):
    if storage not in STORAGE:
        raise InvalidInput(f"invalid storage {storage!r}")
    if storage == "shared":
        if not CONF.agent.shared_instances_path:
            raise InvalidInput("this host has no shared storage "
                               "([agent] shared_instances_path)")
        return CONF.agent.shared_instances_path
    return CONF.agent.instances_path


def idir(uuid, storage):
    return instance_dir.InstanceDir(uuid, base_path(storage))


def domain_name(uuid):
    return f"instance-{uuid}"


class Instances:
    """Bound to the agent's libvirt connection.  ``guard(uuid)`` raises
    when no guest may start here (a self-fenced host)."""

    def __init__(self, conn, guard=None):
        self.conn = conn
        self.guard = guard

    def prepare(self, uuid, storage, image_path, image_format, disk_gb,
                flatten=False):
        """Instance directory with a qcow2 overlay on the cached image,
        ``disk_gb`` GiB (at least the image's own size).  ``flatten``: a
        standalone copy of the image instead (an unshelved instance's,
        which must not depend on its snapshot image); a disk already
        there is kept, never written over."""
        d = idir(uuid, storage)
        d.create()
        base = disk.info(image_path, image_format)
        size = max(disk_gb * GIB, base.virtual_size)
        if flatten:
            if not d.disk.exists():
                disk.convert(image_path, str(d.disk), image_format, "qcow2")
                disk.grow(str(d.disk), size, "qcow2")
            d.set_disk_format("qcow2")
            return {"path": str(d.path), "size": size}
        disk.create(str(d.disk), size=size, fmt="qcow2",
                    backing_file=image_path, backing_format=image_format)
        d.set_disk_format("qcow2")
        return {"path": str(d.path), "size": size}

    def define(self, spec):
        """Define the domain the controller describes in ``spec``."""
        d = idir(spec["uuid"], spec["storage"])
        xml = domain_xml.render_domain(self._domain_spec(d, spec))
        domains.define(self.conn, xml)
        d.write_xml(xml)
        return {"name": domain_name(spec["uuid"])}

    def _domain_spec(self, d, s):
        return spec.DomainSpec(
            uuid=s["uuid"], name=domain_name(s["uuid"]), vcpus=s["vcpus"],
            memory_mib=s["memory_mib"],
            disks=(spec.DiskSpec(str(d.disk), d.disk_format()),),
            nics=(spec.NicSpec(s["mac"], CONF.agent.bridge),),
            console_log=str(d.console_log), metadata=s.get("metadata", {}),
            flavor=s.get("flavor"))

    # -- rescue: the same domain (UUID, MAC, address) redefined to boot a
    # rescue overlay, the instance's own disk attached after it; unrescue
    # redefines it from the spec (instance.define) -------------------------

    def rescue_disk(self, uuid, storage, image_path, image_format):
        """A fresh qcow2 overlay of the rescue image beside the instance's
        disk (an older one is replaced); Conflict while the domain runs
        from it."""
        d = idir(uuid, storage)
        path = d.file(RESCUE_DISK)
        self._refuse_if_booted_from(uuid, path)
        path.unlink(missing_ok=True)
        base = disk.info(image_path, image_format)
        disk.create(str(path), size=base.virtual_size, fmt="qcow2",
                    backing_file=image_path, backing_format=image_format)
        d.set_disk_format("qcow2", RESCUE_DISK)
        return {"path": str(path), "size": base.virtual_size}

    def rescue_define(self, spec):
        """Redefine the domain of ``spec`` to boot the rescue overlay, its
        own disks attached after it, not booted (vdb...).  libvirt.xml
        keeps the original definition."""
        d = idir(spec["uuid"], spec["storage"])
        rescue = DiskSpec(str(d.file(RESCUE_DISK)),
                          d.disk_format(RESCUE_DISK))
        xml = domain_xml.render_rescue(self._domain_spec(d, spec), rescue)
        domains.define(self.conn, xml)
        return {"name": domain_name(spec["uuid"])}

    def rescue_cleanup(self, uuid, storage):
        """Remove the rescue overlay; absent: False.  Conflict while the
        domain runs from it."""
        d = idir(uuid, storage)
        path = d.file(RESCUE_DISK)
        self._refuse_if_booted_from(uuid, path)
        try:
            path.unlink()
            removed = True
        except FileNotFoundError:
            removed = False
        if d.exists():
            d.drop_disk_format(RESCUE_DISK)
        return {"removed": removed}

    def _refuse_if_booted_from(self, uuid, path):
        state = domains.state(self.conn, uuid)
        if state is None or state[0] == "shutoff":
            return
        if str(path) in domains.get_xml(self.conn, uuid):
            raise Conflict(f"domain {domain_name(uuid)} is running from "
                           f"{path}")

    def start(self, uuid):
        if self.guard is not None:
            self.guard(uuid)
        return {"started": domains.start(self.conn, uuid)}

    def stop(self, uuid, shutdown_timeout=None):
        return {"result": domains.shutdown(self.conn, uuid,
                                           shutdown_timeout)}

    def destroy(self, uuid):
        return {"destroyed": domains.destroy(self.conn, uuid)}

    def undefine(self, uuid):
        return {"undefined": domains.undefine(self.conn, uuid)}

    def cleanup(self, uuid, storage):
        return {"removed": idir(uuid, storage).remove()}

    def info(self, uuid):
        i = domains.info(self.conn, uuid)
        return {"uuid": i.uuid, "name": i.name, "state": i.state,
                "vcpus": i.vcpus, "memory_mib": i.memory_mib}

    def console_log(self, uuid, storage, lines=50):
        path = idir(uuid, storage).console_log
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            return {"log": ""}
        if lines:
            text = "\n".join(text.splitlines()[-lines:])
        return {"log": text}

    def register(self, server):
        server.register_group("instance", self)
