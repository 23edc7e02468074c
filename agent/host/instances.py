"""Instance primitives the controller calls; each can run twice."""
from agent.common.errors import InvalidInput
from agent.conf import CONF
from agent.common import disk
from agent.hypervisor import domain_xml, domains, instance_dir, spec

GIB = 1 << 30
STORAGE = ("local", "shared")


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

    def prepare(self, uuid, storage, image_path, image_format, disk_gb):
        """Instance directory with a qcow2 overlay on the cached image,
        ``disk_gb`` GiB (at least the image's own size)."""
        d = idir(uuid, storage)
        d.create()
        base = disk.info(image_path, image_format)
        size = max(disk_gb * GIB, base.virtual_size)
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
