"""drover: move virtual machines around a fleet of libvirt/QEMU hosts."""
