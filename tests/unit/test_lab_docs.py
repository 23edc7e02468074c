"""docs/lab.md and docs/hosts.md name only options drover has, and the
README links them."""
import pathlib
import re

import pytest

from agent.conf import list_opts

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ("docs/lab.md", "docs/hosts.md")
# `[group] option`, or `[group]` `option`, `option` and `option`
INLINE = re.compile(r"`\[(\w+)\](?:\s+(\w+)[^`]*)?`"
                    r"((?:(?:,| and| or)?\s*`\w+`)*)")
INI_BLOCK = re.compile(r"```ini\n(.*?)```", re.S)   # drover.conf snippets


def _options():
    return {(group, opt.dest) for group, opts in list_opts()
            for opt in opts}


def _named(text):
    """(group, option) pairs the text names."""
    found = set()
    for group, first, rest in INLINE.findall(text):
        for name in [first] * bool(first) + re.findall(r"`(\w+)`", rest):
            found.add((group, name))
    for block in INI_BLOCK.findall(text):
        group = None
        for line in block.splitlines():
            if m := re.match(r"\[(\w+)\]\s*$", line):
                group = m.group(1)
            elif m := re.match(r"(\w+)\s*=", line):
                found.add((group, m.group(1)))
    return found


@pytest.mark.parametrize("doc", DOCS)
def test_docs_name_only_real_options(doc):
    named = _named((ROOT / doc).read_text())
    assert len(named) > 5, named            # the parser found them
    unknown = sorted(f"[{g}] {o}" for g, o in named - _options())
    assert unknown == [], f"{doc} names options drover does not have"


def test_the_parser_sees_inline_lists():
    text = ("(`[ssh]` `user`, `private_key` and\n`port`), `[lab] hosts`, "
            "`[libvirt] virt_type = qemu`")
    assert _named(text) == {("ssh", "user"), ("ssh", "private_key"),
                            ("ssh", "port"), ("lab", "hosts"),
                            ("libvirt", "virt_type")}


def test_readme_links_the_docs_and_nothing_outside():
    readme = (ROOT / "README.md").read_text()
    for doc in DOCS:
        assert f"]({doc})" in readme
    assert "beside this repository" not in readme
