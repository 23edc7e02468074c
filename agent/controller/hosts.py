"""The controller's view of its hosts: one agent client per host, a poll
loop for facts and liveness (why a host is down: the first line of its
last failed poll; the clean-ups it owes, done before it counts as up
again; never un-fencing a fenced host), and power-state sync from the
agents."""
import hashlib
import logging
import shlex
import subprocess
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, wait

import paramiko

from agent.common.errors import Conflict, DroverError, NotFound, one_line
from agent.conf import CONF
from agent.controller import host_cleanups, return_host, states
from agent.controller.db.hosts import FACTS
from agent.controller.db.models import jsonable, utcnow
from agent.transport import diskcopy
from agent.transport.errors import HostUnreachable
from agent.transport.ssh import CONNECTIONS, AgentClient

LOG = logging.getLogger(__name__)
DOWNLOAD_CHUNK = 1 << 20


def _now():
    """Now, in the store's time format (to compare with updated_at)."""
    return jsonable(utcnow())


def unchanged(host, facts, owes):
    """True when an answer with ``facts`` changes nothing of ``host`` (a
    store record) but when it was seen: up and not set down, no failed
    poll to forget, no clean-up owed (``owes``), every fact as stored."""
    return (host["state"] == "up" and not host.get("forced_down")
            and host.get("down_reason") is None and not owes
            and all(host.get(key) == facts[key] for key in FACTS
                    if key in facts))


class HostManager:
    """``connections``: how agents are reached (ssh.CONNECTIONS; a
    simulated fleet's agent.transport.unix.UnixConnections); ``load``: a
    LoadHistory (agent.controller.load) that keeps each poll's load
    sample, or None."""

    def __init__(self, store, connections=CONNECTIONS, load=None):
        self.store = store
        self.connections = connections
        self.load = load
        self._clients = {}
        self._lock = threading.Lock()
        self._last_ok = {}
        self._subscribed = set()
        self._stop = threading.Event()
        self._thread = None
        # agent.controller.recovery.Recovery, set by the daemon: told of
        # hosts silent for long and of HA guests found down.
        self.recovery = None

    def now(self):
        """Now in the store's time format: when a poll is asked (its
        news is older than any change made after)."""
        return _now()

    # -- clients ------------------------------------------------------------

    def client(self, name):
        """The agent client of host ``name`` (NotFound for an unknown one)."""
        with self._lock:
            client = self._clients.get(name)
        if client is not None:
            return client
        host = self.store.get_host(name)
        with self._lock:
            client = self._clients.get(name)
            if client is None:
                client = AgentClient(name, host["address"],
                                     connections=self.connections)
                self._clients[name] = client
        return client

    def call(self, host, method, timeout=None, **params):
        return self.client(host).call(method, timeout=timeout, **params)

    def upload(self, host, local_path, remote_path):
        """Copy a local file to ``remote_path`` on ``host`` over SFTP on
        its agent's SSH connection."""
        record = self.store.get_host(host)
        self.client(host)       # holds the shared SSH connection open
        try:
            transport = self.connections.transport(
                host, record["address"], CONF.ssh.port)
            sftp = paramiko.SFTPClient.from_transport(transport)
            try:
                sftp.put(local_path, remote_path)
            finally:
                sftp.close()
        except (OSError, EOFError, paramiko.SSHException) as err:
            # paramiko's SFTP raises a bare EOFError when the host goes
            # away mid-copy: say which host, and that it cannot be reached.
            raise HostUnreachable(f"copying an image to {host} failed: "
                                  f"{one_line(err)}") from None

    def download(self, host, remote_path, local_path):
        """Copy ``remote_path`` on ``host`` into the local file
        ``local_path`` (a snapshot into the image store) and hash it on
        the way: {"size", "sha256"} of what arrived.  OpenSSH's client
        with the controller's key and known_hosts (strict host keys):
        about twice paramiko's SFTP throughput, and one pass over the
        data instead of a copy and a read."""
        record = self.store.get_host(host)
        argv = diskcopy.ssh_argv(
            record["address"], ssh_user=CONF.ssh.user,
            identity=CONF.ssh.private_key, known_hosts=CONF.ssh.known_hosts,
            port=CONF.ssh.port,
            connect_timeout=max(1, round(CONF.ssh.connect_timeout)))
        argv += ["cat", "--", shlex.quote(remote_path)]
        digest, size = hashlib.sha256(), 0
        with open(local_path, "wb") as out, subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL) as proc:
            while block := proc.stdout.read(DOWNLOAD_CHUNK):
                digest.update(block)
                out.write(block)
                size += len(block)
            err = proc.stderr.read().decode(errors="replace")
            proc.wait()
        if proc.returncode:
            raise HostUnreachable(f"copying a snapshot from {host} failed "
                                  f"(exit {proc.returncode}): "
                                  f"{one_line(err) or 'no message'}")
        return {"size": size, "sha256": digest.hexdigest()}

    def register(self, name, address):
        """Add (or re-address) a host: reach its agent, record its facts."""
        with self._lock:
            old = self._clients.pop(name, None)
        if old is not None:
            old.close()
        client = AgentClient(name, address, connections=self.connections)
        asked = self.now()
        try:
            facts = client.call("host.facts", timeout=30)
        except DroverError:
            client.close()
            raise
        host = self.store.upsert_host(
            name, address=address,
            migration_address=facts.get("migration_address") or address,
            facts=facts)
        with self._lock:
            self._clients[name] = client
        self._sync_power(name, facts.get("domains", []), asked)
        self._subscribe(name, client)
        return host

    def forget(self, name):
        """Drop the client of a host the store no longer knows."""
        with self._lock:
            client = self._clients.pop(name, None)
        self._last_ok.pop(name, None)
        if client is not None:
            self._subscribed.discard(client)
            client.close()

    def close(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    # -- polling --------------------------------------------------------------

    def start(self):
        for host in self.store.list_hosts():
            try:
                self._subscribe(host["name"], self.client(host["name"]))
            except DroverError as err:
                LOG.info("host %s: not subscribed yet: %s", host["name"], err)
        self._thread = threading.Thread(target=self._loop, name="poller",
                                        daemon=True)
        self._thread.start()

    def _loop(self):
        with ThreadPoolExecutor(max_workers=8,
                                thread_name_prefix="poll") as pool:
            while not self._stop.is_set():
                spent = self.poll_cycle(pool)
                self._stop.wait(max(0.1, CONF.controller.poll_interval
                                    - spent))

    def poll_cycle(self, pool):
        """Poll every host once with ``pool``'s threads; the seconds it
        took (a cycle longer than [controller] poll_interval runs late)."""
        started = time.monotonic()
        self._poll([h["name"] for h in self.store.list_hosts()], pool)
        return time.monotonic() - started

    def poll_host(self, name):
        """Ask one agent for its facts; mark the host down after
        [controller] host_down_after seconds without an answer.  A host
        that answers does its pending clean-ups first; one that was not
        up counts as up only once they are all done.  A fenced host stays
        fenced and one the operator set down stays down however well it
        answers (agent.controller.fencing): the store's host_returned, or
        host set --up, ends those."""
        self._poll([name])

    def _poll(self, names, pool=None):
        """Poll ``names`` (poll_host's rules), asking in ``pool``'s threads.

        At 1,000 hosts the controller's CPU per host bounds the cycle, so
        the answers are recorded in batches: the store read once per batch,
        after its answers (as a poll of one host read it after its answer):
        the hosts, the clean-ups owed and the instances.  An answer that
        changes nothing but when the host was seen (up, facts as stored,
        nothing owed, no failed poll to forget: nearly every one) is
        written with the others of its batch in one transaction; the rest
        as before, one host at a time.  The answers in by half the poll
        interval are one batch, the late ones (a host that hangs until
        its timeout) another, so that one host slow to answer does not
        hold back the recording of the others."""
        if pool is None:
            for args in self._record([self._ask(name) for name in names]):
                self._settle(*args)
            return
        futures = [pool.submit(self._ask, name) for name in names]
        done, late = wait(futures,
                          timeout=CONF.controller.poll_interval / 2)
        changed = self._record([f.result() for f in futures if f in done])
        if late:
            changed += self._record([f.result() for f in futures
                                     if f in late])
        # Their clean-ups and reconciles call the agents: in the pool too.
        list(pool.map(lambda args: self._settle(*args), changed))

    def _record(self, answers):
        """Record a batch of _ask's answers but those that change their
        host: those are returned, as _settle's arguments."""
        changed = []
        if not answers:
            return changed
        hosts, owing, instances = self._view([a[0] for a in answers])
        seen, quiet = {}, []
        for name, asked, facts, when, err in answers:
            host = hosts.get(name)
            if host is None or (err is None and facts is None):
                continue        # removed meanwhile, or its poll failed
            if err is not None:
                self._missed(name, err)
            elif unchanged(host, facts, name in owing):
                seen[name] = when
                quiet.append((name, asked, facts))
            else:
                changed.append((name, asked, facts, host))
        if seen:
            self.store.hosts_seen(seen)
        for name, asked, facts in quiet:
            try:
                self._answered(name, asked, facts, instances[name])
            except Exception:  # the poller must outlive any one host
                LOG.exception("host %s: recording its poll failed", name)
        return changed

    def _view(self, names):
        """The store as a poll of ``names`` needs it: {name: host},
        the names owing clean-ups, {name: [instance]}; one host's only
        for a poll of one."""
        one = names[0] if len(names) == 1 else None
        if one is None:
            hosts = {h["name"]: h for h in self.store.list_hosts()}
        else:
            try:
                hosts = {one: self.store.get_host(one)}
            except NotFound:
                hosts = {}
        owing = {c["host"] for c in self.store.list_cleanups(host=one)}
        instances = defaultdict(list)
        for inst in self.store.list_instances(host=one):
            if inst["host"]:
                instances[inst["host"]].append(inst)
        return hosts, owing, instances

    def _ask(self, name):
        """(name, when asked, facts, when they came, error) of one
        agent's answer."""
        asked = self.now()
        try:
            facts = self.call(name, "host.facts",
                              timeout=CONF.controller.poll_interval * 2)
        except (HostUnreachable, DroverError) as err:
            return name, asked, None, None, err
        except Exception:      # the poller must outlive any one host
            LOG.exception("host %s: poll failed", name)
            return name, asked, None, None, None
        return name, asked, facts, utcnow(), None

    def _settle(self, name, asked, facts, host):
        """Record an answer that changes the host: its clean-ups done
        first, or a returning host reconciled (return_host), then its
        facts and state."""
        was = host["state"]
        try:
            if was == "up" and not host.get("forced_down"):
                pending = host_cleanups.run(self.store, self.call, name)
            else:       # fencing on return: reconciled before it serves
                pending = return_host.run(
                    self.store, self.call, name,
                    [d["uuid"] for d in facts.get("domains", [])])
        except (HostUnreachable, DroverError) as err:
            self._missed(name, err)
            return
        except Exception:      # the poller must outlive any one host
            LOG.exception("host %s: poll failed", name)
            return
        if pending and was != "up":
            LOG.warning("host %s answers but stays down until its "
                        "clean-ups are done: %s", name, pending[0])
            self.store.set_host_down_reason(
                name, f"clean-up pending: {pending[0]}")
            return
        now = self.store.upsert_host(name, facts=facts)["state"]
        if now == "up" and was != "up":
            LOG.info("host %s is up", name)
        self._answered(name, asked, facts)

    def _answered(self, name, asked, facts, instances=None):
        self._last_ok[name] = time.monotonic()
        if self.load is not None:
            self.load.record(name, facts.get("load"))
        if self.recovery is not None:
            self.recovery.host_answered(name)
        self._subscribe(name, self.client(name))
        self._sync_power(name, facts.get("domains", []), asked, instances)

    def _missed(self, name, err):
        try:
            host = self.store.set_host_down_reason(name, err)
        except NotFound:
            return
        last = self._last_ok.setdefault(name, time.monotonic())
        silent = time.monotonic() - last
        if silent >= CONF.controller.host_down_after and \
                host["state"] == "up":
            LOG.warning("host %s is down: %s", name, err)
            self.store.mark_host_down(name)
        elif silent < CONF.controller.host_down_after:
            LOG.info("host %s missed a poll: %s", name, err)
        if self.recovery is not None:
            self.recovery.host_silent(name, silent)

    # -- power state ----------------------------------------------------------

    def _subscribe(self, name, client):
        """Get the host's lifecycle events (once per client; again on the
        agent's side after a reconnect)."""
        if client in self._subscribed:
            return

        def on_event(event, data):
            if event == "domain.lifecycle":
                self._on_lifecycle(name, data.get("uuid"))
            elif event == "agent.reconnected":
                threading.Thread(target=self._resubscribe, args=(client,),
                                 daemon=True).start()
        try:
            client.subscribe(on_event)
            self._subscribed.add(client)
        except DroverError as err:
            LOG.info("host %s: cannot subscribe to events: %s", name, err)

    def _on_lifecycle(self, host, uuid):
        """Events arrive late and in bursts (defined, started, resumed):
        record the state the domain is in now, not the one of the event.
        An instance a task owns, or one recorded on another host, is
        left alone before the host is asked (a live migration's end
        brings a burst of events from both hosts while its task
        finishes)."""
        try:
            inst = self.store.get_instance(uuid) if uuid else None
        except NotFound:
            return
        if inst is None or inst["host"] != host or \
                inst["task_state"] is not None:
            return
        try:
            state = self.call(host, "instance.info", uuid=uuid)["state"]
        except NotFound:
            state = "nostate"
        except DroverError as err:
            LOG.info("host %s: cannot read %s: %s", host, uuid, err)
            return
        self._set_power(uuid, states.power_state_from_name(state), host)

    @staticmethod
    def _resubscribe(client):
        try:
            client.call("subscribe")
        except DroverError as err:
            LOG.info("host %s: cannot subscribe again: %s", client.host, err)

    def _sync_power(self, host, domains, asked, instances=None):
        """Record the power states of a poll asked at ``asked``; an
        instance changed since (a boot that ended meanwhile) is left to
        the next poll, or the poll's old news would undo it.
        ``instances``: the host's, read after the answer (default: read
        now)."""
        seen = {d["uuid"]: states.power_state_from_name(d["state"])
                for d in domains}
        if instances is None:
            instances = self.store.list_instances(host=host)
        for inst in instances:
            if inst["updated_at"] >= asked:
                continue
            self._set_power(inst["uuid"], seen.get(inst["uuid"],
                                                   states.NOSTATE), host,
                            inst)

    def _set_power(self, uuid, power_state, host, inst=None):
        """Record what libvirt says: an ACTIVE guest that powered itself
        off becomes SHUTOFF (stopped), as in Nova, and a stopped one seen
        running (started outside drover) ACTIVE again.  Instances busy in
        a task are left to that task."""
        if uuid is None or power_state is None:
            return
        try:
            inst = inst or self.store.get_instance(uuid)
        except NotFound:
            return
        if inst["host"] != host or inst["task_state"] is not None:
            return
        values = {}
        if inst["power_state"] != power_state:
            values["power_state"] = power_state
        if (inst["vm_state"] == states.ACTIVE
                and power_state in (states.SHUTDOWN, states.CRASHED)):
            if self.recovery is not None and \
                    self.recovery.guest_down(inst, power_state):
                return          # an HA guest: its recovery has it now
            values["vm_state"] = states.STOPPED
        elif (inst["vm_state"] == states.STOPPED
              and power_state == states.RUNNING):
            values["vm_state"] = states.ACTIVE      # started outside drover
        if values:
            try:
                self.store.update_instance(
                    uuid, expected={"task_state": None, "host": host},
                    **values)
            except Conflict:
                pass        # a task started meanwhile: it owns the state
