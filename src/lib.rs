//! geomount: mount remote scientific datasets as a read-only local directory tree.
//!
//! The path of one read: `fuse` (thin fuser adapter) -> `fs` (operations, no fuser types)
//! -> `namespace` (inodes, listings, metadata caches) and `reader` (prefetch policy)
//! -> `cache` (memory block cache) -> `store` (object_store backends with request metrics).

pub mod cache;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod config_file;
pub mod convert;
pub mod credentials;
pub mod daemon;
pub mod demo;
pub mod error;
pub mod fs;
pub mod fuse;
pub mod metrics;
pub mod mount_helper;
pub mod namespace;
pub mod notify;
pub mod plan;
pub mod reader;
pub mod resolve;
pub mod rope;
pub mod store;
