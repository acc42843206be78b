//! systemd's readiness protocol (`sd_notify`), by hand: one datagram of `NAME=value` lines to the
//! unix socket named in `$NOTIFY_SOCKET` (a leading `@` means the abstract namespace). Without
//! that variable every call is a no-op, so the daemon behaves the same outside systemd.

use std::os::unix::net::{SocketAddr, UnixDatagram};

use anyhow::{Context, Result, bail};

/// Tells the service manager the mount answers requests (`Type=notify` units start here).
pub fn ready() {
    send_logged(&format!("READY=1\nMAINPID={}", std::process::id()));
}

/// Tells the service manager the daemon is unmounting and about to exit; sent at most once.
pub fn stopping() {
    static SENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SENT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        send_logged("STOPPING=1");
    }
}

/// Notification failures are logged, not fatal: the mount itself is fine either way.
fn send_logged(msg: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    match send_to(&path.to_string_lossy(), msg) {
        Ok(()) => tracing::debug!(msg, "notified the service manager"),
        Err(e) => tracing::warn!("cannot notify the service manager: {e:#}"),
    }
}

/// Sends `msg` to the socket `path` (`/run/...` or `@abstract`).
pub fn send_to(path: &str, msg: &str) -> Result<()> {
    let addr = match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())
        }
        None if path.starts_with('/') => SocketAddr::from_pathname(path),
        None => bail!("NOTIFY_SOCKET '{path}' is neither an absolute path nor @abstract"),
    }
    .with_context(|| format!("NOTIFY_SOCKET '{path}' is not a valid socket address"))?;
    let sock = UnixDatagram::unbound().context("cannot create a unix datagram socket")?;
    let sent = sock
        .send_to_addr(msg.as_bytes(), &addr)
        .with_context(|| format!("cannot send to NOTIFY_SOCKET '{path}'"))?;
    if sent != msg.len() {
        bail!("short send to NOTIFY_SOCKET '{path}'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notify.sock");
        let rx = UnixDatagram::bind(&p).unwrap();
        send_to(p.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("geomount-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        send_to(&format!("@{name}"), "STOPPING=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn a_relative_socket_path_is_refused() {
        let err = send_to("run/x", "READY=1").unwrap_err().to_string();
        assert!(err.contains("NOTIFY_SOCKET"), "{err}");
    }
}
