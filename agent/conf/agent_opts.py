from oslo_config import cfg

GROUP = "agent"
OPTS = [
    cfg.StrOpt("instances_path", default="/var/lib/drover/instances",
               help="Directory of instance directories (one per instance "
                    "UUID) on this host's local storage."),
    cfg.StrOpt("shared_instances_path",
               help="Directory of instance directories on storage that "
                    "other hosts see too (for example NFS). Unset: no "
                    "shared storage."),
    cfg.StrOpt("image_cache_path", default="/var/lib/drover/images",
               help="Where images copied from the controller are cached as "
                    "backing files."),
    cfg.StrOpt("socket_path", default="/run/drover/agent.sock",
               help="UNIX socket the agent serves its RPC on."),
    cfg.StrOpt("bridge", default="br-guest",
               help="Bridge that guest NICs are attached to."),
    cfg.StrOpt("migration_address",
               help="Address other hosts use to reach this host for live "
                    "migration traffic. Default: the host's SSH address."),
]
OPTS += [
    cfg.IntOpt("reported_vcpus", default=0, min=0,
               help="vCPUs this host offers to guests; 0: all of its CPUs. "
                    "Lets an operator keep part of a host back, or a lab "
                    "of hosts sharing one machine split it."),
    cfg.IntOpt("reported_memory_mb", default=0, min=0,
               help="RAM (MiB) this host offers to guests; 0: all of it."),
    cfg.IntOpt("reported_disk_gb", default=0, min=0,
               help="Disk (GiB) this host offers to guests; 0: the size of "
                    "the filesystem of instances_path."),
]
