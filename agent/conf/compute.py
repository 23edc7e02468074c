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
OPTS += [
    cfg.StrOpt("migration_ssh_user", default="root",
               help="User a host logs in to another host as to copy an "
                    "instance's disks during cold migration or resize."),
    cfg.StrOpt("migration_ssh_key", default="/root/.ssh/id_ed25519",
               help="Private key (host to host) for those copies."),
    cfg.StrOpt("migration_known_hosts", default="/root/.ssh/known_hosts",
               help="known_hosts file the destination's host key is checked "
                    "against (strict: an unknown or changed key is "
                    "refused)."),
    cfg.StrOpt("receive_disk_command",
               help="Command the destination runs (over SSH) to receive a "
                    "disk, e.g. 'drover-agent receive-disk'. Unset: this "
                    "agent's own Python running agent.host.daemon "
                    "receive-disk (the same install on every host)."),
    cfg.IntOpt("cold_migration_timeout", default=3600, min=60,
               help="Seconds a cold migration's disk copy may take before "
                    "the migration is given up and undone."),
]
OPTS += [
    cfg.StrOpt("rescue_image",
               help="Image (name or id) a rescue boots when none is given. "
                    "Unset: the instance's own image, as Nova does; a "
                    "dedicated rescue image gives tools the instance's own "
                    "image may lack, at the cost of keeping it in every "
                    "host's cache."),
    cfg.IntOpt("rescue_timeout", default=0, min=0,
               help="Seconds after which an instance left in RESCUE is "
                    "unrescued automatically (booted from its own disk "
                    "again). 0: never. Short values end an operator's "
                    "repair under them; long ones keep a rescue system, "
                    "which may not run the guest's services, up."),
]
