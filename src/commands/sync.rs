//! `geomount sync PATH`: waits until everything written under PATH on a `--read-write` mount is
//! uploaded, for job scripts. It is an fsync of PATH through the mount (a folder's fsync uploads
//! every staged file below it; a file's uploads that file), so the daemon needs no other channel.

use std::path::Path;

use anyhow::{Context, Result, bail};

pub fn run(path: &Path) -> Result<()> {
    let f = std::fs::File::open(path)
        .with_context(|| format!("cannot open {} to sync it", path.display()))?;
    match f.sync_all() {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ESTALE) => bail!(
            "{}: an upload lost to a newer object on the server; the local copy is kept in the \
             staging folder's conflicts/ (the mount's log names it)",
            path.display()
        ),
        Err(e) => Err(e).with_context(|| {
            format!(
                "uploading what was written under {} failed (the files stay staged; the mount's log has the cause)",
                path.display()
            )
        }),
    }
}
