"""Output formats as operators know them from ``openstack``.

``-f table`` (default), ``-f json`` and ``-f value``, with ``-c COLUMN``
(repeatable) to choose columns.  A listing is a list of dicts; a single
object (``show``) is one dict printed as Field/Value rows.
"""
import json

from agent.common.errors import InvalidInput

FORMATS = ("table", "json", "value")


def add_format_args(parser):
    parser.add_argument("-f", "--format", choices=FORMATS, default="table",
                        help="output format (default: table)")
    parser.add_argument("-c", "--column", action="append", default=[],
                        metavar="COLUMN",
                        help="column to show (repeatable; default: all)")


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k}='{v}'" for k, v in sorted(value.items()))
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def _pick(columns, wanted):
    if not wanted:
        return list(columns)
    unknown = [c for c in wanted if c not in columns]
    if unknown:
        raise InvalidInput(f"unknown column {unknown[0]!r}; columns: "
                           + ", ".join(columns))
    return list(wanted)


def _table(header, rows):
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(line) for r in cells
                              for line in r[i].splitlines() or [""]])
              for i, h in enumerate(header)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(values):
        return "| " + " | ".join(v.ljust(w) for v, w in
                                 zip(values, widths, strict=True)) + " |"
    out = [rule, line(header), rule]
    out += [line(r) for r in cells]
    if cells:
        out.append(rule)
    return "\n".join(out)


def format_list(rows, columns, fmt="table", wanted=()):
    """Render a listing; ``columns`` fixes the order of the dict keys."""
    cols = _pick(columns, wanted)
    if fmt == "json":
        return json.dumps([{c: r.get(c) for c in cols} for r in rows],
                          indent=2, default=str)
    values = [[r.get(c) for c in cols] for r in rows]
    if fmt == "value":
        return "\n".join(" ".join(_cell(v) for v in row) for row in values)
    return _table(cols, values)


def format_show(obj, fmt="table", wanted=()):
    """Render one object: Field/Value rows."""
    cols = _pick(list(obj), wanted)
    if fmt == "json":
        return json.dumps({c: obj[c] for c in cols}, indent=2, default=str)
    if fmt == "value":
        return "\n".join(_cell(obj[c]) for c in cols)
    return _table(["Field", "Value"], [[c, obj[c]] for c in cols])


def emit(text):
    if text:
        print(text)
