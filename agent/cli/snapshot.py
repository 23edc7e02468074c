"""drover server image create, server shelve|unshelve.

Registered into the ``server`` verb by agent.cli.server."""
from agent.cli.common import finish, subcommand, wait_task


def _image_create(c, a):
    result = c.call("server.image_create", name=a.server,
                    image_name=a.image_name)
    if not a.wait:
        return result
    wait_task(c, result["task_id"], f"image create {a.image_name}")
    return c.call("image.show", name=a.image_name)


def _shelve(c, a):
    return finish(c, a, c.call("server.shelve", name=a.name),
                  f"shelve {a.name}")


def _unshelve(c, a):
    return finish(c, a, c.call("server.unshelve", name=a.name,
                               host=a.host), f"unshelve {a.name}")


def register_server(sub):
    img = sub.add_parser("image", help="images of an instance")
    isub = img.add_subparsers(dest="what", metavar="ACTION", required=True)
    s = subcommand(isub, "create", _image_create,
                   "snapshot an instance's disk into an image (a running "
                   "guest keeps running)", formatted=True)
    s.add_argument("server", metavar="NAME")
    s.add_argument("--name", dest="image_name", required=True,
                   help="the new image's name")
    s.add_argument("--wait", action="store_true",
                   help="wait until the image is active, showing progress, "
                        "then show it")

    s = subcommand(sub, "shelve", _shelve,
                   "keep an instance as an image and free its host "
                   "(SHELVED_OFFLOADED)", formatted=True)
    s.add_argument("name")
    s.add_argument("--wait", action="store_true",
                   help="wait until done, showing progress")

    s = subcommand(sub, "unshelve", _unshelve,
                   "boot a shelved instance again (same id, name, flavor, "
                   "MAC and address)", formatted=True)
    s.add_argument("name")
    s.add_argument("--host", help="boot on this host (still filtered)")
    s.add_argument("--wait", action="store_true",
                   help="wait until done, showing progress")
