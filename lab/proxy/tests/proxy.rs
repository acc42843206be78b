//! In-process tests: a tiny upstream hyper server, the proxy in front of it, a hyper client.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use geomount_labproxy::{bind, Config, Proxy};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// What the upstream saw: method, path+query, headers, body.
type Seen = Arc<Mutex<Vec<(String, String, hyper::HeaderMap, Bytes)>>>;

fn object() -> Bytes {
    (0..200_000u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

async fn upstream() -> (String, Seen) {
    let (listener, addr) = bind("127.0.0.1:0").await.unwrap();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let s = s.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let s = s.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        let range = parts
                            .headers
                            .get("range")
                            .map(|v| v.to_str().unwrap().to_owned());
                        s.lock().unwrap().push((
                            parts.method.to_string(),
                            parts.uri.to_string(),
                            parts.headers,
                            body,
                        ));
                        let obj = object();
                        let resp = match range {
                            Some(r) => {
                                let (a, b) =
                                    r.trim_start_matches("bytes=").split_once('-').unwrap();
                                let (a, b): (usize, usize) =
                                    (a.parse().unwrap(), b.parse().unwrap());
                                Response::builder()
                                    .status(206)
                                    .header("content-range", format!("bytes {a}-{b}/{}", obj.len()))
                                    .body(Full::new(obj.slice(a..=b)))
                            }
                            None => Response::builder()
                                .header("etag", "\"abc\"")
                                .header("x-upstream", "yes")
                                .body(Full::new(obj)),
                        };
                        Ok::<_, Infallible>(resp.unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

async fn proxy(cfg: Config) -> (String, Seen, Arc<Proxy>) {
    let (up, seen) = upstream().await;
    let p = Proxy::new(Config {
        upstream: up,
        ..cfg
    })
    .unwrap();
    let (listener, addr) = bind("127.0.0.1:0").await.unwrap();
    tokio::spawn(p.clone().serve(listener, std::future::pending()));
    (format!("http://{addr}"), seen, p)
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response<Incoming> {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    client()
        .request(b.body(Full::new(Bytes::copy_from_slice(body))).unwrap())
        .await
        .unwrap()
}

async fn body(r: Response<Incoming>) -> Bytes {
    r.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn forwards_verbatim_and_counts() {
    let (base, seen, p) = proxy(Config::default()).await;
    let hdrs = [
        ("host", "signed-host.example:9000"),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=x/y, SignedHeaders=host, Signature=z",
        ),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ("x-amz-meta-Odd", "Some Value"),
        ("content-type", "application/octet-stream"),
    ];
    let r = send(
        &base,
        "PUT",
        "/bkt/dir/key%20x?partNumber=1&uploadId=a%2Fb",
        &hdrs,
        b"payload\x00\xff",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-upstream"], "yes");
    assert_eq!(r.headers()["etag"], "\"abc\"");
    assert_eq!(body(r).await, object());
    {
        let s = seen.lock().unwrap();
        let (m, uri, h, b) = &s[0];
        assert_eq!(
            (m.as_str(), uri.as_str()),
            ("PUT", "/bkt/dir/key%20x?partNumber=1&uploadId=a%2Fb")
        );
        for (k, v) in hdrs {
            assert_eq!(
                h.get_all(k).iter().collect::<Vec<_>>(),
                vec![v],
                "header {k}"
            );
        }
        assert_eq!(&b[..], b"payload\x00\xff");
    }
    let r = send(
        &base,
        "GET",
        "/bkt/key",
        &[("range", "bytes=1000-1099")],
        b"",
    )
    .await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 1000-1099/200000");
    assert_eq!(body(r).await, object().slice(1000..1100));
    assert_eq!(
        body(send(&base, "GET", "/bkt/key", &[], b"").await)
            .await
            .len(),
        200_000
    );
    send(&base, "HEAD", "/bkt/key", &[], b"").await;
    body(send(&base, "GET", "/bkt?list-type=2&prefix=a/", &[], b"").await).await;
    body(send(&base, "GET", "/bkt/", &[], b"").await).await;
    body(send(&base, "DELETE", "/bkt/key", &[], b"").await).await;
    let st = p.stats.to_json();
    assert_eq!(st["put"], 1);
    assert_eq!(st["get_range"], 1);
    assert_eq!(st["get"], 1);
    assert_eq!(st["head"], 1);
    assert_eq!(st["list"], 2);
    assert_eq!(st["other"], 1);
    assert_eq!(st["requests"], 7);
    // PUT, GET, 2 LIST, DELETE answered with the whole object; plus 100 ranged bytes.
    assert_eq!(st["bytes_out"], 5 * 200_000 + 100);

    // The stats endpoint answers on the same port and is not forwarded; reset zeroes the counts.
    let n = seen.lock().unwrap().len();
    let j: serde_json::Value =
        serde_json::from_slice(&body(send(&base, "GET", "/__proxy/stats", &[], b"").await).await)
            .unwrap();
    assert_eq!(j["requests"], 7);
    let j: serde_json::Value =
        serde_json::from_slice(&body(send(&base, "POST", "/__proxy/reset", &[], b"").await).await)
            .unwrap();
    assert_eq!(j["requests"], 0);
    assert_eq!(p.stats.to_json()["bytes_out"], 0);
    assert_eq!(seen.lock().unwrap().len(), n);
}

#[tokio::test]
async fn delay_is_applied() {
    let (base, _, _) = proxy(Config {
        delay: Duration::from_millis(150),
        ..Default::default()
    })
    .await;
    let t = Instant::now();
    let r = send(&base, "GET", "/bkt/key", &[("range", "bytes=0-9")], b"").await;
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(body(r).await.len(), 10);
}

#[tokio::test]
async fn bandwidth_cap() {
    // 200 kB at 8 Mbit/s (1 MB/s) takes >= 0.2 s.
    let (base, _, _) = proxy(Config {
        bandwidth_mbps: 8.0,
        ..Default::default()
    })
    .await;
    let t = Instant::now();
    assert_eq!(
        body(send(&base, "GET", "/bkt/key", &[], b"").await)
            .await
            .len(),
        200_000
    );
    assert!(
        t.elapsed() >= Duration::from_millis(190),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn injects_503_and_500_without_upstream() {
    for (cfg, status, code) in [
        (
            Config {
                fail_503: 1.0,
                ..Default::default()
            },
            503,
            "<Code>SlowDown</Code>",
        ),
        (
            Config {
                fail_500: 1.0,
                ..Default::default()
            },
            500,
            "<Code>InternalError</Code>",
        ),
    ] {
        let (base, seen, p) = proxy(cfg).await;
        for _ in 0..3 {
            let r = send(&base, "GET", "/bkt/key", &[], b"").await;
            assert_eq!(r.status(), status);
            let b = body(r).await;
            assert!(std::str::from_utf8(&b).unwrap().contains(code));
        }
        assert!(seen.lock().unwrap().is_empty());
        let st = p.stats.to_json();
        assert_eq!(st["get"], 3);
        assert_eq!(
            st[if status == 503 {
                "injected_503"
            } else {
                "injected_500"
            }],
            3
        );
    }
}

#[tokio::test]
async fn seeded_faults_are_deterministic() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (base, _, _) = proxy(Config {
            fail_503: 0.5,
            seed: 42,
            ..Default::default()
        })
        .await;
        let mut statuses = Vec::new();
        for _ in 0..20 {
            let r = send(&base, "GET", "/bkt/key", &[("range", "bytes=0-0")], b"").await;
            statuses.push(r.status().as_u16());
            body(r).await;
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].contains(&503) && runs[0].contains(&206),
        "{:?}",
        runs[0]
    );
}

#[tokio::test]
async fn reset_mid_body_is_an_error() {
    let (base, _, p) = proxy(Config {
        reset_mid_body: 1.0,
        ..Default::default()
    })
    .await;
    let r = send(&base, "GET", "/bkt/key", &[], b"").await;
    assert_eq!(r.status(), 200);
    assert!(r.into_body().collect().await.is_err());
    assert_eq!(p.stats.to_json()["resets"], 1);
}

#[tokio::test]
async fn stall() {
    let (base, _, p) = proxy(Config {
        stall: Duration::from_millis(200),
        stall_ratio: 1.0,
        ..Default::default()
    })
    .await;
    let t = Instant::now();
    body(send(&base, "HEAD", "/bkt/key", &[], b"").await).await;
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(p.stats.to_json()["stalls"], 1);
}

#[tokio::test]
async fn counts_requests_in_flight_at_once() {
    let (base, _, p) = proxy(Config {
        delay: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    send(&base, "GET", "/bkt/key", &[("range", "bytes=0-9")], b"").await;
    assert_eq!(
        p.stats.to_json()["in_flight_max"],
        1,
        "one request at a time"
    );
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let base = base.clone();
            tokio::spawn(async move {
                body(send(&base, "GET", "/bkt/key", &[("range", "bytes=0-9")], b"").await).await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().len(), 10);
    }
    assert_eq!(
        p.stats.to_json()["in_flight_max"],
        4,
        "four requests overlapped"
    );
    let zeroed = send(&base, "POST", "/__proxy/reset", &[], b"").await;
    let zeroed: serde_json::Value = serde_json::from_slice(&body(zeroed).await).unwrap();
    assert_eq!(
        zeroed["in_flight_max"], 0,
        "a reset starts from what is in flight now"
    );
}
