from oslo_config import cfg

GROUP = "database"
OPTS = [
    cfg.StrOpt("connection", default="sqlite:////var/lib/drover/drover.db",
               deprecated_opts=[cfg.DeprecatedOpt("database_url",
                                                  group="controller")],
               help="SQLAlchemy URL of the controller's state store. "
                    "SQLite (sqlite:////path) needs no server but allows "
                    "one controller only; PostgreSQL "
                    "(postgresql+psycopg://user:pass@host/db) needs a "
                    "server but lets standby controllers share it and take "
                    "over when the leader dies. Replaces [controller] "
                    "database_url."),
    cfg.FloatOpt("leader_poll_interval", default=1.0, min=0.1,
                 help="PostgreSQL only: seconds between a standby "
                      "controller's attempts to take the leader's lock. "
                      "Shorter means a faster takeover when the leader dies "
                      "but more queries from every standby."),
    cfg.IntOpt("keepalive_s", default=3, min=1,
               help="PostgreSQL only: TCP keepalive idle time and interval "
                    "(seconds) of the controller's connections. A leader "
                    "whose host vanishes (no TCP reset) loses its lock "
                    "after about 3 times this; shorter means a faster "
                    "takeover after a power loss but risks deposing a "
                    "leader over a short network stall."),
    cfg.StrOpt("name", default=None,
               help="This controller's name in the leader record (what a "
                    "standby tells the CLI); default: the host name and "
                    "the process id."),
]
