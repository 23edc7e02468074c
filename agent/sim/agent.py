"""The agent RPC of one simulated host: the methods the controller calls,
with the result shapes and errors of agent/host/{facts,instances,moves,
live,storage,image_cache}.py, over the world of agent.sim.world."""
import hashlib
import os
import uuid as uuidlib

from agent.common.errors import Conflict, DroverError, InvalidInput, NotFound
from agent.host.migration import dest_cleanup
from agent.sim.world import GIB, IMAGE_CACHE, Disk, Domain, Job

COPY_STEPS = 2          # status calls before a disk copy ends
LIVE_STEPS = 2          # wait calls before a live migration ends
NO_SPACE = "No space left on device"


def _uuid(value):
    try:
        return str(uuidlib.UUID(value))
    except (TypeError, ValueError, AttributeError):
        raise InvalidInput(f"not a UUID: {value!r}") from None


def _storage(host, storage):
    if storage not in ("local", "shared"):
        raise InvalidInput(f"invalid storage {storage!r}")
    if storage == "shared" and not host.shared:
        raise InvalidInput("this host has no shared storage "
                           "([agent] shared_instances_path)")
    return storage


class SimAgent:
    """``call(method, **params)`` runs one agent method on ``host``."""

    def __init__(self, world, host):
        self.world = world
        self.host = host
        self.copy_steps = COPY_STEPS
        self.live_steps = LIVE_STEPS

    def call(self, method, **params):
        fn = getattr(self, method.replace(".", "_"), None)
        if fn is None or method.startswith("_"):
            raise RuntimeError(f"unknown method {method}")
        return fn(**params)

    # -- helpers --------------------------------------------------------------

    def _dirs(self, storage):
        return self.world.dirs(self.host, _storage(self.host, storage))

    def _path(self, storage, name):
        return f"{self.host.base(storage)}/{name}"

    def _write(self, what):
        if self.host.disk_full:
            raise DroverError(f"{what}: {NO_SPACE}")

    def _domain(self, uuid):
        dom = self.host.domains.get(_uuid(uuid))
        if dom is None:
            raise NotFound(f"no domain with UUID {uuid}")
        return dom

    # -- host -------------------------------------------------------------

    def host_facts(self):
        h = self.host
        running = [d for d in h.domains.values() if d.running]
        used = sum(d.size for d in self.world.storage[h.ns("local")]
                   .values()) // GIB
        return {
            "hostname": h.name, "vcpus": h.vcpus, "memory_mb": h.memory_mb,
            "disk_gb": h.disk_gb,
            "vcpus_used": sum(d.vcpus for d in running),
            "memory_mb_used": sum(d.memory_mib for d in running),
            "disk_gb_used": h.disk_gb if h.disk_full else used,
            "hypervisor_type": "QEMU", "libvirt_version": "10.0.0",
            "qemu_version": "8.2.2", "cpu_model": None, "virt_type": "qemu",
            "instances_path": h.base("local"),
            "shared_instances_path": h.base("shared") if h.shared else None,
            "image_cache_path": IMAGE_CACHE, "migration_address": None,
            "domains": [{"uuid": d.uuid, "name": d.name, "state": d.state}
                        for d in h.domains.values()],
        }

    def host_inventory(self):
        h = self.host
        dirs = {"local": sorted(self.world.dirs(h, "local"))}
        if h.shared:
            dirs["shared"] = sorted(self.world.dirs(h, "shared"))
        return {"host": h.name,
                "domains": [{"uuid": d.uuid, "name": d.name,
                             "state": d.state}
                            for d in h.domains.values()],
                "directories": dirs}

    # A simulated host holds its lease and never fences itself (the
    # self-fencing rules have a simulated world of their own:
    # agent.sim.selffence).
    def host_lease_renew(self, lease_time, peers, ha_instances):
        return {"fenced": False, "reason": "", "expires_in": lease_time,
                "destroyed": [], "ha_instances": list(ha_instances)}

    def host_peer_view(self):
        return {}

    def host_lease_clear(self):
        return {"cleared": False}

    # -- image cache ------------------------------------------------------

    def image_status(self, uuid):
        uuid = _uuid(uuid)
        path = f"{IMAGE_CACHE}/{uuid}"
        return {"present": uuid in self.host.images, "path": path,
                "upload_path": path + ".part"}

    def image_commit(self, uuid, sha256, size, format):
        uuid = _uuid(uuid)
        if uuid not in self.host.images:
            if uuid not in self.host.uploads:
                raise DroverError(f"image {uuid}: nothing was uploaded")
            self.host.uploads.discard(uuid)
            self.host.images.add(uuid)
        return {"path": f"{IMAGE_CACHE}/{uuid}"}

    def upload(self, remote_path, content=None):
        """The controller's SFTP put of an image's ``.part`` (``content``:
        the store file's, a snapshot's data)."""
        self._write(f"writing {remote_path}")
        name = remote_path.rsplit("/", 1)[-1].removesuffix(".part")
        self.host.uploads.add(name)
        if content is not None:
            self.host.image_data[name] = content

    # -- snapshots (agent.host.snapshots) -----------------------------------

    def _snapshot_path(self, uuid, storage, image_uuid):
        return (f"{self._path(storage, _uuid(uuid))}/snapshot-"
                f"{_uuid(image_uuid)}.qcow2")

    def snapshot_create(self, uuid, storage, image_uuid, dest_dir=None,
                        checksum=True):
        """``dest_dir``: the image store shared with the controller (a
        real directory in a test): the file is written there for real."""
        uuid, dirs = _uuid(uuid), self._dirs(storage)
        disk = dirs.get(uuid)
        if disk is None:
            raise NotFound(f"no disk image at {self._path(storage, uuid)}"
                           "/disk")
        path = self._snapshot_path(uuid, storage, image_uuid)
        if dest_dir is None:
            made = image_uuid not in self.host.snapshots
            if made:
                self._write("writing the snapshot")
                self.host.snapshots[image_uuid] = (storage, disk.data)
            content = self.host.snapshots[image_uuid][1] or ""
        else:       # nothing of it on the host's own disks
            path = os.path.join(dest_dir, _uuid(image_uuid))
            made = not os.path.isfile(path)
            if made:
                self._write("writing the snapshot")
                with open(path, "w") as f:
                    f.write(disk.data or "")
            with open(path) as f:
                content = f.read()
        dom = self.host.domains.get(uuid)
        return {"path": path, "size": len(content.encode()),
                "virtual_size": disk.size,
                "sha256": hashlib.sha256(content.encode()).hexdigest()
                if checksum else None,
                "method": (("live" if dom and dom.running else "offline")
                           if made else None), "seconds": 0.0,
                "hash_seconds": 0.0 if checksum else None}

    def snapshot_remove(self, uuid, storage, image_uuid, dest_dir=None):
        _uuid(uuid), self._dirs(storage)
        if dest_dir is not None:
            path = os.path.join(dest_dir, _uuid(image_uuid))
            found = os.path.isfile(path)
            for p in (path, path + ".part"):
                if os.path.isfile(p):
                    os.unlink(p)
            return {"removed": found}
        return {"removed": self.host.snapshots.pop(image_uuid, None)
                is not None}

    def download(self, remote_path):
        """The controller's SFTP get of a snapshot file: its content."""
        image_uuid = remote_path.rsplit("/snapshot-", 1)[-1] \
            .removesuffix(".qcow2")
        if image_uuid not in self.host.snapshots:
            raise DroverError(f"{remote_path}: No such file")
        return self.host.snapshots[image_uuid][1] or ""

    def _cached(self, image_path):
        if image_path and image_path.rsplit("/", 1)[-1] not in \
                self.host.images:
            raise DroverError(f"qemu-img failed (exit 1): Could not open "
                              f"'{image_path}': No such file or directory")

    # -- instances --------------------------------------------------------

    def instance_prepare(self, uuid, storage, image_path, image_format,
                         disk_gb, flatten=False):
        uuid, dirs = _uuid(uuid), self._dirs(storage)
        self._cached(image_path)
        if flatten:         # a standalone copy of the image; kept if there
            if uuid not in dirs:
                self._write(f"creating {self._path(storage, uuid)}")
                dirs[uuid] = Disk("qcow2", disk_gb * GIB, None,
                                  data=self.host.image_data.get(
                                      image_path.rsplit("/", 1)[-1]))
            return {"path": self._path(storage, uuid),
                    "size": disk_gb * GIB}
        self._write(f"creating {self._path(storage, uuid)}")
        # A new overlay: over an existing disk, whatever it held is gone.
        data = f"overwritten-{uuid}" if uuid in dirs else f"data-{uuid}"
        dirs[uuid] = Disk("qcow2", disk_gb * GIB, image_path, data=data)
        return {"path": self._path(storage, uuid), "size": disk_gb * GIB}

    def instance_define(self, spec):
        uuid, dirs = _uuid(spec["uuid"]), self._dirs(spec["storage"])
        d = dirs.get(uuid)
        dom = self.host.domains.get(uuid)
        values = dict(name=f"instance-{uuid}", vcpus=spec["vcpus"],
                      memory_mib=spec["memory_mib"], storage=spec["storage"],
                      flavor=spec.get("flavor"))
        if dom is None:
            self.host.domains[uuid] = Domain(uuid, **values)
        else:
            for key, value in values.items():
                setattr(dom, key, value)
            dom.persistent = True
            dom.rescue = False
        if d is None:     # the real agent writes libvirt.xml in the dir
            raise FileNotFoundError(
                "[Errno 2] No such file or directory: "
                f"'{self._path(spec['storage'], uuid)}/libvirt.xml.part'")
        d.xml = True
        return {"name": f"instance-{uuid}"}

    def _rescue_dir(self, uuid, storage):
        d = self._dirs(storage).get(_uuid(uuid))
        if d is None:
            raise FileNotFoundError(
                "[Errno 2] No such file or directory: "
                f"'{self._path(storage, uuid)}/disk.rescue'")
        dom = self.host.domains.get(_uuid(uuid))
        if dom is not None and dom.running and dom.rescue:
            raise Conflict(f"domain instance-{uuid} is running from "
                           f"{self._path(storage, uuid)}/disk.rescue")
        return d

    def instance_rescue_disk(self, uuid, storage, image_path, image_format):
        self._cached(image_path)
        d = self._rescue_dir(uuid, storage)
        self._write(f"creating {self._path(storage, uuid)}/disk.rescue")
        d.rescue = image_path
        return {"path": self._path(storage, uuid) + "/disk.rescue",
                "size": GIB}

    def instance_rescue_define(self, spec):
        uuid = _uuid(spec["uuid"])
        d = self._dirs(spec["storage"]).get(uuid)
        if d is None or d.rescue is None:
            raise NotFound(f"no format recorded for disk.rescue in "
                           f"{self._path(spec['storage'], uuid)}/disk.info")
        dom = self.host.domains.get(uuid)
        values = dict(name=f"instance-{uuid}", vcpus=spec["vcpus"],
                      memory_mib=spec["memory_mib"], storage=spec["storage"],
                      flavor=spec.get("flavor"), persistent=True,
                      rescue=True)
        if dom is None:
            self.host.domains[uuid] = Domain(uuid, **values)
        else:
            for key, value in values.items():
                setattr(dom, key, value)
        return {"name": f"instance-{uuid}"}

    def instance_rescue_cleanup(self, uuid, storage):
        d = self._rescue_dir(uuid, storage)
        removed, d.rescue = d.rescue is not None, None
        return {"removed": removed}

    def instance_start(self, uuid):
        dom = self._domain(uuid)
        if dom.running:
            return {"started": False}
        ns = self.host.ns(dom.storage)
        disk = self.world.storage[ns].get(dom.uuid)
        path = self._path(dom.storage, dom.uuid) + "/disk"
        if disk is None:
            raise DroverError(f"cannot start domain {dom.uuid}: Cannot "
                              f"access storage file '{path}': No such file "
                              "or directory")
        holder = self.world.lock_holder(ns, dom.uuid, but=self.host)
        if holder is not None:
            raise DroverError(
                f"cannot start domain {dom.uuid}: internal error: process "
                "exited while connecting to monitor: qemu-system-x86_64: "
                f"Failed to get \"write\" lock on {path}: Is another "
                "process using the image?")
        if dom.rescue and disk.rescue is None:
            raise DroverError(f"cannot start domain {dom.uuid}: Cannot "
                              f"access storage file '{path}.rescue': No "
                              "such file or directory")
        dom.state = "running"
        return {"started": True}

    def instance_stop(self, uuid, shutdown_timeout=None):
        dom = self._domain(uuid)
        if not dom.running:
            return {"result": "already-off"}
        dom.state = "shutoff"
        self._drop_transient(dom)
        return {"result": "shutdown"}

    def instance_destroy(self, uuid):
        dom = self.host.domains.get(_uuid(uuid))
        if dom is None or not dom.running:
            return {"destroyed": False}
        dom.state = "shutoff"
        self._drop_transient(dom)
        return {"destroyed": True}

    def _drop_transient(self, dom):
        if not dom.persistent:
            del self.host.domains[dom.uuid]

    def instance_undefine(self, uuid):
        dom = self.host.domains.get(_uuid(uuid))
        if dom is None or not dom.persistent:
            return {"undefined": False}
        if dom.running:
            dom.persistent = False      # keeps running, transient
        else:
            del self.host.domains[dom.uuid]
        return {"undefined": True}

    def instance_cleanup(self, uuid, storage):
        uuid = _uuid(uuid)
        return {"removed": self._dirs(storage).pop(uuid, None) is not None}

    def instance_info(self, uuid):
        dom = self._domain(uuid)
        return {"uuid": dom.uuid, "name": dom.name, "state": dom.state,
                "vcpus": dom.vcpus, "memory_mib": dom.memory_mib}

    def instance_console_log(self, uuid, storage, lines=50):
        return {"log": ""}

    # -- shared-storage probe ---------------------------------------------

    def _probes(self, storage):
        return self.world.probes[self.host.ns(_storage(self.host, storage))]

    def storage_probe_write(self, storage):
        self._write("writing a probe")
        name = self.world.next_probe()
        self._probes(storage).add(name)
        return {"name": name}

    def storage_probe_check(self, storage, name):
        return {"found": name in self._probes(storage)}

    def storage_probe_remove(self, storage, name):
        probes = self._probes(storage)
        found = name in probes
        probes.discard(name)
        return {"removed": found}

    # -- cold moves -------------------------------------------------------

    def move_base(self, storage):
        _storage(self.host, storage)
        return {"path": self.host.base(storage)}

    def move_power_off(self, uuid, shutdown_timeout=None):
        if _uuid(uuid) not in self.host.domains:
            return {"result": "already-off"}
        return self.instance_stop(uuid, shutdown_timeout)

    def _rename(self, storage, src, dst):
        dirs = self._dirs(storage)
        if dst in dirs:
            if src in dirs:
                raise Conflict(f"both {self._path(storage, src)} and "
                               f"{self._path(storage, dst)} exist; refusing "
                               "to replace one with the other")
            return False
        if src not in dirs:
            raise NotFound(f"neither {self._path(storage, src)} nor "
                           f"{self._path(storage, dst)} exists")
        dirs[dst] = dirs.pop(src)
        return True

    def move_to_resize(self, uuid, storage):
        uuid = _uuid(uuid)
        return {"moved": self._rename(storage, uuid, uuid + "_resize")}

    def move_restore(self, uuid, storage):
        uuid = _uuid(uuid)
        return {"moved": self._rename(storage, uuid + "_resize", uuid)}

    def move_discard(self, uuid, storage):
        uuid = _uuid(uuid)
        return {"removed": self._dirs(storage).pop(uuid + "_resize", None)
                is not None}

    def move_convert_raw(self, uuid, storage):
        d = self._dirs(storage).get(_uuid(uuid) + "_resize")
        if d is None:
            raise NotFound(f"no format recorded for "
                           f"{self._path(storage, uuid + '_resize')}/disk")
        if d.fmt != "qcow2":
            return {"converted": False}
        self._write("converting the disk")
        d.fmt, d.backing = "raw", None
        return {"converted": True}

    def move_copy_start(self, key, uuid, storage, dest_address=None,
                        dest_base=None):
        key, uuid = _uuid(key), _uuid(uuid)
        dirs = self._dirs(storage)
        if uuid + "_resize" not in dirs:
            raise NotFound(f"no {self._path(storage, uuid + '_resize')} to "
                           "copy")
        job = self.host.copy_jobs.get(key)
        if job is None or job.state == "failed":
            job = self.host.copy_jobs[key] = Job(
                self.copy_steps,
                lambda: self._copy(uuid, storage, dest_address, dest_base))
        return self._copy_status(job)

    def _copy(self, uuid, storage, dest_address, dest_base):
        src = self._dirs(storage)[uuid + "_resize"]
        if dest_address is None:        # beside it, on the same storage
            if uuid not in self._dirs(storage):
                self._write("copying")
                self._dirs(storage)[uuid] = Disk(**vars(src))
            return {"bytes_sent": 0, "bytes_allocated": src.size}
        dest = self.world.host_by_address(dest_address)
        if not self.world.link_ok(self.host, dest):
            raise DroverError(f"ssh: connect to host {dest_address} port "
                              "22: No route to host")
        if dest.disk_full:
            raise DroverError(f"receive-disk on {dest.name}: {NO_SPACE}")
        target = "shared" if dest_base == dest.base("shared") else "local"
        self.world.dirs(dest, target)[uuid] = Disk(**vars(src))
        return {"bytes_sent": src.size, "bytes_data": src.size,
                "bytes_allocated": src.size, "virtual_size": src.size,
                "seconds": 1.0}

    @staticmethod
    def _copy_status(job):
        done = job.state == "done"
        return {"state": job.state, "error": job.error,
                "kind": "DroverError" if job.error else None,
                "bytes_done": 1 if done else 0, "bytes_total": 1,
                "percent": 100.0 if done else 0.0, "result": job.result}

    def move_copy_status(self, key):
        job = self.host.copy_jobs.get(_uuid(key))
        if job is None:
            return {"state": "none"}
        job.advance()
        return self._copy_status(job)

    def move_finish_disk(self, uuid, storage, disk_gb, image_path=None,
                         image_format=None):
        d = self._dirs(storage).get(_uuid(uuid))
        if d is None:
            raise NotFound(f"no format recorded for "
                           f"{self._path(storage, uuid)}/disk")
        rebased = False
        if d.fmt == "qcow2" and d.backing and image_path and \
                d.backing != image_path:
            self._cached(image_path)
            d.backing, rebased = image_path, True
        grown = disk_gb * GIB > d.size
        if grown:
            self._write("qemu-img resize")
            d.size = disk_gb * GIB
        return {"rebased": rebased, "grown": grown}

    # -- live migration: source -------------------------------------------

    def migration_start(self, uuid, dest_address, migration_address,
                        migration_uuid, block_migration=False,
                        shared_storage_checked=False):
        uuid, migration_uuid = _uuid(uuid), _uuid(migration_uuid)
        dom = self._domain(uuid)
        held = self.host.live_jobs.get(uuid)
        if held is not None:
            if held[0] == migration_uuid or held[1].state == "running":
                return self._live_status(uuid)
        dest = self.world.host_by_address(dest_address)
        self.host.live_jobs[uuid] = (migration_uuid, Job(
            self.live_steps,
            lambda: self._live(dom, dest, block_migration)))
        return self._live_status(uuid)

    def _live(self, dom, dest, block):
        if not dom.running or self.host.domains.get(dom.uuid) is not dom:
            raise DroverError("Requested operation is not valid: domain is "
                              "not running")
        if not self.world.link_ok(self.host, dest):
            raise DroverError("unable to connect to server at "
                              f"'{dest.address}:49152': No route to host")
        if dom.uuid in dest.domains:
            raise DroverError("operation failed: domain "
                              f"'{dom.name}' already exists")
        src_dirs = self.world.dirs(self.host, dom.storage)
        dest_dirs = self.world.dirs(dest, dom.storage)
        dest_disk = dest_dirs.get(dom.uuid)
        if dest_disk is None:
            raise DroverError(f"Cannot access storage file "
                              f"'{dest.base(dom.storage)}/{dom.uuid}/disk'")
        if block and src_dirs is not dest_dirs:
            if dest.disk_full:
                raise DroverError(f"block copy to {dest.name}: {NO_SPACE}")
            dest_disk.data = src_dirs[dom.uuid].data
        del self.host.domains[dom.uuid]
        dest.domains[dom.uuid] = Domain(**{**vars(dom),
                                           "persistent": True})
        return {"elapsed": 1.0, "final_downtime_ms": 30}

    def _live_status(self, uuid):
        mig_uuid, job = self.host.live_jobs[uuid]
        status = {"running": "running", "done": "completed",
                  "failed": "failed", "cancelled": "cancelled"}[job.state]
        result = job.result or {}
        return {"instance_uuid": uuid, "status": status,
                "reason": job.error, "progress": {"percent": 100
                                                  if job.result else 0},
                "downtime_ms": None,
                "final_downtime_ms": result.get("final_downtime_ms"),
                "elapsed": result.get("elapsed", 0), "created_at": 1.0,
                "bandwidth_limit": self.policy["bandwidth"],
                "migration_uuid": mig_uuid}

    def _live_job(self, uuid):
        uuid = _uuid(uuid)
        if uuid not in self.host.live_jobs:
            raise NotFound(f"no migration of instance {uuid} on this host")
        return uuid, self.host.live_jobs[uuid][1]

    def migration_status(self, uuid):
        return self._live_status(self._live_job(uuid)[0])

    def migration_wait(self, uuid, wait_s=5.0):
        uuid, job = self._live_job(uuid)
        job.advance()
        return self._live_status(uuid)

    def migration_abort(self, uuid):
        uuid, job = self._live_job(uuid)
        if job.state != "running":
            raise Conflict(f"migration of {uuid} is "
                           f"{self._live_status(uuid)['status']}; nothing "
                           "to abort")
        job.state, job.error = "cancelled", "cancelled by the operator"
        return self._live_status(uuid)

    def migration_force_complete(self, uuid):
        uuid, job = self._live_job(uuid)
        job.steps = 1
        return self._live_status(uuid)

    def migration_list(self):
        return [self._live_status(u) for u in self.host.live_jobs]

    # A simulated guest's memory: a quarter of it not zero, dirtied at
    # ``dirty_bytes_per_s`` (set it on the agent); the lab's default
    # [migration] policy.
    dirty_bytes_per_s = 0
    policy = {"downtime": 50, "downtime_max": 500, "downtime_steps": 10,
              "downtime_delay": 75, "completion_timeout": 800,
              "timeout_action": "abort", "permit_auto_converge": False,
              "permit_post_copy": False, "bandwidth": 0,
              "monitor_interval": 0.5}

    def migration_inputs(self, uuid, block_migration=False, seconds=1):
        dom = self._domain(uuid)
        if not dom.running:
            raise InvalidInput(f"instance {dom.uuid} is not running")
        memory = dom.memory_mib << 20
        disk = 0
        if block_migration:
            d = self._dirs(dom.storage).get(dom.uuid)
            disk = d.size if d is not None else 0
        return {"memory_bytes": memory, "resident_bytes": memory // 4,
                "dirty_bytes_per_s": self.dirty_bytes_per_s,
                "calc_seconds": seconds, "disk_bytes": disk,
                "policy": dict(self.policy)}

    def live_disk_facts(self, uuid, storage):
        dom = self._domain(uuid)
        d = self._dirs(storage).get(dom.uuid)
        if d is None:
            raise NotFound(f"no format recorded for "
                           f"{self._path(storage, uuid)}/disk")
        return {"virtual_size": d.size, "format": d.fmt,
                "backing_file": d.backing, "backing_format": "qcow2"
                if d.backing else None, "targets": ["vda"]}

    def live_cleanup_source(self, uuid, storage):
        uuid = _uuid(uuid)
        if uuid in self.host.domains:
            raise Conflict(f"instance {uuid} is still defined on this host")
        if storage != "local":
            return {"removed": False}
        return self.instance_cleanup(uuid, storage)

    # -- live migration: destination --------------------------------------

    def live_prepare_dest(self, uuid, storage, block_migration=False,
                          disk_facts=None):
        uuid, dirs = _uuid(uuid), self._dirs(storage)
        if uuid in self.host.domains:
            raise Conflict(f"instance {uuid} is already defined on this "
                           "host")
        path = self._path(storage, uuid)
        if not block_migration:
            if uuid not in dirs:
                raise DroverError(f"the disk of {uuid} is not visible here "
                                  f"({path}/disk): storage is not shared")
            return {"path": path, "created": False}
        facts = disk_facts or {}
        self._cached(facts.get("backing_file"))
        self._write(f"creating {path}")
        created = uuid not in dirs
        dirs[uuid] = Disk("qcow2", facts["virtual_size"],
                          facts.get("backing_file"))
        return {"path": path, "created": created}

    def live_cleanup_dest(self, uuid, storage, source_state=None):
        """The real agent's decision (dest_cleanup.decide); the sim's
        incoming copies have no libvirt reason, so a domain here that
        does not run counts as one."""
        uuid = _uuid(uuid)
        dom = self.host.domains.get(uuid)
        dest = None if dom is None else (
            "running" if dom.running else "nostate", None)
        plan = dest_cleanup.decide(dest, source_state, storage)
        if plan.refuse:
            raise Conflict(f"instance {uuid}: {plan.refuse}")
        if dom is not None:
            del self.host.domains[uuid]
        if not plan.remove_dir:
            return {"removed": False}
        return self.instance_cleanup(uuid, storage)
