//! Caches of object bytes. `block` is the memory block cache; a disk tier will sit beside it.

pub mod block;
