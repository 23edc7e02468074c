"""[ha]: automatic recovery of failed hosts and crashed guests.

The timing options trade speed of recovery against false alarms: every
second taken off detection is a second less of network trouble that a
host survives without its HA guests being killed.  The defaults recover a
powered-off host's HA guests well within 30 s, and ride out any link or
controller outage shorter than ``lease_time``.
"""
from oslo_config import cfg

GROUP = "ha"
OPTS = [
    cfg.BoolOpt("enabled", default=True,
                help="Recover HA instances of failed hosts and restart "
                     "crashed HA guests automatically. False: the "
                     "controller only reports; operators evacuate."),
    cfg.BoolOpt("default_ha", default=False,
                help="Fleet default: an instance with no ha property on "
                     "itself or its flavor is HA when this is true."),
    cfg.FloatOpt("lease_time", default=10.0, min=1.0,
                 help="Seconds an agent's lease lasts from the renewal the "
                      "controller grants. A host not heard from for this "
                      "long is failed; an isolated host fences itself when "
                      "its lease lapses. Longer rides out longer network "
                      "blips without killing anything, and delays the "
                      "recovery of a dead host by as much."),
    cfg.FloatOpt("renew_interval", default=2.0, min=0.2,
                 help="Seconds between two lease renewals of a host. Must "
                      "be well below lease_time (a third or less): a "
                      "renewal that is late or lost must not let the lease "
                      "lapse. Shorter costs one RPC per host more often."),
    cfg.FloatOpt("lease_margin", default=3.0, min=0.0,
                 help="Seconds the controller waits past lease_time before "
                      "it counts a self-fencing host as fenced: covers the "
                      "drift between the two monotonic clocks and the time "
                      "the agent takes to destroy its HA guests. Shorter "
                      "recovers sooner; too short risks a guest that still "
                      "runs when its copy starts."),
    cfg.FloatOpt("peer_timeout", default=4.0, min=0.5,
                 help="Seconds without an answer after which an agent "
                      "counts a peer host as unreachable (peers are probed "
                      "every renew_interval). Shorter decides isolation "
                      "sooner, and counts a slow peer as gone more often."),
    cfg.FloatOpt("startup_grace", default=60.0, min=0.0,
                 help="Seconds after the controller starts during which it "
                      "recovers nothing automatically: a controller that has "
                      "just started has not yet heard from hosts that are "
                      "only slow. At least lease_time plus lease_margin."),
    cfg.FloatOpt("fence_retry_interval", default=10.0, min=1.0,
                 help="Seconds between two attempts to fence a failed host "
                      "whose fence agent failed. Nothing is evacuated "
                      "until a fence succeeds."),
    cfg.IntOpt("max_restart", default=1, min=0,
               help="Times an HA guest that crashed or stopped without "
                    "drover asking is restarted on its own host within "
                    "restart_window, before it is relocated."),
    cfg.IntOpt("max_relocate", default=1, min=0,
               help="Times such a guest is then moved to another host (a "
                    "cold migration) within restart_window; after that it "
                    "is left in ERROR for the operator."),
    cfg.FloatOpt("restart_window", default=3600.0, min=1.0,
                 help="Seconds over which restarts and relocations are "
                      "counted against max_restart and max_relocate."),
    cfg.StrOpt("watchdog_device", default="",
               help="A watchdog device the agent feeds while its "
                    "self-fence guard runs (e.g. /dev/watchdog, hardware "
                    "or softdog): a hung agent or kernel then resets the "
                    "host. Empty: none (systemd's WatchdogSec still "
                    "restarts a hung agent; systemd's RuntimeWatchdogSec "
                    "may feed the device instead: only one may open it). "
                    "Resetting beats running a guest twice; on a host "
                    "shared with other work it resets that work too."),
]
