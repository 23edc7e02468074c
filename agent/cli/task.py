"""drover task show|cancel: the controller's persistent tasks."""
from agent.cli.common import subcommand


def task_id(text):
    """A task id: a positive whole number (argparse exits 2 otherwise)."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def register(subparsers):
    p = subparsers.add_parser("task", help="the controller's tasks")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = subcommand(sub, "show", lambda c, a: c.call("task.show", id=a.id),
                   "show a task: kind, state, progress, error",
                   formatted=True)
    s.add_argument("id", type=task_id)
    s = subcommand(sub, "cancel",
                   lambda c, a: c.call("task.cancel", id=a.id),
                   "stop a task and undo what it did (refused past its "
                   "point of no return)", formatted=True)
    s.add_argument("id", type=task_id)
