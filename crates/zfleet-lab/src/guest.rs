//! OpenZFS 2.x qemu guest built from Debian packages.
