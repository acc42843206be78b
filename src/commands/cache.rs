//! `geomount cache stats|clear`: inspect or empty a persistent block cache directory. Safe while
//! mounts use it: entries are whole files, and a mount treats a vanished entry as a miss.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use crate::cache::disk::{DirStats, clear_dir, default_dir, dir_stats};

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Print the number of cached blocks and their size on disk.
    Stats {
        /// Cache directory (default: the one `geomount mount` uses for this user).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Remove every cached block.
    Clear {
        /// Cache directory (default: the one `geomount mount` uses for this user).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
}

fn describe(s: DirStats) -> String {
    format!(
        "{} blocks, {} bytes ({:.1} MiB)",
        s.entries,
        s.bytes,
        s.bytes as f64 / (1u64 << 20) as f64
    )
}

pub fn run(action: CacheAction) -> Result<()> {
    match action {
        CacheAction::Stats { cache_dir } => {
            let dir = cache_dir.map_or_else(default_dir, Ok)?;
            println!("{}: {}", dir.display(), describe(dir_stats(&dir)?));
        }
        CacheAction::Clear { cache_dir } => {
            let dir = cache_dir.map_or_else(default_dir, Ok)?;
            println!("{}: removed {}", dir.display(), describe(clear_dir(&dir)?));
        }
    }
    Ok(())
}
