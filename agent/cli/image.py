"""drover image create|list|show|delete"""
import os

from agent.cli.common import subcommand

COLUMNS = ["ID", "Name", "Format", "Status", "Size", "Virtual Size"]


def _create(c, a):
    return c.call("image.create", name=a.name, path=os.path.abspath(a.file),
                  disk_format=a.disk_format)


def register(subparsers):
    p = subparsers.add_parser("image", help="images in the image store")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = subcommand(sub, "create", _create,
                   "copy a disk image into the image store", formatted=True)
    s.add_argument("name")
    s.add_argument("--file", required=True,
                   help="image file on the controller's machine")
    s.add_argument("--disk-format", default="qcow2", choices=["qcow2", "raw"])
    subcommand(sub, "list", lambda c, a: (c.call("image.list"), COLUMNS),
               "list images", formatted=True)
    s = subcommand(sub, "show", lambda c, a: c.call("image.show",
                                                    name=a.name),
                   "show an image", formatted=True)
    s.add_argument("name")
    s = subcommand(sub, "delete", lambda c, a: c.call("image.delete",
                                                      name=a.name),
                   "delete an image (refused while an instance was built "
                   "from it or is shelved in it; host caches keep what "
                   "their disks use)")
    s.add_argument("name")
