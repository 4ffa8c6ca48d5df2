//! Simulated hosts on zfs-fuse in namespaces.
