//! The range store: object bytes by (key, ETag, range) in two tiers. `memory` is the one
//! weighed memory tier every cache of the process draws from (blocks, and values derived from
//! objects' bytes); `block` cuts objects into blocks and planned units over it; `disk` is the
//! persistent tier below. No format knowledge lives here.

pub mod block;
pub mod disk;
pub mod memory;
