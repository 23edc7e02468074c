"""Sparse-aware copies of instance files between hosts over OpenSSH.

The source host's agent runs ``send_file``: it starts the ``ssh`` client
(host-to-host key, strict host keys) with the receiver as the remote
command and streams only the file's data extents to it::

    header   MAGIC, VERSION (u16), file size (u64)
    records  b"D", offset (u64), length (u64), then ``length`` bytes
    trailer  b"E", sha256 of every byte before the trailer

The receiver (``receive_main``, ``drover-agent receive-disk``) writes the
records at their offsets into ``PATH.part`` (truncated to the size, so
holes stay holes), checks the digest, fsyncs and only then renames it to
PATH.  A cut-off or corrupted stream leaves no file behind.
"""
import argparse
import errno
import fcntl
import hashlib
import os
import select
import shlex
import struct
import subprocess
import sys
import tempfile
import time

from agent.common.errors import DroverError, InvalidInput, NotFound
from agent.transport.errors import HostKeyRejected, HostUnreachable

MAGIC = b"DRVDISK\n"
VERSION = 1
HEADER = struct.Struct(">8sHQ")
RECORD = struct.Struct(">cQQ")
DATA, END = b"D", b"E"
DIGEST_SIZE = hashlib.sha256().digest_size
# Small enough that reading, hashing and writing a chunk overlap with ssh
# moving the previous ones (4 MiB chunks made copies about 50% slower).
CHUNK = 256 << 10
PROGRESS_STEP = 4 << 20
PIPE_SIZE = 1 << 20
CIPHER = "aes128-gcm@openssh.com"
IDLE_TIMEOUT = 120.0


class CopyFailed(DroverError):
    """A disk copy failed; nothing was left at the destination."""


class DestinationFull(CopyFailed):
    """The destination file system ran out of space."""


class ChecksumMismatch(CopyFailed):
    """The data that arrived is not the data that was sent."""


class ConnectionCut(HostUnreachable):
    """The SSH session ended before the copy was complete."""


# Receiver exit status <-> error class (anything else is CopyFailed).
EXIT_CODES = ((InvalidInput, 2), (ChecksumMismatch, 3),
              (DestinationFull, 4), (ConnectionCut, 5))


# -- extents --------------------------------------------------------------

def extents(path):
    """(offset, length) of each data extent of ``path``, in order.

    Uses SEEK_DATA/SEEK_HOLE; a file system without them yields the whole
    file as one extent.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _extents(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _extents(fd, size):
    spans, offset = [], 0
    try:
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as err:
                if err.errno == errno.ENXIO:     # only a hole up to EOF
                    break
                raise
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            spans.append((start, end - start))
            offset = end
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
            raise
        return [(0, size)] if size else []
    return spans


# -- sender ---------------------------------------------------------------

def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _grow_pipe(fd):
    """Fewer context switches per MiB through a bigger pipe (best effort)."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass


def write_stream(src_path, out_fd, *, progress=None, bandwidth=None):
    """Write ``src_path``'s data extents to ``out_fd`` in the stream format.

    ``progress(sent, total)`` gets data bytes at the start, every
    PROGRESS_STEP bytes and at the end; ``bandwidth`` caps the rate in
    bytes per second.  Returns a dict: bytes_sent (framing included),
    bytes_data, bytes_allocated, virtual_size, sha256 (hex digest of the
    stream).
    """
    fd = os.open(src_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        spans = _extents(fd, st.st_size)
        total = sum(length for _, length in spans)
        digest = hashlib.sha256()
        header = HEADER.pack(MAGIC, VERSION, st.st_size)
        digest.update(header)
        _write_all(out_fd, header)
        sent, done, reported = len(header), 0, 0
        buf = memoryview(bytearray(min(CHUNK, max(total, 1))))
        started = time.monotonic()
        if progress:
            progress(0, total)
        for offset, length in spans:
            end = offset + length
            while offset < end:
                n = os.preadv(fd, [buf[:min(len(buf), end - offset)]], offset)
                if n == 0:
                    raise CopyFailed(f"{src_path} shrank while being sent")
                record = RECORD.pack(DATA, offset, n)
                digest.update(record)
                digest.update(buf[:n])
                _write_all(out_fd, record)
                _write_all(out_fd, buf[:n])
                offset += n
                done += n
                sent += len(record) + n
                if progress and (done - reported >= PROGRESS_STEP or
                                 done == total):
                    progress(done, total)
                    reported = done
                if bandwidth:
                    ahead = sent / bandwidth - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
        hex_digest = digest.hexdigest()
        _write_all(out_fd, END + digest.digest())
        sent += 1 + DIGEST_SIZE
    finally:
        os.close(fd)
    return {"bytes_sent": sent, "bytes_data": total,
            "bytes_allocated": st.st_blocks * 512,
            "virtual_size": st.st_size, "sha256": hex_digest}


def ssh_argv(address, *, ssh_user, identity, known_hosts, port=22,
             cipher=CIPHER, connect_timeout=10):
    """The ``ssh`` client command line up to the remote command: only the
    given key and known_hosts, strict host keys, no prompts, no config
    files, compression off."""
    argv = ["ssh", "-F", "/dev/null", "-T", "-x", "-a",
            "-i", identity, "-l", ssh_user, "-p", str(port),
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "UpdateHostKeys=no",
            "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none",
            "-o", "Compression=no",
            "-o", f"ConnectTimeout={connect_timeout}",
            "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=6",
            "-o", "LogLevel=ERROR"]
    if cipher:
        argv += ["-c", cipher]
    return argv + ["--", address]


def send_file(src_path, dest_address, dest_path, *, ssh_user, identity,
              known_hosts, receiver_argv, progress=None, bandwidth=None,
              port=22, cipher=CIPHER, connect_timeout=10):
    """Copy ``src_path`` to ``dest_path`` on ``dest_address``, holes
    skipped, through ``ssh ... RECEIVER_ARGV --path DEST --size N``.

    ``progress(sent, total)`` counts data bytes; ``bandwidth`` is in bytes
    per second.  Returns write_stream's dict plus ``seconds``.  Raises
    HostKeyRejected, HostUnreachable, ConnectionCut, DestinationFull,
    ChecksumMismatch, InvalidInput (refused path) or CopyFailed.
    """
    started = time.monotonic()
    try:
        size = os.stat(src_path).st_size
    except FileNotFoundError:
        raise NotFound(f"no file {src_path} to send") from None
    remote = shlex.join([*receiver_argv, "--path", dest_path,
                         "--size", str(size)])
    argv = ssh_argv(dest_address, ssh_user=ssh_user, identity=identity,
                    known_hosts=known_hosts, port=port, cipher=cipher,
                    connect_timeout=connect_timeout) + [remote]
    with tempfile.TemporaryFile() as err_file:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=err_file)
        except OSError as err:
            raise DroverError(f"cannot run ssh: {err.strerror}") from None
        result = None
        try:
            _grow_pipe(proc.stdin.fileno())
            result = write_stream(src_path, proc.stdin.fileno(),
                                  progress=progress, bandwidth=bandwidth)
        except BrokenPipeError:
            pass        # ssh or the receiver ended early: its status says why
        finally:
            proc.stdin.close()
            reply = proc.stdout.read().decode(errors="replace").split()
            proc.stdout.close()
            proc.wait()
        err_file.seek(0)
        stderr = err_file.read().decode(errors="replace")
    where = f"{dest_address}:{dest_path}"
    if proc.returncode != 0 or result is None:
        raise _failure(proc.returncode, stderr, dest_address, known_hosts,
                       where)
    if reply != ["ok", result["sha256"]]:
        raise ChecksumMismatch(f"copy to {where}: receiver confirmed "
                               f"{' '.join(reply)!r}, not sha256 "
                               f"{result['sha256']}")
    result["seconds"] = time.monotonic() - started
    return result


def _lines(text):
    return [line.strip() for line in text.splitlines() if line.strip()]


def _failure(returncode, stderr, address, known_hosts, where):
    """The error for an ssh session that did not end in a good copy."""
    lines = _lines(stderr)
    last = lines[-1] if lines else "no message"
    if returncode == 255:
        if any("Host key verification failed" in line for line in lines):
            why = ("does not match" if "HAS CHANGED" in stderr
                   else "is not in")
            return HostKeyRejected(f"host key of {address} {why} "
                                   f"{known_hosts}: ssh refused it")
        if any("connect to host" in line or "Permission denied" in line
               for line in lines):
            return HostUnreachable(f"cannot reach {address} over ssh: "
                                   f"{last}")
        return ConnectionCut(f"copy to {where} cut off: {last}")
    if returncode < 0:
        return ConnectionCut(f"copy to {where} cut off: ssh killed by "
                             f"signal {-returncode}")
    for cls, code in EXIT_CODES:
        if returncode == code:
            return cls(last)
    return CopyFailed(f"copy to {where} failed (exit {returncode}): {last}")


def _instance_files(src_dir):
    """Relative paths of the regular files under ``src_dir``, sorted."""
    found = []
    for top, dirs, names in os.walk(src_dir):
        dirs.sort()
        for name in names:
            path = os.path.join(top, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append(os.path.relpath(path, src_dir))
    return sorted(found)


def send_dir(src_dir, dest_address, dest_dir, *, progress=None, **kwargs):
    """Copy every regular file under ``src_dir`` into ``dest_dir`` on
    ``dest_address`` with send_file (same keyword arguments).

    ``progress(sent, total)`` counts data bytes over all files.  Returns
    {"files": {relpath: send_file result}, "bytes_sent", "bytes_data",
    "bytes_allocated", "virtual_size", "seconds"}.  On failure, files
    already sent stay at the destination (each one complete).
    """
    started = time.monotonic()
    names = _instance_files(src_dir)
    total = sum(length for name in names
                for _, length in extents(os.path.join(src_dir, name)))
    results, done = {}, 0
    for name in names:
        def file_progress(sent, _total, base=done):
            progress(base + sent, total)
        results[name] = send_file(
            os.path.join(src_dir, name), dest_address,
            os.path.join(dest_dir, name),
            progress=file_progress if progress else None, **kwargs)
        done += results[name]["bytes_data"]
    summary = {key: sum(r[key] for r in results.values())
               for key in ("bytes_sent", "bytes_data", "bytes_allocated",
                           "virtual_size")}
    return {"files": results, **summary,
            "seconds": time.monotonic() - started}


# -- receiver -------------------------------------------------------------

def check_dest_path(path, roots):
    """``path`` normalised if it is absolute, free of ``..`` and (symlinks
    resolved) strictly under one of ``roots``; InvalidInput otherwise."""
    if not os.path.isabs(path):
        raise InvalidInput(f"destination {path!r} is not an absolute path")
    if ".." in path.split("/"):
        raise InvalidInput(f"destination {path!r} contains '..'")
    norm = os.path.normpath(path)
    real = os.path.realpath(norm)
    for root in roots:
        if not os.path.isabs(root):
            raise InvalidInput(f"allowed root {root!r} is not absolute")
        real_root = os.path.realpath(root)
        if real.startswith(real_root.rstrip("/") + "/"):
            return norm
    raise InvalidInput(f"destination {path!r} is outside the allowed "
                       f"root{'s' if len(roots) > 1 else ''} "
                       f"{', '.join(roots)}")


class _Reader:
    """Exact reads from a binary stream; EOF or ``idle_timeout`` seconds
    without data mean the sender is gone."""

    def __init__(self, stream, idle_timeout):
        self.stream = stream
        self.poll = None
        if idle_timeout:
            self.poll = select.poll()
            self.poll.register(stream.fileno(), select.POLLIN)
            self.timeout_ms = int(idle_timeout * 1000)

    def exact_into(self, view):
        got = 0
        while got < len(view):
            if self.poll and not self.poll.poll(self.timeout_ms):
                raise ConnectionCut("copy cut off: no data for "
                                    f"{self.timeout_ms / 1000:g} s")
            n = self.stream.readinto(view[got:])
            if not n:
                raise ConnectionCut("copy cut off: the stream ended early")
            got += n

    def exact(self, n):
        buf = bytearray(n)
        self.exact_into(memoryview(buf))
        return bytes(buf)


def _pwrite_all(fd, view, offset):
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def receive_file(stream, dest_path, size, *, idle_timeout=None):
    """Receive one stream from ``stream`` into ``dest_path`` (size
    ``size``) through ``dest_path.part``; return the stream's sha256.

    The file appears only complete and verified; on any failure the .part
    is removed and CopyFailed (or a subclass) is raised.
    """
    part = dest_path + ".part"
    reader = _Reader(stream, idle_timeout)
    fd = None
    try:
        header = reader.exact(HEADER.size)
        magic, version, stated = HEADER.unpack(header)
        if magic != MAGIC or version != VERSION:
            raise CopyFailed("not a drover disk stream (or another "
                             "version of it)")
        if stated != size:
            raise CopyFailed(f"stream is for {stated} bytes, expected "
                             f"{size}")
        digest = hashlib.sha256(header)
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC |
                     os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        os.ftruncate(fd, size)
        buf = memoryview(bytearray(CHUNK))
        while (tag := reader.exact(1)) == DATA:
            record = tag + reader.exact(RECORD.size - 1)
            _, offset, length = RECORD.unpack(record)
            if length == 0 or offset + length > size:
                raise CopyFailed(f"bad record: {length} bytes at {offset} "
                                 f"in a file of {size}")
            digest.update(record)
            while length:
                view = buf[:min(len(buf), length)]
                reader.exact_into(view)
                digest.update(view)
                _pwrite_all(fd, view, offset)
                offset += len(view)
                length -= len(view)
        if tag != END:
            raise CopyFailed(f"bad record type {tag!r}")
        if reader.exact(DIGEST_SIZE) != digest.digest():
            raise ChecksumMismatch(f"checksum mismatch: {dest_path} "
                                   "arrived corrupted, not kept")
        os.fsync(fd)
        os.close(fd)
        fd = None
        os.rename(part, dest_path)
        _fsync_dir(os.path.dirname(dest_path))
        return digest.hexdigest()
    except BaseException as err:
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(part)
        except FileNotFoundError:
            pass
        if isinstance(err, OSError):
            raise _os_failure(err, dest_path) from None
        raise


def _os_failure(err, dest_path):
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return DestinationFull(f"destination disk full: no space left for "
                               f"{dest_path}")
    return CopyFailed(f"cannot write {dest_path}: "
                      f"{err.strerror or err}")


def _fsync_dir(path):
    fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def receive_main(argv=None, *, roots=None, prog="drover-agent receive-disk"):
    """Receiver command line: ``--path P --size N --root R``.

    ``roots`` are the allowed roots when no ``--root`` is given.  Prints
    ``ok SHA256`` and returns 0, or prints one line on stderr and returns
    the error's exit status (see EXIT_CODES).
    """
    parser = argparse.ArgumentParser(
        prog=prog, description="Receive a sparse disk stream on stdin "
        "(run by the sending host over SSH).")
    parser.add_argument("--path", required=True,
                        help="Destination file (absolute, under a root).")
    parser.add_argument("--size", required=True, type=int,
                        help="The file's size in bytes.")
    parser.add_argument("--root", action="append", default=[],
                        help="Directory the file must be under "
                             "(repeatable).")
    parser.add_argument("--idle-timeout", type=float, default=IDLE_TIMEOUT,
                        help="Give up after this many seconds without "
                             "data.")
    args = parser.parse_args(argv)
    try:
        allowed = args.root or list(roots or ())
        if not allowed:
            raise InvalidInput("no allowed root given (--root)")
        if args.size < 0:
            raise InvalidInput(f"size {args.size} is negative")
        path = check_dest_path(args.path, allowed)
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        except OSError as err:
            raise _os_failure(err, path) from None
        with open(sys.stdin.fileno(), "rb", buffering=0,
                  closefd=False) as stdin:
            _grow_pipe(stdin.fileno())
            hex_digest = receive_file(stdin, path, args.size,
                                      idle_timeout=args.idle_timeout)
    except DroverError as err:
        code = next((c for cls, c in EXIT_CODES if isinstance(err, cls)), 1)
        try:
            print(f"{prog}: {err}", file=sys.stderr, flush=True)
        except OSError:
            pass        # the session is gone: nobody to tell
        return code
    print("ok", hex_digest, flush=True)
    return 0


def main(argv=None):
    """``python -m agent.transport.diskcopy receive ...``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["receive"]:
        print("usage: python -m agent.transport.diskcopy receive --path P "
              "--size N --root R", file=sys.stderr)
        return 2
    return receive_main(argv[1:], prog="diskcopy receive")


if __name__ == "__main__":
    sys.exit(main())
