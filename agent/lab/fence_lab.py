"""``fence_drover_lab``: the lab's fence agent, speaking the ClusterLabs
fence-agents protocol so that a controller drives it like fence_ipmilan or
fence_virsh.

Options come as ``key=value`` lines on stdin until EOF (blank lines and
``#`` comments are skipped), or as ``--key=value`` / ``--key value``
arguments, as fence agents accept both:

- ``action``: ``off`` powers the lab host off as ``drover lab host stop``
  does (its keeper killed: every process of it dies, guests included),
  ``on`` starts it as ``drover lab host start``, ``reboot`` both,
  ``status`` prints ``Status: ON`` or ``Status: OFF``, ``monitor`` checks
  that the lab is there, ``list`` prints its hosts, ``metadata`` describes
  the agent in XML.  ``option`` is the old name of ``action``.
- ``plug`` (or ``port``): the lab host, ``h1``, ``LAB-h1`` or ``1``.
- ``lab_dir``: the lab's directory (default ``[lab] lab_dir``).

Exit codes follow fence-agents: 0 success (for status: on), 2 status off,
1 any error, with one line on stderr.
"""
import sys

from agent.common.errors import DroverError, one_line

ACTIONS = ("off", "on", "reboot", "status", "monitor", "list", "metadata")
NEEDS_PLUG = ("off", "on", "reboot", "status")
ALIASES = {"option": "action", "port": "plug", "lab-dir": "lab_dir"}
EXIT_OK, EXIT_ERROR, EXIT_OFF = 0, 1, 2

METADATA = """<?xml version="1.0" ?>
<resource-agent name="fence_drover_lab"
 shortdesc="Fence agent for drover's namespace lab">
<longdesc>Powers a host of drover's namespace lab off and on: off kills
the host's keeper, so every process of the host dies, guests included;
its storage stays.</longdesc>
<parameters>
  <parameter name="action" unique="0" required="1">
    <getopt mixed="-o, --action=[action]" />
    <content type="string" default="reboot" />
    <shortdesc lang="en">Fencing action</shortdesc>
  </parameter>
  <parameter name="plug" unique="0" required="1">
    <getopt mixed="-n, --plug=[host]" />
    <content type="string" />
    <shortdesc lang="en">Lab host name (h1, LAB-h1 or 1)</shortdesc>
  </parameter>
  <parameter name="lab_dir" unique="0" required="0">
    <getopt mixed="--lab-dir=[dir]" />
    <content type="string" />
    <shortdesc lang="en">The lab's directory</shortdesc>
  </parameter>
</parameters>
<actions>
  <action name="on" automatic="0"/>
  <action name="off" />
  <action name="reboot" />
  <action name="status" />
  <action name="monitor" />
  <action name="list" />
  <action name="metadata" />
</actions>
</resource-agent>"""


class FenceError(Exception):
    """Bad options: one line, exit 1."""


def parse_stdin(text):
    """key=value lines -> dict (aliases resolved, later lines win)."""
    options = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise FenceError(f"not a key=value line: {line!r}")
        key = key.strip()
        options[ALIASES.get(key, key)] = value.strip()
    return options


def parse_args(argv):
    """``--key=value``, ``--key value``, ``-o ACTION``, ``-n PLUG`` ->
    dict."""
    short = {"-o": "action", "-n": "plug"}
    options, args = {}, list(argv)
    while args:
        arg = args.pop(0)
        if arg in short:
            key, value = short[arg], None
        elif arg.startswith("--"):
            key, sep, value = arg[2:].partition("=")
            value = value if sep else None
        else:
            raise FenceError(f"unexpected argument {arg!r}")
        if value is None:
            if not args:
                raise FenceError(f"{arg} needs a value")
            value = args.pop(0)
        options[ALIASES.get(key, key)] = value
    return options


def check(options):
    """(action, plug, lab_dir) of valid options; FenceError otherwise."""
    action = options.get("action", "reboot")
    if action not in ACTIONS:
        raise FenceError(f"unknown action {action!r} (one of "
                         f"{', '.join(ACTIONS)})")
    plug = options.get("plug")
    if action in NEEDS_PLUG and not plug:
        raise FenceError(f"action {action} needs plug=<lab host>")
    return action, plug, options.get("lab_dir")


def _lab(lab_dir):
    from agent.lab.lab import Lab
    if not lab_dir:
        from agent.conf import CONF
        CONF([], project="drover")
        lab_dir = CONF.lab.lab_dir
    return Lab.at(lab_dir)


def _power(lab, plug):
    """"on" or "off" for the lab host ``plug`` (an unknown one: error)."""
    h = lab.plan.resolve(plug)
    row = next((r for r in lab.status() if r["name"] == h.name), None)
    if row is None:
        raise FenceError(f"lab {lab.plan.name} has no host {h.name}")
    return "off" if row["state"] in ("stopped", "down") else "on"


def run(action, plug, lab_dir, out=print):
    """Do ``action``; return the exit code."""
    if action == "metadata":
        out(METADATA)
        return EXIT_OK
    lab = _lab(lab_dir)
    if action == "monitor":
        lab.status()
        return EXIT_OK
    if action == "list":
        for row in lab.status():
            out(f"{row['name']},")
        return EXIT_OK
    power = _power(lab, plug)
    if action == "status":
        out(f"Status: {power.upper()}")
        return EXIT_OK if power == "on" else EXIT_OFF
    if action in ("off", "reboot"):
        lab.host_stop(plug)
    if action in ("on", "reboot"):
        lab.host_start(plug)
    return EXIT_OK


def main(argv=None, stdin=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv:
            options = parse_args(argv)
        else:
            options = parse_stdin((stdin or sys.stdin).read())
        return run(*check(options))
    except (FenceError, DroverError) as err:
        print(f"fence_drover_lab: {one_line(err)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as err:     # a fence agent answers, never a traceback
        print(f"fence_drover_lab: {type(err).__name__}: {one_line(err)}",
              file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
