from oslo_config import cfg

GROUP = "scheduler"
OPTS = [
    cfg.FloatOpt("cpu_allocation_ratio", default=4.0, min=0.1,
                 help="Virtual CPUs per physical CPU a host may promise."),
    cfg.FloatOpt("ram_allocation_ratio", default=1.0, min=0.1,
                 help="Guest RAM per unit of host RAM a host may promise."),
    cfg.FloatOpt("disk_allocation_ratio", default=1.0, min=0.1,
                 help="Guest disk per unit of host disk a host may promise."),
    cfg.IntOpt("reserved_host_memory_mb", default=512, min=0,
               help="Host RAM kept for the host itself."),
    cfg.StrOpt("weigher", default="spread", choices=["spread", "pack"],
               help="spread: prefer the host with most free RAM; pack: "
                    "prefer the host with least."),
    cfg.StrOpt("default_availability_zone", default="nova",
               help="Availability zone of hosts that are in none."),
]
