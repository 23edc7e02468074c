from oslo_config import cfg

GROUP = "migration"
OPTS = [
    cfg.IntOpt("downtime", default=50, min=10,
               help="Maximum guest pause in milliseconds allowed at the "
                    "first downtime step of a live migration; later steps "
                    "raise it towards downtime_max."),
    cfg.IntOpt("downtime_max", default=500, min=10,
               help="Maximum guest pause in milliseconds allowed at the "
                    "last downtime step of a live migration."),
    cfg.IntOpt("downtime_steps", default=10, min=1,
               help="Number of steps from downtime to downtime_max."),
    cfg.IntOpt("downtime_delay", default=75, min=0,
               help="Seconds between downtime steps per GiB of guest data "
                    "(RAM, at least 2 GiB, plus disks copied by a block "
                    "migration)."),
    cfg.IntOpt("completion_timeout", default=800, min=0,
               help="Seconds per GiB of guest data a live migration may "
                    "take before timeout_action is taken. 0: no timeout."),
    cfg.StrOpt("timeout_action", default="abort",
               choices=[("abort", "cancel the migration; the guest keeps "
                                  "running on the source"),
                        ("force_complete", "switch to post-copy if "
                                           "permitted, else pause the guest "
                                           "so that the copy converges")],
               help="What to do when a live migration reaches its "
                    "completion timeout."),
    cfg.BoolOpt("permit_auto_converge", default=False,
                help="Let QEMU throttle the guest's vCPUs when its memory "
                     "changes faster than it is copied. Not used when "
                     "post-copy is permitted."),
    cfg.BoolOpt("permit_post_copy", default=False,
                help="Allow switching a live migration to post-copy (the "
                     "guest runs on the destination and fetches missing "
                     "pages from the source); needs userfaultfd on the "
                     "destination. A network failure during post-copy "
                     "loses the guest."),
    cfg.IntOpt("bandwidth", default=0, min=0,
               help="Migration bandwidth limit in MiB/s. 0: unlimited."),
    cfg.FloatOpt("monitor_interval", default=0.5, min=0.05,
                 help="Seconds between polls of a running migration's "
                      "progress."),
    cfg.IntOpt("max_concurrent", default=1, min=1,
               help="Outgoing live migrations an agent runs at once; "
                    "further ones wait, queued."),
]
OPTS += [
    cfg.StrOpt("dest_uri_template",
               default="qemu+ssh://root@{address}/system",
               help="libvirt URI of a destination host's daemon for "
                    "peer-to-peer live migration; {address} is the "
                    "destination's address. Real hosts use qemu+ssh or "
                    "qemu+tls; the lab uses qemu+tcp://{address}/system."),
    cfg.FloatOpt("wait_interval", default=5.0, min=0.5,
                 help="Longest time the controller's monitor waits in one "
                      "call for a migration to finish before it records "
                      "progress and waits again; the call returns as soon "
                      "as the migration ends."),
]
OPTS += [
    cfg.IntOpt("expected_bandwidth", default=100, min=1,
               help="Bandwidth in MiB/s the controller's migration "
                    "prediction assumes between two hosts when the source "
                    "sets no [migration] bandwidth limit and no live "
                    "migration between them was measured yet. Too high "
                    "predicts migrations shorter than they will be."),
    cfg.FloatOpt("expected_setup", default=0.3, min=0,
                 help="Seconds the migration prediction adds for a live "
                      "migration's setup (the destination's QEMU start, "
                      "the handshake) before memory moves."),
]
OPTS += [
    cfg.BoolOpt("permit_tcg_dirty_page_loss", default=False,
                help="Live-migrate TCG guests (virt_type qemu) although this "
                     "host's QEMU is older than 9.0, which loses dirty pages "
                     "when it live-migrates a TCG guest (upstream commit "
                     "03bfc2188f061): the guest may arrive with corrupted "
                     "memory and crash. False refuses such live migrations "
                     "with the reason; cold migration is not affected, nor "
                     "is KVM."),
]
