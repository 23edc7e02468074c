from oslo_config import cfg

GROUP = "controller"
OPTS = [
    cfg.StrOpt("socket_path", default="/run/drover/controller.sock",
               help="UNIX socket of the controller's API for the CLI."),
    cfg.StrOpt("image_store_path", default="/var/lib/drover/image-store",
               help="Directory of the controller's image store."),
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
