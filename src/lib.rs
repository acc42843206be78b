//! geomount: mount remote scientific datasets as a local directory tree (read-only, or with
//! `--read-write` writable through staging on local disk: `write`).
//!
//! The path of one read: `fuse` (thin fuser adapter) -> `fs` (operations, no fuser types)
//! -> `namespace` (inodes, listings, metadata caches; Zarr stores from their consolidated
//! metadata), `formats` (sans-I/O parsers: chunk, tile and message layout of Zarr, TIFF, GRIB2
//! and HDF5) and `reader` (prefetch policy) -> `cache` (memory blocks, then the persistent disk
//! cache) -> `convert` (virtual GRIB2/Zarr views, a `store::Backend` wrapper) -> `store`
//! (object_store backends with request metrics; `multi` routes a config file's several sources).
//!
//! Where a mount's settings come from: `cli`, `config_file` and `mount_helper` -> `resolve`
//! (presets from `catalog`, flags, environment, profiles) -> `config::MountConfig`;
//! `credentials` supplies and refreshes keys (AWS profiles, NASA Earthdata, key files). `mount`
//! assembles the layers for one `MountConfig`; `daemon` runs the process around it. `commands`
//! holds the commands that are not a mount (`geomount cache`, `geomount prefetch`).
//!
//! Imports run one way, from the command line down to the leaves (`rope`, `metrics`, `error`):
//! `tests/layering.rs` holds the table of layers and fails on an import that points up or on a
//! cycle between modules. `cli` is imported only by the binary.

pub mod cache;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod config;
pub mod config_file;
pub mod convert;
pub mod credentials;
pub mod daemon;
pub mod demo;
pub mod error;
pub mod formats;
pub mod fs;
pub mod fuse;
#[doc(hidden)]
pub mod fuzzing;
pub mod logging;
pub mod metrics;
pub mod mount;
pub mod mount_helper;
pub mod namespace;
pub mod notify;
pub mod reader;
pub mod resolve;
pub mod rope;
pub mod store;
pub mod write;
