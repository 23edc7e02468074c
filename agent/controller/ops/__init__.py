"""Every operation the controller runs, by task kind."""
from agent.controller.ops import (boot, cold_migrate, delete, drain,
                                  live_migrate, power, resize_confirm,
                                  resize_revert)

WORKFLOWS = {
    "boot": boot.workflow,
    "delete": delete.workflow,
    "stop": power.stop_workflow,
    "start": power.start_workflow,
    "reboot": power.reboot_workflow,
    "live_migrate": live_migrate.workflow,
    "drain": drain.workflow,
    "cold_migrate": cold_migrate.workflow,
    "resize": cold_migrate.workflow,
    "resize_confirm": resize_confirm.workflow,
    "resize_revert": resize_revert.workflow,
}
