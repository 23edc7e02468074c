from oslo_config import cfg

GROUP = "libvirt"
OPTS = [
    cfg.StrOpt("uri", default="qemu:///system",
               help="libvirt connection URI of the local hypervisor."),
    cfg.StrOpt("virt_type", default="kvm", choices=["kvm", "qemu"],
               help="Domain type: kvm on real hosts, qemu (TCG) where "
                    "hardware virtualisation is not usable."),
    cfg.StrOpt("cpu_model", default="qemu64",
               help="Named CPU model given to guests. A common model keeps "
                    "guests migratable between hosts of different CPUs."),
    cfg.StrOpt("disk_cachemode", default="none",
               choices=["none", "writethrough", "writeback", "directsync",
                        "unsafe"],
               help="Cache mode of guest disks. 'none' is safe for live "
                    "migration on shared storage."),
    cfg.StrOpt("machine_type", default="pc",
               help="QEMU machine type of guests."),
    cfg.IntOpt("shutdown_timeout", default=60, min=0,
               help="Seconds to wait for a graceful guest shutdown before "
                    "destroying the guest."),
    cfg.IntOpt("connection_retries", default=10, min=0,
               help="How many times to retry opening the libvirt connection "
                    "(for example while libvirtd restarts)."),
    cfg.FloatOpt("connection_retry_interval", default=1.0, min=0,
                 help="Seconds between libvirt connection attempts."),
]
