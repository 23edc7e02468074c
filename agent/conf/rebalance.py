from oslo_config import cfg

GROUP = "rebalance"
OPTS = [
    cfg.BoolOpt("enabled", default=False,
                help="Rebalance the fleet automatically: every interval "
                     "the controller computes the plan of "
                     "'drover fleet rebalance' and, once the imbalance has "
                     "lasted hold_rounds rounds, runs it.  Off by default: "
                     "live migrations cost guests a short pause and the "
                     "network bandwidth they use."),
    cfg.IntOpt("interval", default=60, min=5,
               help="Seconds between rounds.  Shorter reacts sooner to "
                    "load but reads the load over fewer samples."),
    cfg.StrOpt("metric", default="cpu", choices=["cpu", "ram", "allocated"],
               help="What is balanced: measured CPU, measured memory, or "
                    "the RAM flavors claim."),
    cfg.FloatOpt("threshold", default=0.15, min=0.0,
                 help="Imbalance score (capacity-weighted spread of host "
                      "load fractions, 0 = even) above which a round "
                      "counts as imbalanced.  Lower evens the fleet more "
                      "and migrates more often."),
    cfg.IntOpt("hold_rounds", default=3, min=1,
               help="Consecutive imbalanced rounds before anything moves "
                    "(Proxmox 5.2's rule): a short burst of load moves "
                    "nothing.  Higher never flaps but reacts later."),
    cfg.IntOpt("max_moves", default=2, min=1,
               help="Live migrations per round at most: fewer disturbs "
                    "less, more evens out faster."),
    cfg.IntOpt("max_parallel", default=1, min=1,
               help="Live migrations of a round run at once."),
    cfg.IntOpt("load_window", default=60, min=10,
               help="Seconds of load history a guest's rate is averaged "
                    "over (at most the 600 the controller keeps).  Longer "
                    "is steadier, shorter follows changes sooner."),
]
