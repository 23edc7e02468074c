from oslo_config import cfg

GROUP = "controller"
OPTS = [
    cfg.StrOpt("socket_path", default="/run/drover/controller.sock",
               help="UNIX socket of the controller's API for the CLI."),
    cfg.StrOpt("image_store_path", default="/var/lib/drover/image-store",
               help="Directory of the controller's image store."),
    cfg.StrOpt("image_store_host_path", default="",
               help="The image store's directory as every host sees it, "
                    "when image_store_path is on storage the hosts share "
                    "(e.g. an NFS export mounted on the controller and on "
                    "each host). Set: a host writes a snapshot straight "
                    "into the store, with no copy over SSH (the controller "
                    "checks the file arrived there; a host that does not "
                    "see the store fails the snapshot, nothing is kept). "
                    "Empty (the default): the snapshot is written beside "
                    "the instance's disk and copied into the store over "
                    "SSH, its sha256 computed on the way. Trades a "
                    "transfer of the whole image for every host mounting "
                    "the store."),
    cfg.IntOpt("poll_interval", default=5, min=1,
               help="Seconds between polls of every host."),
    cfg.IntOpt("host_down_after", default=15, min=1,
               help="A host that has not answered a poll for this many "
                    "seconds is down."),
    cfg.StrOpt("guest_network", default="198.18.0.0/24",
               help="Network (CIDR) guest addresses are allocated from."),
    cfg.StrOpt("guest_address_range", default="198.18.0.100-198.18.0.250",
               help="First and last guest address the controller hands out."),
    cfg.StrOpt("metrics_listen", default="",
               help="host:port of the Prometheus metrics endpoint (HTTP, "
                    "no authentication: bind it to an address only the "
                    "monitoring reaches, e.g. 127.0.0.1:9180). Empty: off. "
                    "Each scrape reads the store: counts grouped in SQL, "
                    "and the task and migration records added since the "
                    "last scrape."),
]
