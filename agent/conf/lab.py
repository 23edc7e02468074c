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
    cfg.StrOpt("qemu", default="backports", choices=["backports", "system"],
               help="QEMU of the lab's hosts. backports: QEMU 10 from "
                    "bookworm-backports, downloaded into cache_dir and run "
                    "inside the lab hosts only (the machine's packages are "
                    "untouched); system: the machine's own. Debian 12's "
                    "QEMU 7.2 loses dirty pages when it live-migrates a "
                    "TCG guest (fixed in QEMU 9.0), and the lab's guests "
                    "are TCG: with system, live-migrated lab guests can "
                    "crash (agent/lab/emulator.py)."),
]
