from oslo_config import cfg

GROUP = "compute"
OPTS = [
    cfg.BoolOpt("allow_resize_to_same_host", default=False,
                help="Allow a resize to pick the instance's current host."),
    cfg.IntOpt("resize_confirm_window", default=0, min=0,
               help="Seconds after which a resize or cold migration waiting "
                    "in VERIFY_RESIZE is confirmed automatically. 0: never."),
    cfg.BoolOpt("convert_to_raw_on_migrate", default=False,
                help="Convert qcow2 disks to raw during cold migration."),
]
