"""Where drover's jinja2 templates are, and rendering them."""
import functools
import os
import pathlib
import sys

import jinja2


def templates_dir():
    """[DEFAULT] templates_path, else the source tree's, else the installed
    ``share/drover/templates`` directory."""
    from agent.conf import CONF
    if CONF.templates_path:
        return pathlib.Path(CONF.templates_path)
    source = pathlib.Path(__file__).resolve().parents[2] / "templates"
    if source.is_dir():
        return source
    return pathlib.Path(sys.prefix) / "share" / "drover" / "templates"


@functools.lru_cache(maxsize=8)
def _environment(directory, autoescape):
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory), autoescape=autoescape,
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render(name, *, autoescape, **context):
    """Render template ``name``; ``autoescape`` for XML, off for text."""
    env = _environment(os.fspath(templates_dir()), autoescape)
    return env.get_template(name).render(**context)
