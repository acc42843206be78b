//! Caches of object bytes: `block` is the memory block cache, `disk` its persistent tier.

pub mod block;
pub mod cli;
pub mod disk;
pub mod prefetch;
