"""A throw-away PostgreSQL server (Debian's postgresql package) for the lab
and the tests: initdb into a directory of its own, a port of its own on
loopback, trust authentication for the superuser ``drover``, stopped (and
its directory removed) at the end.

PostgreSQL refuses to run as root: when we are root, initdb and pg_ctl run
as the ``postgres`` user (argument lists through setpriv, never a shell),
and the data directory belongs to it.  Tests start the server with
``start`` (pg_ctl); the lab runs ``daemon_argv()`` as a lab daemon of the
root namespace (setpriv execs: the daemon's pid is the postmaster's).
"""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

from agent.common.errors import DroverError

SUPERUSER = "drover"
RUN_AS = "postgres"


def bindir():
    """The newest installed server's bin directory, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(found[-1]) if found else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, datadir=None, port=None):
        self.bin = bindir()
        self.port = port or free_port()
        self._own_dir = datadir is None
        self.dir = datadir or tempfile.mkdtemp(prefix="drover-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")

    # -- running the server ---------------------------------------------

    def _argv(self, tool, *args):
        argv = [os.path.join(self.bin, tool), *args]
        if os.geteuid() == 0:
            argv = ["setpriv", f"--reuid={RUN_AS}", f"--regid={RUN_AS}",
                    "--init-groups", "--", *argv]
        return argv

    def _run(self, tool, *args, timeout=60):
        proc = subprocess.run(self._argv(tool, *args), capture_output=True,
                              text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise DroverError(f"{tool} failed: "
                              f"{(proc.stderr or proc.stdout).strip()}")

    def initdb(self):
        """Make the data directory (once).  DroverError without
        PostgreSQL installed."""
        if self.bin is None:
            raise DroverError("PostgreSQL is not installed (Debian package "
                              "postgresql; .ci/setup installs it)")
        os.makedirs(self.dir, exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(RUN_AS)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            os.chmod(self.dir, 0o700)
        if not os.path.exists(os.path.join(self.data, "PG_VERSION")):
            self._run("initdb", "-D", self.data, "-U", SUPERUSER,
                      "-A", "trust", "-E", "UTF8", "--no-sync")

    def _server_options(self):
        # fsync off: a throw-away server; its data may go with a crash of
        # this machine, never with a crash of a controller.
        return ["-p", str(self.port), "-k", self.dir, "-c",
                "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c",
                "max_connections=200"]

    def daemon_argv(self):
        """The postmaster in the foreground, as the postgres user."""
        return self._argv("postgres", "-D", self.data,
                          *self._server_options())

    def start(self, timeout=30):
        """initdb (once) and start; returns self.  DroverError if the
        server cannot start (no postgresql installed, a port taken)."""
        self.initdb()
        self._run("pg_ctl", "start", "-D", self.data, "-l", self.log,
                  "-w", "-t", str(timeout), "-o",
                  " ".join(self._server_options()), timeout=timeout + 10)
        return self

    def stop(self):
        """Stop the server (fast shutdown) and remove its directory if it
        made it."""
        if self.bin and os.path.exists(os.path.join(self.data,
                                                    "postmaster.pid")):
            try:
                self._run("pg_ctl", "stop", "-D", self.data, "-m", "fast",
                          "-w", "-t", "30")
            except (DroverError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "stop", "-D", self.data, "-m",
                          "immediate", "-w")
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines=20):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    # -- databases --------------------------------------------------------

    def url(self, database="postgres"):
        return (f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/"
                f"{database}")

    def _admin(self, sql):
        import psycopg
        with psycopg.connect(host="127.0.0.1", port=self.port,
                             user=SUPERUSER, dbname="postgres",
                             autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def has_database(self, name):
        import psycopg
        with psycopg.connect(host="127.0.0.1", port=self.port,
                             user=SUPERUSER, dbname="postgres",
                             autocommit=True, connect_timeout=10) as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname "
                                "= %s", (name,)).fetchone() is not None

    def create_database(self, name, template=None):
        """A new empty database (or a copy of ``template``); its URL."""
        from psycopg import sql
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            stmt += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        self._admin(stmt)
        return self.url(name)

    def drop_database(self, name):
        from psycopg import sql
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                    .format(sql.Identifier(name)))

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._admin("SELECT 1")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
