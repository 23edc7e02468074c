from oslo_config import cfg

GROUP = "ssh"
OPTS = [
    cfg.StrOpt("user", default="root", help="User to log in to hosts as."),
    cfg.StrOpt("private_key", default="/etc/drover/ssh/id_ed25519",
               help="Private key used to log in to hosts."),
    cfg.StrOpt("known_hosts", default="/etc/drover/ssh/known_hosts",
               help="known_hosts file every host key is checked against. "
                    "An unknown or changed key is refused."),
    cfg.FloatOpt("connect_timeout", default=10.0, min=0.1,
                 help="Seconds to wait for an SSH connection."),
    cfg.IntOpt("port", default=22, min=1, max=65535, help="SSH port."),
]
