from oslo_config import cfg

GROUP = "ssh"
OPTS = [
    cfg.StrOpt("user", default="root", help="User to log in to hosts as."),
    cfg.StrOpt("private_key", default="/etc/drover/ssh/id_ed25519",
               help="Private key used to log in to hosts."),
    cfg.StrOpt("known_hosts", default="/etc/drover/ssh/known_hosts",
               help="known_hosts file every host key is checked against, "
                    "by address ('ADDR' or '[ADDR]:PORT' as OpenSSH writes "
                    "them). An unknown or changed key is refused."),
    cfg.FloatOpt("connect_timeout", default=10.0, min=0.1,
                 help="Seconds to wait for an SSH connection."),
    cfg.IntOpt("port", default=22, min=1, max=65535, help="SSH port."),
    cfg.StrOpt("relay_command", default="drover-agent relay",
               help="Command run on a host over SSH that bridges the session "
                    "to the agent's RPC socket."),
    cfg.FloatOpt("keepalive_interval", default=5.0, min=0.5,
                 help="Seconds between SSH keepalive messages on an idle "
                      "connection to a host."),
    cfg.FloatOpt("dead_peer_timeout", default=30.0, min=1,
                 help="Seconds after which a connection whose data (or "
                      "keepalives) the host does not acknowledge is "
                      "considered dead and closed (TCP_USER_TIMEOUT)."),
    cfg.FloatOpt("rpc_timeout", default=300.0, min=0.1,
                 help="Seconds to wait for the reply to an agent call when "
                      "the caller gives no timeout of its own."),
]
