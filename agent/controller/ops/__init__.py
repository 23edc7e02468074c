"""Every operation the controller runs, by task kind."""
from agent.controller.ops import boot, delete, power

WORKFLOWS = {
    "boot": boot.workflow,
    "delete": delete.workflow,
    "stop": power.stop_workflow,
    "start": power.start_workflow,
    "reboot": power.reboot_workflow,
}
