"""drover's RPC server: JSON lines on a local UNIX socket (the agent's,
and the controller's API socket).

One I/O thread multiplexes the listening socket and every connection, so
idle clients cost no thread; each call runs in a worker thread of its own
that ends with the call, and replies go back as calls finish (out of
order).  A client that stops reading is dropped once its unsent output
passes ``max_backlog``.  Connections that called ``subscribe`` also get
the notifications given to ``publish``.  A server given a method table
(agent.common.rpc.methods) serves only methods of the table, each
registered with the parameters the table declares.  The protocol is in
agent.common.rpc.protocol.
"""
import inspect
import logging
import os
import selectors
import socket
import stat
import threading

from agent.common.errors import Conflict, InvalidInput, NotFound, one_line
from agent.common.rpc import methods as rpc_methods
from agent.common.rpc import protocol as proto

LOG = logging.getLogger(__name__)

MAX_LINE = 16 * 1024 * 1024
MAX_BACKLOG = 64 * 1024 * 1024
_BUILTINS = tuple(rpc_methods.BUILTIN)


class _Connection:
    def __init__(self, sock):
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.pending = 0        # calls running in workers
        self.events = None      # None: not subscribed; else a set, or True
        self.eof = False        # the client closed its side
        self.drop = False       # close it now (overflow, error)
        self.closed = False
        self.interest = 0


class RpcServer:
    """Serve registered functions on the UNIX socket ``path``; with
    ``methods`` (a method table), only the table's methods."""

    def __init__(self, path, *, methods=None, max_line=MAX_LINE,
                 max_backlog=MAX_BACKLOG):
        self.path = path
        self.table = methods
        self.max_line = max_line
        self.max_backlog = max_backlog
        self._methods = {}
        self._lock = threading.Lock()
        self._conns = set()
        self._listener = None
        self._inode = None
        self._selector = None
        self._thread = None
        self._stopping = threading.Event()
        self._wake_r = self._wake_w = None
        # Re-entrant: stop() may run in a signal handler.
        self._wake_lock = threading.RLock()

    # -- public API -------------------------------------------------------

    def register(self, name, fn):
        """Serve ``fn(**params)``, which returns JSON-able, as ``name``.

        With a method table: MethodMismatch unless ``name`` is in it and
        ``fn`` takes the parameters it declares.
        """
        if name in _BUILTINS:
            raise InvalidInput(f"'{name}' is a built-in RPC method")
        if self.table is not None:
            method = self.table.get(name)
            if method is None:
                raise rpc_methods.MethodMismatch(
                    f"{name!r} is not in the method table")
            method.check_signature(fn)
        self._methods[name] = (fn, inspect.signature(fn))

    def register_group(self, prefix, impl):
        """Register ``impl.NAME`` for every method ``PREFIX.NAME`` of the
        table; MethodMismatch if ``impl`` lacks one."""
        for name in self.table:
            group, _, attr = name.partition(".")
            if group != prefix:
                continue
            fn = getattr(impl, attr, None)
            if not callable(fn):
                raise rpc_methods.MethodMismatch(
                    f"{name}: {impl!r} has no {attr}()")
            self.register(name, fn)

    def registered(self):
        """Names of the registered methods, sorted."""
        return sorted(self._methods)

    def check_complete(self):
        """MethodMismatch unless every method of the table is registered."""
        missing = sorted(set(self.table or ()) - set(self.registered()))
        if missing:
            raise rpc_methods.MethodMismatch(
                "methods of the table without an implementation: "
                + ", ".join(missing))

    def publish(self, event, data):
        """Send a notification to every subscribed connection."""
        line = proto.encode({"event": event, "data": data})
        with self._lock:
            for conn in self._conns:
                if conn.events is True or (conn.events and event in
                                           conn.events):
                    self._queue_locked(conn, line)
        self._wake()

    def start(self):
        """Bind, then serve in a background thread; return once listening."""
        self._bind()
        self._thread = threading.Thread(target=self._loop, name="rpc-server",
                                        daemon=True)
        self._thread.start()

    def serve_forever(self):
        """Bind and serve in this thread until ``stop()``."""
        self._bind()
        self._loop()

    def stop(self):
        """Stop serving, close every connection and remove the socket."""
        self._stopping.set()
        self._wake()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @property
    def connection_count(self):
        with self._lock:
            return len(self._conns)

    # -- socket setup -----------------------------------------------------

    def _bind(self):
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, mode=0o755, exist_ok=True)
        self._remove_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Mode set before bind(): the socket never exists with a wider one.
        os.fchmod(sock.fileno(), 0o600)
        sock.bind(self.path)
        os.chmod(self.path, 0o600)
        sock.listen(64)
        sock.setblocking(False)
        self._inode = os.stat(self.path).st_ino
        self._listener = sock
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        with self._wake_lock:
            self._wake_r, self._wake_w = wake_r, wake_w
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, selectors.EVENT_READ, "listen")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._stopping.clear()

    def _remove_stale(self):
        try:
            mode = os.stat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise Conflict(f"{self.path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(self.path)
        except OSError:
            os.unlink(self.path)    # left behind by a dead agent
        else:
            raise Conflict(f"another agent is serving on {self.path}")
        finally:
            probe.close()

    # -- I/O thread -------------------------------------------------------

    def _loop(self):
        try:
            while not self._stopping.is_set():
                self._update_interest()
                for key, mask in self._selector.select():
                    if key.data == "listen":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        self._service(key.data, mask)
        finally:
            self._shutdown()

    def _accept(self):
        while True:
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as err:
                LOG.warning("RPC accept failed: %s", err)
                return
            sock.setblocking(False)
            conn = _Connection(sock)
            with self._lock:
                self._conns.add(conn)

    def _service(self, conn, mask):
        if mask & selectors.EVENT_READ:
            self._read(conn)
        if mask & selectors.EVENT_WRITE and not conn.closed:
            with self._lock:
                self._flush_locked(conn)

    def _read(self, conn):
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            conn.drop = True
            return
        if not data:
            with self._lock:
                conn.eof = True
                conn.events = None
            return
        conn.inbuf += data
        while True:
            end = conn.inbuf.find(b"\n")
            if end < 0:
                break
            line = bytes(conn.inbuf[:end])
            del conn.inbuf[:end + 1]
            if line.strip():
                self._handle(conn, line)
        if len(conn.inbuf) > self.max_line:
            LOG.warning("RPC client sent a line over %d bytes; dropped",
                        self.max_line)
            conn.drop = True

    def _update_interest(self):
        """Close finished connections; watch the others as their state says."""
        with self._lock:
            for conn in list(self._conns):
                done = conn.eof and not conn.pending and not conn.outbuf
                if conn.drop or done:
                    self._close_locked(conn)
                    continue
                want = (0 if conn.eof else selectors.EVENT_READ) | \
                    (selectors.EVENT_WRITE if conn.outbuf else 0)
                if want == conn.interest:
                    continue
                if conn.interest and want:
                    self._selector.modify(conn.sock, want, conn)
                elif want:
                    self._selector.register(conn.sock, want, conn)
                else:
                    self._selector.unregister(conn.sock)
                conn.interest = want

    def _close_locked(self, conn):
        if conn.interest:
            self._selector.unregister(conn.sock)
        conn.closed = True
        conn.sock.close()
        self._conns.discard(conn)

    def _shutdown(self):
        with self._lock:
            for conn in list(self._conns):
                self._close_locked(conn)
        self._selector.close()
        self._listener.close()
        with self._wake_lock:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = None
        try:
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _wake(self):
        with self._wake_lock:
            if self._wake_w is None:
                return      # not serving
            try:
                os.write(self._wake_w, b"\0")
            except BlockingIOError:
                pass        # a wake-up is already pending

    def _drain_wake(self):
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    # -- requests ---------------------------------------------------------

    def _handle(self, conn, line):
        call_id = None
        try:
            request = proto.decode(line)
            call_id = request.get("id")
            name = request.get("method")
            params = request.get("params") or {}
            if not isinstance(name, str) or not isinstance(params, dict):
                raise proto.ProtocolError("needs a method name and a params "
                                          "object")
        except proto.ProtocolError as err:
            self._reply(conn, call_id, error=InvalidInput(
                f"malformed request: {err}"))
            return
        if name in _BUILTINS:
            self._builtin(conn, call_id, name, params)
            return
        try:
            fn = self._lookup(name, params)
        except InvalidInput as err:
            self._reply(conn, call_id, error=err)
            return
        with self._lock:
            conn.pending += 1
        threading.Thread(target=self._run, name=f"rpc-{name}", daemon=True,
                         args=(conn, call_id, name, fn, params)).start()

    def _lookup(self, name, params):
        try:
            fn, signature = self._methods[name]
        except KeyError:
            raise NotFound(f"no such RPC method: {name}") from None
        try:
            signature.bind(**params)
        except TypeError as err:
            raise InvalidInput(f"bad parameters for {name}: {err}") from None
        return fn

    def _builtin(self, conn, call_id, name, params):
        with self._lock:
            if name == "unsubscribe":
                conn.events = None
            else:
                events = params.get("events")
                conn.events = True if events is None else set(events)
        self._reply(conn, call_id, result=True)

    def _run(self, conn, call_id, name, fn, params):
        try:
            line = proto.encode({"id": call_id, "result": fn(**params)})
        except Exception as exc:  # every failure becomes an error reply
            if proto.error_type(exc) == proto.INTERNAL_ERROR:
                LOG.exception("RPC %s failed", name)
            else:
                LOG.info("RPC %s: %s", name, one_line(exc))
            line = proto.encode({"id": call_id,
                                 "error": proto.error_body(exc)})
        with self._lock:
            conn.pending -= 1
            self._queue_locked(conn, line)
        self._wake()

    def _reply(self, conn, call_id, *, result=None, error=None):
        if error is not None:
            line = proto.encode({"id": call_id,
                                 "error": proto.error_body(error)})
        else:
            line = proto.encode({"id": call_id, "result": result})
        with self._lock:
            self._queue_locked(conn, line)

    def _queue_locked(self, conn, line):
        if conn.closed or conn.drop:
            return
        if len(conn.outbuf) + len(line) > self.max_backlog:
            LOG.warning("RPC client is not reading its replies; dropped")
            conn.drop = True
            return
        conn.outbuf += line
        self._flush_locked(conn)

    def _flush_locked(self, conn):
        """Send what the socket takes now; the I/O thread sends the rest."""
        try:
            sent = conn.sock.send(conn.outbuf)
        except BlockingIOError:
            return
        except OSError:
            conn.drop = True
            return
        del conn.outbuf[:sent]
