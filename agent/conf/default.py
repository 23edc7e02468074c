from oslo_config import cfg

GROUP = "DEFAULT"
OPTS = [
    cfg.StrOpt("state_path", default="/var/lib/drover",
               help="Top-level directory for drover's state on this machine."),
    cfg.StrOpt("templates_path",
               help="Directory of the jinja2 templates (domain XML, unit "
                    "files). Default: the templates/ directory that ships "
                    "with drover."),
    cfg.BoolOpt("debug", default=False,
                help="Log at debug level (every task step with its "
                     "duration, among others)."),
    cfg.StrOpt("host",
               help="Name of this host as the controller knows it. "
                    "Default: the kernel's hostname."),
]
