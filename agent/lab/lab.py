"""The namespace lab: several real hypervisor hosts on one machine.

Each host is a network namespace on the lab bridge plus a private mount,
UTS and PID namespace whose PID 1 is a keeper process; in it run the host's
own virtlogd, libvirtd (TCP, no auth: lab only) and sshd, over per-host
copies of the libvirt directories, local storage at /var/lib/drover and
the lab's shared directory at /var/lib/drover-shared.
"""
import contextlib
import os
import shutil
import subprocess
import time
from concurrent import futures

from agent.common import process
from agent.common.errors import Conflict, DroverError, NotFound
from agent.lab import files as lab_files
from agent.lab import host as lab_host
from agent.lab import netns, procs, registry, state, tuning
from agent.lab.plan import (LOCAL_STORAGE, SHARED_STORAGE, check_count,
                            make_plan)

TOOLS = ("ip", "unshare", "nsenter", "libvirtd", "virtlogd", "ssh-keygen",
         "/usr/sbin/sshd")


def _quiet(_msg):
    pass


def unavailable_reason():
    """Why no lab can run on this machine, or None."""
    if os.geteuid() != 0:
        return "the namespace lab needs root"
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        return f"the namespace lab needs {', '.join(missing)} installed"
    return None


class Lab:
    """A lab of ``name`` on ``network`` whose state lives in ``lab_dir``;
    ``eth0_macs`` ({host index: MAC}) chooses the uplink MAC of hosts
    that ``up`` creates."""

    def __init__(self, lab_dir, name="drover", network="198.18.0.0/24",
                 eth0_macs=None):
        self.plan = make_plan(name, network, eth0_macs)
        self.files = lab_files.LabFiles(lab_dir)
        self.lab_dir = self.files.lab_dir

    @classmethod
    def at(cls, lab_dir):
        """The lab whose state is in ``lab_dir`` (its name and network
        read from there)."""
        data = state.load(os.path.abspath(lab_dir))
        if not data:
            raise NotFound(f"no lab in {lab_dir}")
        return cls(lab_dir, data["name"], data["network"])

    # -- queries ---------------------------------------------------------

    def _state(self):
        data = state.load(self.lab_dir)
        if data and (data["name"], data["network"]) != \
                (self.plan.name, str(self.plan.network)):
            raise Conflict(f"{self.lab_dir} holds lab {data['name']} on "
                           f"{data['network']}, not {self.plan.name} on "
                           f"{self.plan.network}")
        return data or state.empty(self.plan.name, str(self.plan.network))

    def _keeper(self, data, host):
        rec = data["hosts"].get(str(host.index), {}).get("keeper")
        if not procs.alive(rec):
            raise Conflict(f"lab host {host.name} is not running")
        return rec["pid"]

    def _entry(self, data, host):
        """(plan, state entry) of ``host``, which must be in the lab."""
        h = self.plan.resolve(host)
        entry = data["hosts"].get(str(h.index))
        if entry is None:
            raise NotFound(f"lab {self.plan.name} has no host {h.name}")
        return h, entry

    @staticmethod
    def _stopped(data, host):
        """``host`` was powered off by host_stop and can be started."""
        entry = data["hosts"].get(str(host.index))
        return bool(entry and entry.get("stopped")) and \
            host.netns in netns.netns_names()

    def _healthy(self, data, host):
        entry = data["hosts"].get(str(host.index))
        if not entry or not procs.alive(entry["keeper"]):
            return False
        live = {d["name"] for d in data["daemons"]
                if d["host"] == host.index and procs.alive(d)}
        return set(lab_host.BASE_DAEMONS) <= live

    def status(self):
        """One dict per host: name, address, libvirt_uri, ssh_address,
        state (up, degraded, stopped: powered off by host_stop, down),
        link (up, or down: cut by link), daemons (name -> up/down),
        storage."""
        data = self._state()
        rows = []
        for key in sorted(data["hosts"], key=int):
            h = self.plan.host(int(key))
            keeper = procs.alive(data["hosts"][key]["keeper"])
            daemons = {d["name"]: "up" if keeper and procs.alive(d)
                       else "down"
                       for d in data["daemons"] if d["host"] == h.index}
            entry = data["hosts"][key]
            if not keeper:
                st = "stopped" if entry.get("stopped") else "down"
            elif all(daemons.get(n) == "up" for n in lab_host.BASE_DAEMONS):
                st = "up"
            else:
                st = "degraded"
            rows.append({
                "name": h.name, "address": h.address,
                "libvirt_uri": h.libvirt_uri,
                "migration_uri": h.migration_uri,
                "ssh_address": h.address, "state": st,
                "link": entry.get("link", "up"), "daemons": daemons,
                "host_uuid": h.host_uuid, "netns": h.netns,
                "keeper_pid": data["hosts"][key]["keeper"]["pid"],
                "local_storage": LOCAL_STORAGE,
                "shared_storage": SHARED_STORAGE,
                "local_storage_dir": self.files.storage_dir(h),
                "shared_storage_dir": self.files.shared_dir,
            })
        return rows

    def daemons(self):
        """The lab daemons' records (host index or None: root namespace,
        name, pid, argv, log)."""
        return [dict(d) for d in self._state()["daemons"]]

    @property
    def controller_ssh(self):
        """Files the controller logs in to hosts with (strict keys)."""
        return {"user": "root", "private_key": self.files.controller_key,
                "known_hosts": self.files.controller_known_hosts,
                "ssh_config": self.files.controller_ssh_config}

    # -- running things in hosts ------------------------------------------

    def host_argv(self, host, argv):
        """argv that runs ``argv`` inside ``host`` (for your own Popen)."""
        h = self.plan.resolve(host)
        return lab_host.enter(self._keeper(self._state(), h)) + list(argv)

    def host_exec(self, host, argv, *, check=True, timeout=None, input=None,
                  env=None):
        """Run ``argv`` inside ``host`` (all its namespaces) and return its
        stdout; ``env`` adds variables to this process's environment."""
        return process.run(self.host_argv(host, argv), check=check,
                           timeout=timeout, input=input, env=_env(env),
                           cwd="/")

    def start_daemon(self, host, name, argv, env=None, log=None):
        """Start ``argv`` as daemon ``name`` inside ``host`` (None: the root
        namespace, e.g. a controller) and return its PID.  ``down`` stops
        it.  ``env`` adds variables to this process's environment; ``log``
        (default LAB_DIR/hI/log/NAME.log) gets its output."""
        full_env = _env(env)
        with state.locked(self.lab_dir):
            data = self._state()
            index = None if host is None else self.plan.resolve(host).index
            for d in data["daemons"]:
                if d["host"] == index and d["name"] == name and \
                        procs.alive(d):
                    raise Conflict(f"daemon {name} already runs "
                                   f"(pid {d['pid']})")
            data["daemons"] = [d for d in data["daemons"]
                               if (d["host"], d["name"]) != (index, name)]
            if index is None:
                log = log or os.path.join(self.files.log_dir(), f"{name}.log")
                os.makedirs(os.path.dirname(log), exist_ok=True)
                rec = self._spawn_root(argv, log, full_env)
            else:
                h = self.plan.host(index)
                log = log or os.path.join(self.files.log_dir(h), f"{name}.log")
                rec = lab_host.spawn(self._keeper(data, h), argv, log,
                                     full_env)
            data["daemons"].append({"host": index, "name": name,
                                    "argv": list(argv), "log": log,
                                    "env": dict(env or {}), **rec})
            state.save(self.lab_dir, data)
            return rec["pid"]

    @staticmethod
    def _spawn_root(argv, log, env):
        with open(log, "ab") as out:
            try:
                proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=out, env=env,
                                        start_new_session=True, cwd="/")
            except OSError as err:
                raise DroverError(f"cannot start {argv[0]}: "
                                  f"{err.strerror}") from None
        return procs.identify(proc.pid)

    def stop_daemon(self, host, name, timeout=5.0):
        """Stop daemon ``name`` of ``host`` (None: root namespace)."""
        with state.locked(self.lab_dir):
            data = self._state()
            index = None if host is None else self.plan.resolve(host).index
            found = [d for d in data["daemons"]
                     if (d["host"], d["name"]) == (index, name)]
            if not found:
                where = "the root namespace" if index is None else host
                raise NotFound(f"no lab daemon {name} on {where}")
            procs.stop(found, timeout)
            data["daemons"] = [d for d in data["daemons"] if d not in found]
            state.save(self.lab_dir, data)

    # -- up and down -------------------------------------------------------

    def up(self, count, progress=_quiet):
        """Bring the lab to ``count`` running hosts; healthy hosts are left
        alone, broken ones and leftovers of a crash are rebuilt, extra
        ones removed.  Returns ``status()``."""
        check_count(count)
        reason = unavailable_reason()
        if reason:
            raise DroverError(reason)
        started = time.monotonic()
        with state.locked(self.lab_dir):
            data = self._state()
            registry.claim(self.plan.name, self.lab_dir, _lab_is_up)
            wanted = self.plan.hosts(count)
            healthy = [h for h in wanted if self._healthy(data, h)]
            # Powered off (host_stop): started again, storage kept.
            stopped = [h for h in wanted if self._stopped(data, h)]
            self._clear(data, healthy + stopped, progress)
            netns.check_network_free(self.plan)
            netns.ensure_bridge(self.plan)
            tuning.acquire(self.lab_dir)
            host_keys = lab_files.ensure_keys(self.files, self.plan, wanted)
            new = [h for h in wanted if h not in healthy + stopped]
            if new and not healthy:
                self._install_qemu(progress)
            for h in new:
                lab_files.prepare_host(self.files, h)
            lab_files.write_lab_files(self.files, self.plan, wanted,
                                      host_keys)
            self._create_hosts(data, new, progress)
            for h in stopped:
                self._power_on(data, h, progress)
            state.save(self.lab_dir, data)
        progress(f"lab {self.plan.name}: {count} hosts up in "
                 f"{time.monotonic() - started:.1f} s")
        return self.status()

    def _install_qemu(self, progress):
        """The lab's QEMU for the hosts about to start ([lab] qemu; the
        machine's own with ``system``)."""
        from agent.conf import CONF
        from agent.lab import emulator, image
        path, links = self.files.qemu_wrapper, self.files.qemu_modules
        script = emulator.wrapper(image.default_cache_dir(), CONF.lab.qemu)
        for old in (path, links):
            with contextlib.suppress(FileNotFoundError):
                os.remove(old)
        if script is None:
            return
        shutil.copyfile(script, path)
        os.chmod(path, 0o755)
        os.symlink(emulator.modules(script), links)
        progress(f"lab {self.plan.name}: {emulator.version(path)}")

    def _clear(self, data, keep, progress):
        """Remove every host but ``keep`` (broken, extra, leftovers of a
        crash); with none kept, start over with the root daemons and the
        shared directory too."""
        stale = set(netns.host_indexes(self.plan)) | \
            {int(k) for k in data["hosts"]}
        for index in sorted(stale - {h.index for h in keep}):
            progress(f"clearing {self.plan.host(index).name}")
            self._remove_host(data, self.plan.host(index))
        if not keep:
            self._stop_root_daemons(data)
            shutil.rmtree(self.files.shared_dir, ignore_errors=True)
        state.save(self.lab_dir, data)

    def _create_hosts(self, data, new, progress):
        """Create ``new`` hosts in parallel and record those that came up
        (a failed one is cleared by the next ``up`` or ``down``)."""
        if not new:
            return
        with futures.ThreadPoolExecutor(len(new)) as pool:
            jobs = [pool.submit(self._create_host, h, progress) for h in new]
        for job, h in zip(jobs, new, strict=True):
            if not job.exception():
                entry, daemons = job.result()
                data["hosts"][str(h.index)] = entry
                data["daemons"] += daemons
        state.save(self.lab_dir, data)
        for job in jobs:
            job.result()
        self._warm_caps(new)

    def _create_host(self, h, progress):
        progress(f"{h.name}: network {h.address}")
        netns.add_host(self.plan, h)
        return self._boot(h, [], progress)

    def _boot(self, h, extra, progress, network=True):
        """Start the keeper, the file system and the base daemons of
        ``h`` (its network namespace exists), wait until they answer, then
        start again the ``extra`` daemon records of it (an agent).
        ``network`` False: the host's link is cut, so readiness is not
        checked over it.  Returns (entry, daemon records)."""
        log_dir = self.files.log_dir(h)
        outer, keeper = lab_host.start_keeper(
            h, os.path.join(log_dir, "keeper.log"))
        entry = {"outer": outer, "keeper": keeper}
        try:
            lab_host.setup_fs(h, keeper["pid"], self.files.binds(h))
            records, logs, daemons = {}, {}, []
            for name, argv in lab_host.base_daemons(self.files, h).items():
                logs[name] = os.path.join(log_dir, f"{name}.log")
                records[name] = lab_host.spawn(keeper["pid"], argv,
                                               logs[name])
                daemons.append({"host": h.index, "name": name, "argv": argv,
                                "log": logs[name], **records[name]})
            progress(f"{h.name}: waiting for libvirtd and sshd")
            lab_host.wait_ready(h, records, logs, network=network,
                                keeper_pid=keeper["pid"])
            for d in extra:
                rec = lab_host.spawn(keeper["pid"], d["argv"], d["log"],
                                     _env(d.get("env")))
                daemons.append({**d, **rec})
        except BaseException:
            procs.stop([keeper, outer])
            raise
        progress(f"{h.name}: up ({h.libvirt_uri})")
        return entry, daemons

    def _warm_caps(self, new):
        """libvirtd probes QEMU on first use (about 2 s per host): probe
        one new host and seed the other new hosts with its result."""
        lab_host.probe_caps(new[0])
        lab_files.save_caps_seed(self.files, new[0])
        for h in new[1:]:
            lab_files.seed_caps(self.files, h)

    def _remove_host(self, data, h):
        entry = data["hosts"].pop(str(h.index), None)
        _kill_host(h, entry)
        netns.remove_host(h)
        data["daemons"] = [d for d in data["daemons"]
                           if d["host"] != h.index]

    def _stop_root_daemons(self, data):
        root = [d for d in data["daemons"] if d["host"] is None]
        procs.stop(root)
        data["daemons"] = [d for d in data["daemons"] if d not in root]

    # -- failures: power and network of one host --------------------------

    def host_stop(self, host, progress=_quiet):
        """Power ``host`` off: its link goes down (its NIC loses power) and
        its keeper is killed, so every process of the host dies, guests
        included, and its virtlockd's leases are released.  Its network
        namespace, addresses, keys and storage stay for host_start.
        Idempotent.  Returns its status row."""
        with state.locked(self.lab_dir):
            data = self._state()
            h, entry = self._entry(data, host)
            netns.set_link(h, up=False)
            if procs.alive(entry["keeper"]):
                progress(f"{h.name}: powering off")
                _kill_host(h, entry)
            entry["stopped"] = True
            state.save(self.lab_dir, data)
        return self._row(h)

    def host_start(self, host, progress=_quiet):
        """Power ``host`` on again after host_stop (or a crash of its
        keeper): same identity, addresses, keys and storage; its base
        daemons and every daemon it ran before (its agent) start again.
        Its link stays as ``link`` left it.  Idempotent.  Returns its
        status row."""
        with state.locked(self.lab_dir):
            data = self._state()
            h, entry = self._entry(data, host)
            if not procs.alive(entry["keeper"]):
                if h.netns not in netns.netns_names():
                    raise Conflict(f"lab host {h.name} has lost its network "
                                   "namespace: run lab up to rebuild it")
                self._power_on(data, h, progress)
            state.save(self.lab_dir, data)
        return self._row(h)

    def _power_on(self, data, h, progress):
        """Boot ``h`` in its existing namespace, recording it in ``data``."""
        key = str(h.index)
        old = data["hosts"][key]
        link_up = old.get("link", "up") == "up"
        base = set(lab_host.BASE_DAEMONS)
        mine = [d for d in data["daemons"] if d["host"] == h.index]
        extra = [{k: d[k] for k in ("host", "name", "argv", "log", "env")
                  if k in d} for d in mine if d["name"] not in base]
        _kill_host(h, old)          # whatever a crashed host left
        netns.set_link(h, up=link_up)
        progress(f"{h.name}: powering on")
        entry, daemons = self._boot(h, extra, progress, network=link_up)
        entry["link"] = old.get("link", "up")
        data["hosts"][key] = entry
        data["daemons"] = [d for d in data["daemons"]
                           if d["host"] != h.index] + daemons

    def link(self, host, up):
        """Cut (``up`` False) or restore ``host``'s network, its veth on
        the lab bridge, while its processes keep running.  A stopped host
        keeps its link down until host_start.  Idempotent.  Returns its
        status row."""
        with state.locked(self.lab_dir):
            data = self._state()
            h, entry = self._entry(data, host)
            entry["link"] = "up" if up else "down"
            netns.set_link(h, up=up and procs.alive(entry["keeper"]))
            state.save(self.lab_dir, data)
        return self._row(h)

    def _row(self, h):
        return next(r for r in self.status() if r["name"] == h.name)

    def down(self, progress=_quiet):
        """Stop every daemon and host and remove the lab's namespaces,
        veths and bridge.  Files (keys, logs, storage) stay."""
        started = time.monotonic()
        with state.locked(self.lab_dir):
            data = self._state()
            registry.claim(self.plan.name, self.lab_dir, _lab_is_up)
            self._stop_root_daemons(data)
            indexes = set(netns.host_indexes(self.plan)) | \
                {int(k) for k in data["hosts"]}
            for index in sorted(indexes):
                progress(f"stopping {self.plan.host(index).name}")
                self._remove_host(data, self.plan.host(index))
            netns.remove_bridge(self.plan)
            state.remove(self.lab_dir)
            tuning.release(self.lab_dir, _lab_is_up)
            registry.release(self.plan.name, self.lab_dir)
        progress(f"lab {self.plan.name} down in "
                 f"{time.monotonic() - started:.1f} s")


def _kill_host(h, entry):
    """Kill every process of host ``h`` (state ``entry`` or None) and wait
    until they are gone."""
    if entry:
        # The keeper is PID 1 of the host: when it exits the kernel
        # kills every process of the host, guests included.
        procs.stop([entry["keeper"]])
        procs.stop([entry["outer"]])
    if h.netns in netns.netns_names():
        pids = process.run(["ip", "netns", "pids", h.netns]).split()
        procs.stop([procs.identify(int(p)) for p in pids], timeout=2.0)


def _env(extra):
    return {**os.environ, **extra} if extra else None


def _lab_is_up(lab_dir):
    data = state.load(lab_dir)
    return bool(data) and any(procs.alive(e["keeper"])
                              for e in data["hosts"].values())
