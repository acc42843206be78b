//! Failures of object store requests, classified by the types of the errors object_store, its
//! HTTP client and the OS return (never by their text).

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use object_store::client::{HttpError, HttpErrorKind};

/// The underlying error, shared so that an [`StoreError`] can be cloned (one failed fetch may
/// answer several waiting readers).
type Source = Arc<dyn Error + Send + Sync + 'static>;

/// Why no answer came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The request, or the bound around it, ran out of time.
    Timeout,
    /// No connection to the server (refused, unreachable, DNS).
    Connect,
    /// The connection failed while the request was under way, or the transport failed in
    /// another way before an answer arrived.
    Interrupted,
}

/// What went wrong with a request, as far as the layers above need to tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// No object at that name.
    NotFound,
    /// The object changed: its ETag no longer matches (a failed precondition).
    Stale,
    /// The server refused the request's signature or permissions (HTTP 401/403), or the
    /// request could not be signed.
    AccessDenied,
    /// No keys to sign with: the credential provider (profile, Earthdata, ...) failed.
    Credentials,
    /// No answer from the server.
    Unavailable(Unavailable),
    /// The server answered with an error, or with an answer that cannot be read; `status` is
    /// the HTTP status when it is known.
    Remote { status: Option<u16> },
    /// The request succeeded but its body is shorter than the range asked for: `wanted`
    /// bytes, `got` of them sent. Never cached (the kernel would take it for end of file).
    ShortRead { wanted: u64, got: u64 },
}

/// One failed object store request: its kind, the request it was, and the underlying error.
#[derive(Debug, Clone)]
pub struct StoreError {
    kind: StoreErrorKind,
    /// The request: `GET key bytes 0-100`, `listing s3://bucket/prefix/`.
    what: String,
    source: Option<Source>,
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, what: impl Into<String>) -> Self {
        Self {
            kind,
            what: what.into(),
            source: None,
        }
    }

    pub fn with_source(mut self, source: impl Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The request it was.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The request and the underlying error with its sources, one line, without the kind's
    /// words: what the message of a failed mount quotes.
    pub fn detail(&self) -> String {
        match &self.source {
            Some(s) => format!("{}: {}", self.what, super::chain(s.as_ref())),
            None => self.what.clone(),
        }
    }

    /// The same failure, named as one source of a tree (`source NAME: ...`).
    pub fn in_source(mut self, name: &str) -> Self {
        self.what = format!("source {name}: {}", self.what);
        self
    }

    /// A body of `got` bytes where `wanted` were asked for; `what` names the request.
    pub fn short_read(what: impl Into<String>, wanted: u64, got: u64) -> Self {
        Self::new(StoreErrorKind::ShortRead { wanted, got }, what)
    }

    /// Classifies an object_store error by its variant; for the generic ones, by the errors in
    /// its source chain (credentials, HTTP transport, I/O). `what` names the request.
    pub fn from_object_store(err: object_store::Error, what: impl fmt::Display) -> Self {
        use object_store::Error as E;
        let kind = match &err {
            E::NotFound { .. } => StoreErrorKind::NotFound,
            E::Precondition { .. } | E::NotModified { .. } => StoreErrorKind::Stale,
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => StoreErrorKind::AccessDenied,
            E::AlreadyExists { .. } => StoreErrorKind::Remote { status: Some(409) },
            _ => classify_chain(&err).unwrap_or(StoreErrorKind::Remote { status: None }),
        };
        Self::new(kind, what.to_string()).with_source(err)
    }

    /// A request that got no answer (object_store's HTTP client failed to send it or to read
    /// the response): always [`StoreErrorKind::Unavailable`], of the kind the chain shows.
    pub fn transport(err: HttpError, what: impl fmt::Display) -> Self {
        let kind = match classify_chain(&err) {
            Some(k @ (StoreErrorKind::Unavailable(_) | StoreErrorKind::Credentials)) => k,
            _ => StoreErrorKind::Unavailable(Unavailable::Interrupted),
        };
        Self::new(kind, what.to_string()).with_source(err)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words = match self.kind {
            StoreErrorKind::NotFound => "no such object",
            StoreErrorKind::Stale => "object changed",
            StoreErrorKind::AccessDenied => "access denied by the server",
            StoreErrorKind::Credentials => "cannot get credentials",
            StoreErrorKind::Unavailable(Unavailable::Timeout) => "request timed out",
            StoreErrorKind::Unavailable(Unavailable::Connect) => "cannot connect to the server",
            StoreErrorKind::Unavailable(Unavailable::Interrupted) => {
                "the request failed before an answer arrived"
            }
            StoreErrorKind::Remote { .. } => "remote I/O error",
            StoreErrorKind::ShortRead { wanted, got } => {
                return write!(
                    f,
                    "short read: {}: wanted {wanted} bytes, server sent {got}",
                    self.detail()
                );
            }
        };
        write!(f, "{words}: {}", self.detail())
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn Error + 'static))
    }
}

/// The kind the first telling error in `err`'s chain gives: a credentials failure anywhere
/// wins (the credential fetch has transport errors of its own); then HTTP transport kinds,
/// reqwest's own flags and HTTP status, and I/O error kinds. `None`: nothing telling.
fn classify_chain(err: &(dyn Error + 'static)) -> Option<StoreErrorKind> {
    let chain = || std::iter::successors(Some(err), |&e| e.source());
    if chain().any(|e| e.is::<CredentialsError>()) {
        return Some(StoreErrorKind::Credentials);
    }
    chain().find_map(classify_one)
}

fn classify_one(e: &(dyn Error + 'static)) -> Option<StoreErrorKind> {
    use StoreErrorKind::Unavailable as U;
    if let Some(h) = e.downcast_ref::<HttpError>() {
        return match h.kind() {
            HttpErrorKind::Timeout => Some(U(Unavailable::Timeout)),
            HttpErrorKind::Connect => Some(U(Unavailable::Connect)),
            HttpErrorKind::Request | HttpErrorKind::Interrupted => {
                Some(U(Unavailable::Interrupted))
            }
            HttpErrorKind::Decode => Some(StoreErrorKind::Remote { status: None }),
            // Unknown (and kinds added later): the errors below it may tell.
            _ => None,
        };
    }
    if let Some(r) = e.downcast_ref::<reqwest::Error>() {
        if r.is_timeout() {
            return Some(U(Unavailable::Timeout));
        }
        if r.is_connect() {
            return Some(U(Unavailable::Connect));
        }
        if let Some(s) = r.status() {
            return Some(StoreErrorKind::Remote {
                status: Some(s.as_u16()),
            });
        }
        return None;
    }
    if let Some(a) = e.downcast_ref::<ErrorResponse>() {
        return Some(StoreErrorKind::Remote {
            status: Some(a.status.as_u16()),
        });
    }
    if e.is::<NoAnswer>() || e.is::<tokio::time::error::Elapsed>() {
        return Some(U(Unavailable::Timeout));
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind as K;
        return match io.kind() {
            K::TimedOut => Some(U(Unavailable::Timeout)),
            K::ConnectionRefused
            | K::NotConnected
            | K::AddrNotAvailable
            | K::HostUnreachable
            | K::NetworkUnreachable => Some(U(Unavailable::Connect)),
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                Some(U(Unavailable::Interrupted))
            }
            _ => None,
        };
    }
    None
}

/// A credential provider's failure, as the source of the object_store error it returns: its
/// type marks the request's failure as [`StoreErrorKind::Credentials`].
#[derive(Debug)]
pub struct CredentialsError(Box<dyn Error + Send + Sync + 'static>);

impl CredentialsError {
    pub fn new(e: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        Self(e.into())
    }
}

impl fmt::Display for CredentialsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Error for CredentialsError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

/// An S3 error answer: the HTTP status and, when the body is S3's error XML, its code and
/// message.
#[derive(Debug, Clone)]
pub struct ErrorResponse {
    pub status: http::StatusCode,
    pub code: String,
    pub message: String,
}

impl fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.code.is_empty() {
            write!(f, "HTTP {}", self.status)
        } else {
            write!(f, "HTTP {} {}: {}", self.status, self.code, self.message)
        }
    }
}

impl Error for ErrorResponse {}

/// A request that did not finish within its bound; `hint` names the setting that sets it.
#[derive(Debug, Clone)]
pub struct NoAnswer {
    pub within: Duration,
    pub hint: &'static str,
}

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no answer within {:?}", self.within)?;
        if !self.hint.is_empty() {
            write!(f, " ({})", self.hint)?;
        }
        Ok(())
    }
}

impl Error for NoAnswer {}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(source: impl Error + Send + Sync + 'static) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: Box::new(source),
        }
    }

    #[test]
    fn object_store_variants_classify_by_type() {
        let nf = object_store::Error::NotFound {
            path: "a".into(),
            source: "gone".into(),
        };
        assert_eq!(
            StoreError::from_object_store(nf, "a").kind(),
            StoreErrorKind::NotFound
        );
        let pre = object_store::Error::Precondition {
            path: "a".into(),
            source: "etag".into(),
        };
        assert_eq!(
            StoreError::from_object_store(pre, "a").kind(),
            StoreErrorKind::Stale
        );
        let denied = object_store::Error::PermissionDenied {
            path: "a".into(),
            source: "no".into(),
        };
        assert_eq!(
            StoreError::from_object_store(denied, "a").kind(),
            StoreErrorKind::AccessDenied
        );
    }

    #[test]
    fn generic_errors_classify_by_their_source_chain_not_their_text() {
        let kind = |e| StoreError::from_object_store(e, "GET k").kind();
        let io = |k| std::io::Error::new(k, "whatever it says");
        assert_eq!(
            kind(generic(HttpError::new(
                HttpErrorKind::Timeout,
                io(std::io::ErrorKind::Other)
            ))),
            StoreErrorKind::Unavailable(Unavailable::Timeout)
        );
        assert_eq!(
            kind(generic(HttpError::new(
                HttpErrorKind::Unknown,
                io(std::io::ErrorKind::ConnectionRefused)
            ))),
            StoreErrorKind::Unavailable(Unavailable::Connect)
        );
        assert_eq!(
            kind(generic(io(std::io::ErrorKind::ConnectionReset))),
            StoreErrorKind::Unavailable(Unavailable::Interrupted)
        );
        // Words that once meant "unavailable" do not, without a type that says so.
        assert_eq!(
            kind(generic(io(std::io::ErrorKind::Other))),
            StoreErrorKind::Remote { status: None }
        );
        let denied = generic(CredentialsError::new(HttpError::new(
            HttpErrorKind::Connect,
            io(std::io::ErrorKind::ConnectionRefused),
        )));
        assert_eq!(kind(denied), StoreErrorKind::Credentials);
    }

    #[test]
    fn messages_name_the_request_and_the_cause() {
        let e = StoreError::new(
            StoreErrorKind::Remote { status: Some(404) },
            "listing s3://b/",
        )
        .with_source(ErrorResponse {
            status: http::StatusCode::NOT_FOUND,
            code: "NoSuchBucket".into(),
            message: "The specified bucket does not exist".into(),
        })
        .in_source("era5");
        assert_eq!(
            e.detail(),
            "source era5: listing s3://b/: HTTP 404 Not Found NoSuchBucket: The specified bucket does not exist"
        );
        assert!(
            e.to_string().starts_with("remote I/O error: source era5"),
            "{e}"
        );
        let t = StoreError::new(
            StoreErrorKind::Unavailable(Unavailable::Timeout),
            "GET k bytes 0-9",
        )
        .with_source(NoAnswer {
            within: Duration::from_secs(10),
            hint: "--request-timeout",
        });
        assert_eq!(
            t.to_string(),
            "request timed out: GET k bytes 0-9: no answer within 10s (--request-timeout)"
        );
    }
}
