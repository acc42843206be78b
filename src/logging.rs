//! Log setup for the daemon: `tracing` to a file, the terminal, or the journal.

use std::path::Path;

use anyhow::{Context, Result};

/// Whether stderr is the journal's stream (systemd sets `JOURNAL_STREAM=DEV:INODE` for it).
pub fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(want) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(meta) = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata())
    else {
        return false;
    };
    want.to_str() == Some(&format!("{}:{}", meta.dev(), meta.ino()))
}

/// Sets up `tracing`: level from `GEOMOUNT_LOG` (default `info`), to a file or stderr. On stderr,
/// colours only on a terminal; into the journal, no timestamps either (the journal adds its own).
pub fn init_logging(file: Option<&Path>, to_stderr: bool) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    // fuser warns when its own unmount-on-drop finds the mount already gone: not news.
    let filter = EnvFilter::try_from_env("GEOMOUNT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,fuser::session=error"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let res = match file {
        Some(p) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("cannot open log file {}", p.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .try_init()
        }
        None if to_stderr && stderr_is_journal() => builder
            .with_ansi(false)
            .without_time()
            .with_writer(std::io::stderr)
            .try_init(),
        None if to_stderr => {
            use std::io::IsTerminal;
            builder
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .try_init()
        }
        None => builder.with_writer(std::io::sink).try_init(),
    };
    res.map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))
}
