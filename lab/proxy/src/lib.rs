//! geomount-labproxy: a loopback HTTP reverse proxy for S3 that adds latency, a bandwidth cap and
//! faults, and counts requests by kind. See README.md.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{channel::Channel, combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio::net::TcpListener;

mod quickack;
use quickack::QuickAckConnector;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// Proxy settings (the command-line flags).
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// `http://host:port` of the S3 server.
    pub upstream: String,
    pub delay: Duration,
    /// Total bandwidth cap shared by all responses, in megabits per second (0 = none).
    pub bandwidth_mbps: f64,
    pub fail_503: f64,
    pub fail_500: f64,
    pub reset_mid_body: f64,
    pub stall: Duration,
    pub stall_ratio: f64,
    pub seed: u64,
}

const KINDS: [&str; 6] = ["get", "get_range", "head", "list", "put", "other"];
const EVENTS: [&str; 4] = ["injected_503", "injected_500", "resets", "stalls"];

/// Request counters, zeroed by `POST /__proxy/reset`.
#[derive(Default)]
pub struct Stats {
    kinds: [AtomicU64; 6],
    events: [AtomicU64; 4],
    bytes_out: AtomicU64,
    /// Requests between arrival and their response head, now and at most since the last reset.
    in_flight: AtomicU64,
    in_flight_max: AtomicU64,
}

/// Counts one request as in flight until dropped.
struct InFlight<'a>(&'a Stats);

impl<'a> InFlight<'a> {
    fn enter(stats: &'a Stats) -> Self {
        let now = stats.in_flight.fetch_add(1, Relaxed) + 1;
        stats.in_flight_max.fetch_max(now, Relaxed);
        Self(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

impl Stats {
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        let mut total = 0;
        for (name, c) in KINDS.iter().zip(&self.kinds) {
            let v = c.load(Relaxed);
            total += v;
            m.insert((*name).into(), v.into());
        }
        m.insert("requests".into(), total.into());
        for (name, c) in EVENTS.iter().zip(&self.events) {
            m.insert((*name).into(), c.load(Relaxed).into());
        }
        m.insert("bytes_out".into(), self.bytes_out.load(Relaxed).into());
        m.insert(
            "in_flight_max".into(),
            self.in_flight_max.load(Relaxed).into(),
        );
        serde_json::Value::Object(m)
    }
    fn reset(&self) {
        self.kinds
            .iter()
            .chain(&self.events)
            .chain([&self.bytes_out])
            .for_each(|c| c.store(0, Relaxed));
        self.in_flight_max
            .store(self.in_flight.load(Relaxed), Relaxed);
    }
}

/// The request kind used for counting (path-style addressing: `/bucket/key`).
pub fn classify(method: &Method, uri: &Uri, has_range: bool) -> usize {
    let path = uri.path().trim_start_matches('/');
    let no_key = match path.split_once('/') {
        None => true,
        Some((_, key)) => key.is_empty(),
    };
    let query = uri.query().unwrap_or("");
    let listy = query.split('&').any(|p| {
        let name = p.split('=').next().unwrap_or("");
        matches!(name, "list-type" | "prefix" | "delimiter")
    });
    match *method {
        Method::GET if no_key || listy => 3,
        Method::GET if has_range => 1,
        Method::GET => 0,
        Method::HEAD => 2,
        Method::PUT => 4,
        _ => 5,
    }
}

/// Faults drawn for one request (four draws per request, so the sequence is fixed by `--seed`).
struct Draw {
    fail_503: bool,
    fail_500: bool,
    stall: bool,
    reset: bool,
}

pub struct Proxy {
    cfg: Config,
    upstream: Uri,
    client: Client<QuickAckConnector, Incoming>,
    rng: Mutex<StdRng>,
    /// Bandwidth limiter: the instant the shared link becomes free.
    link_free: Mutex<Instant>,
    pub stats: Stats,
}

impl Proxy {
    pub fn new(cfg: Config) -> Result<Arc<Self>, BoxError> {
        let upstream: Uri = cfg.upstream.parse()?;
        if upstream.scheme_str() != Some("http") || upstream.authority().is_none() {
            return Err("--upstream must be http://host:port".into());
        }
        // No Nagle on our side, quick ACKs towards the upstream (which may keep Nagle on): a
        // small response head or body piece held back for a delayed ACK (~40 ms on loopback)
        // would be measured as server latency.
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(QuickAckConnector(connector));
        Ok(Arc::new(Proxy {
            rng: Mutex::new(StdRng::seed_from_u64(cfg.seed)),
            link_free: Mutex::new(Instant::now()),
            stats: Stats::default(),
            upstream,
            client,
            cfg,
        }))
    }

    fn draw(&self) -> Draw {
        let mut r = self.rng.lock().unwrap();
        let mut hit = |p: f64| r.random::<f64>() < p;
        Draw {
            fail_503: hit(self.cfg.fail_503),
            fail_500: hit(self.cfg.fail_500),
            stall: hit(self.cfg.stall_ratio),
            reset: hit(self.cfg.reset_mid_body),
        }
    }

    /// Wait until `n` more bytes fit in the bandwidth cap.
    async fn throttle(&self, n: usize) {
        if self.cfg.bandwidth_mbps <= 0.0 {
            return;
        }
        let cost = Duration::from_secs_f64(n as f64 * 8.0 / (self.cfg.bandwidth_mbps * 1e6));
        let done = {
            let mut free = self.link_free.lock().unwrap();
            let start = (*free).max(Instant::now());
            *free = start + cost;
            *free
        };
        tokio::time::sleep_until(done.into()).await;
    }

    /// Accept connections until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                _ = &mut shutdown => return,
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => { eprintln!("labproxy: accept: {e}"); continue; }
                },
            };
            let _ = stream.set_nodelay(true);
            let me = self.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| me.clone().handle(req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/__proxy/stats") => return Ok(json_response(&self.stats.to_json())),
            (&Method::POST, "/__proxy/reset") => {
                self.stats.reset();
                return Ok(json_response(&self.stats.to_json()));
            }
            _ => {}
        }
        let kind = classify(
            req.method(),
            req.uri(),
            req.headers().contains_key(header::RANGE),
        );
        self.stats.kinds[kind].fetch_add(1, Relaxed);
        let _in_flight = InFlight::enter(&self.stats);
        let draw = self.draw();
        tokio::time::sleep(self.cfg.delay).await;
        if draw.stall {
            self.stats.events[3].fetch_add(1, Relaxed);
            tokio::time::sleep(self.cfg.stall).await;
        }
        if draw.fail_503 {
            self.stats.events[0].fetch_add(1, Relaxed);
            return Ok(s3_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SlowDown",
                "Please reduce your request rate.",
            ));
        }
        if draw.fail_500 {
            self.stats.events[1].fetch_add(1, Relaxed);
            return Ok(s3_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "We encountered an internal error. Please try again.",
            ));
        }
        Ok(match self.clone().forward(req, draw.reset).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("labproxy: upstream: {e}");
                s3_error(
                    StatusCode::BAD_GATEWAY,
                    "BadGateway",
                    &format!("labproxy: upstream: {e}"),
                )
            }
        })
    }

    async fn forward(
        self: Arc<Self>,
        req: Request<Incoming>,
        reset: bool,
    ) -> Result<Response<Body>, BoxError> {
        let (mut parts, body) = req.into_parts();
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let mut up = self.upstream.clone().into_parts();
        up.path_and_query = Some(pq.parse()?);
        parts.uri = Uri::from_parts(up)?;
        // Host (and every signed header) goes through unchanged; only hop-by-hop headers are
        // dropped. `Expect` is dropped too: hyper answers 100-continue to the client itself, and
        // SigV4 clients never sign it.
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::EXPECT);
        let resp = self
            .client
            .request(Request::from_parts(parts, body))
            .await?;
        let (mut parts, mut body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let len: Option<u64> = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        // Cut point for the reset fault: half-way through a non-empty body.
        let cut = match len {
            Some(n) if reset && n > 0 => Some(n / 2),
            None if reset => Some(0),
            _ => None,
        };
        let (mut tx, rx) = Channel::<Bytes, BoxError>::new(2);
        let me = self.clone();
        tokio::spawn(async move {
            let mut sent = 0u64;
            while let Some(frame) = body.frame().await {
                let frame = match frame {
                    Ok(f) => f,
                    Err(e) => return tx.abort(e.into()),
                };
                let Ok(mut data) = frame.into_data() else {
                    continue;
                };
                while !data.is_empty() {
                    let mut piece = data.split_to(data.len().min(64 * 1024));
                    if let Some(cut) = cut {
                        if sent + piece.len() as u64 >= cut {
                            piece.truncate((cut - sent) as usize);
                            me.send(&mut tx, piece).await;
                            me.stats.events[2].fetch_add(1, Relaxed);
                            return tx.abort("labproxy: injected reset mid-body".into());
                        }
                    }
                    sent += piece.len() as u64;
                    if !me.send(&mut tx, piece).await {
                        return;
                    }
                }
            }
        });
        Ok(Response::from_parts(parts, rx.boxed()))
    }

    async fn send(
        &self,
        tx: &mut http_body_util::channel::Sender<Bytes, BoxError>,
        data: Bytes,
    ) -> bool {
        if data.is_empty() {
            return true;
        }
        let n = data.len();
        self.throttle(n).await;
        let ok = tx.send_data(data).await.is_ok();
        if ok {
            self.stats.bytes_out.fetch_add(n as u64, Relaxed);
        }
        ok
    }
}

fn strip_hop_by_hop(h: &mut hyper::HeaderMap) {
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "trailer",
    ] {
        h.remove(name);
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|e: Infallible| match e {})
        .boxed()
}

fn json_response(v: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(full(format!("{v}\n")));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn s3_error(status: StatusCode, code: &str, msg: &str) -> Response<Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{msg}</Message><RequestId>labproxy</RequestId></Error>"
    );
    let mut r = Response::new(full(xml));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    r
}

/// Bind `listen`, returning the listener and its actual address (for `127.0.0.1:0`).
pub async fn bind(listen: &str) -> std::io::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind(listen).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}
