"""systemd unit files for the agent and the controller.

``python -m agent.common.units`` writes the samples in etc/systemd/ from
templates/systemd/ for a pip install into /opt/drover/venv; provisioning
(vagrant/) renders them for its own paths.
"""
import argparse
import pathlib

from agent.common.templates import render

UNITS = ("drover-agent.service", "drover-controller.service")
SAMPLE = {"bindir": "/opt/drover/venv/bin", "confdir": "/etc/drover",
          "docdir": "/opt/drover/src"}


def render_unit(name, bindir, confdir, docdir):
    return render(f"systemd/{name}.j2", autoescape=False, bindir=bindir,
                  confdir=confdir, docdir=docdir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="etc/systemd")
    for key, value in SAMPLE.items():
        parser.add_argument(f"--{key}", default=value)
    args = parser.parse_args(argv)
    out = pathlib.Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in UNITS:
        (out / name).write_text(render_unit(name, args.bindir, args.confdir,
                                            args.docdir))


if __name__ == "__main__":
    main()
