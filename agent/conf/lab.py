from oslo_config import cfg

GROUP = "lab"
OPTS = [
    cfg.StrOpt("lab_dir", default="/var/lib/drover-lab",
               help="Directory holding the namespace lab's state."),
    cfg.StrOpt("cache_dir", default="/var/cache/drover-lab",
               help="Cache of downloaded packages and the built guest "
                    "image."),
    cfg.IntOpt("hosts", default=3, min=1, max=20,
               help="Number of lab hosts 'drover lab up' creates."),
    cfg.StrOpt("network", default="198.18.0.0/24",
               help="Lab network; addresses are never used outside the lab."),
    cfg.StrOpt("name", default="drover",
               help="Prefix of the lab's namespaces, bridges and veths; "
                    "lets tests run a lab of their own beside another."),
]
