from oslo_config import cfg

GROUP = "fencing"
OPTS = [
    cfg.IntOpt("timeout", default=60, min=1,
               help="Seconds a fence of a host may take in all: its fence "
                    "agent's action=off, then action=status repeated until "
                    "the agent reports the host off. A fence that does not "
                    "see the host off within this time fails, and the host "
                    "is not fenced."),
    cfg.FloatOpt("status_interval", default=1.0, min=0.1,
                 help="Seconds between two action=status calls of a fence "
                      "agent while waiting for it to report the host off."),
    cfg.ListOpt("agent_dirs", default=["/usr/sbin", "/usr/bin", "/sbin"],
                help="Directories searched for a fence agent given by name "
                     "(fence_ipmilan); one given as an absolute path is "
                     "run as it is."),
]
