//! The commands of the command line that are not a mount: `geomount cache stats|clear` (the
//! persistent cache directory, through `cache::disk`'s directory functions) and `geomount
//! prefetch` (warms a running mount by reading through its mounted path), `geomount sync`
//! (waits for a writable mount's uploads, with an fsync through the mount). Front ends: `cli`
//! parses their arguments and calls them; nothing below imports them.

pub mod cache;
pub mod prefetch;
pub mod sync;
