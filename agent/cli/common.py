"""Helpers the verb modules share: sub-command declaration, printing, and
waiting on controller tasks with progress."""
import sys

from agent.cli import output
from agent.cli.client import connect
from agent.common.errors import DroverError, InvalidInput

ENDED = ("done", "failed", "superseded")


def subcommand(subparsers, name, func, help, formatted=False):
    """Add a sub-command whose ``func(client, args)`` returns what to print:
    a (rows, columns) listing, a dict, a string, or None."""
    p = subparsers.add_parser(name, help=help, description=help)
    if formatted:
        output.add_format_args(p)

    def run(args):
        with connect(args) as client:
            result = func(client, args)
        _print(result, args)
        return 0
    p.set_defaults(func=run)
    return p


def _print(result, args):
    fmt = getattr(args, "format", "table")
    cols = getattr(args, "column", [])
    if result is None:
        return
    if isinstance(result, tuple):
        rows, columns = result
        output.emit(output.format_list(rows, columns, fmt, cols))
    elif isinstance(result, dict):
        output.emit(output.format_show(result, fmt, cols))
    else:
        output.emit(str(result))


def parse_properties(pairs):
    """``key=value`` strings to a dict; one clear error for a bad one."""
    props = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(
                f"bad property {pair!r}: expected key=value")
        props[key] = value
    return props


def wait_task(client, task_id, what, raise_on_failure=True):
    """Follow a controller task to its end, printing its progress on stderr.
    Raises DroverError with the task's error when it fails (unless
    ``raise_on_failure`` is false: then the task is returned)."""
    last = None
    tty = sys.stderr.isatty()
    while True:
        task = client.call("task.wait", id=task_id, progress=last)
        progress = task.get("progress")
        if progress and progress != last:
            end = "\r" if tty else "\n"
            print(f"{what}: {progress}\033[K" if tty else
                  f"{what}: {progress}", end=end, file=sys.stderr)
        last = progress
        if task["state"] not in ENDED:
            continue
        if tty and last:
            print(file=sys.stderr)
        if task["state"] != "done" and raise_on_failure:
            raise DroverError(f"{what} {task['state']}: {task.get('error')}")
        return task


def finish(c, a, result, what):
    """Follow a server's task when --wait was given, then show the
    server."""
    if getattr(a, "wait", False) and result.get("task_id"):
        wait_task(c, result["task_id"], what)
        if what.startswith("delete"):
            return None
        return c.call("server.show", name=result.get("name", a.name))
    return result
