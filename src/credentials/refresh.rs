//! A credential provider for object_store that caches temporary keys and refreshes them ahead of
//! expiry in the background, so no request waits for (or fails on) a refresh while the current
//! keys are still valid. object_store asks for credentials on every request.
//!
//! Invariants: a request is never signed with keys past their expiry (minus [`EXPIRY_MARGIN`]);
//! at most one refresh runs at a time; a failed background refresh keeps the current keys and is
//! retried on a later request, no sooner than [`RETRY_AFTER`].

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use object_store::CredentialProvider;
use object_store::aws::AwsCredential;
use parking_lot::RwLock;

use crate::error::CredentialsError;

/// Keys this close to expiry are not used: a request signed now must still arrive in time.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(1);
/// Refresh ahead at the latest this long before expiry (earlier for short-lived keys).
pub const REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// Pause before retrying a failed background refresh.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Keys and when they stop working (`None`: they do not expire). `Debug` shows no key.
pub struct Fetched {
    pub credential: AwsCredential,
    pub expires: Option<SystemTime>,
}

impl Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("credential", &"<redacted>")
            .field("expires", &self.expires)
            .finish()
    }
}

/// A source of keys: a profile, a credential process, NASA Earthdata.
#[async_trait]
pub trait Fetch: Debug + Send + Sync + 'static {
    async fn fetch(&self) -> anyhow::Result<Fetched>;
}

struct Cached {
    credential: Arc<AwsCredential>,
    expires: Option<SystemTime>,
    /// From here on, a request starts a background refresh.
    refresh_at: Option<SystemTime>,
}

#[derive(Debug)]
pub struct Refreshing<F> {
    inner: Arc<Inner<F>>,
}

struct Inner<F> {
    fetcher: F,
    cached: RwLock<Option<Cached>>,
    /// Serialises fetches; held across the fetch.
    fetching: tokio::sync::Mutex<()>,
    background: AtomicBool,
    last_failure: RwLock<Option<SystemTime>>,
}

impl<F: Debug> Debug for Inner<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refreshing")
            .field("fetcher", &self.fetcher)
            .finish()
    }
}

/// When to refresh keys fetched at `now` that expire at `expires`: half-way through their life,
/// but no later than [`REFRESH_AHEAD`] before expiry.
fn refresh_point(now: SystemTime, expires: Option<SystemTime>) -> Option<SystemTime> {
    let expires = expires?;
    let life = expires.duration_since(now).unwrap_or_default();
    Some(expires - (life / 2).min(REFRESH_AHEAD))
}

impl<F: Fetch> Refreshing<F> {
    pub fn new(fetcher: F) -> Self {
        Self {
            inner: Arc::new(Inner {
                fetcher,
                cached: RwLock::new(None),
                fetching: tokio::sync::Mutex::new(()),
                background: AtomicBool::new(false),
                last_failure: RwLock::new(None),
            }),
        }
    }
}

impl<F: Fetch> Inner<F> {
    /// The cached keys if still usable, and whether a refresh is due.
    fn usable(&self, now: SystemTime) -> Option<(Arc<AwsCredential>, bool)> {
        let c = self.cached.read();
        let c = c.as_ref()?;
        if c.expires.is_some_and(|e| now + EXPIRY_MARGIN >= e) {
            return None;
        }
        Some((c.credential.clone(), c.refresh_at.is_some_and(|r| now >= r)))
    }

    async fn refresh(&self) -> anyhow::Result<Arc<AwsCredential>> {
        let fetched = self.fetcher.fetch().await?;
        let now = SystemTime::now();
        if fetched.expires.is_some_and(|e| now + EXPIRY_MARGIN >= e) {
            anyhow::bail!("the credentials fetched have already expired: check the system clock");
        }
        let credential = Arc::new(fetched.credential);
        *self.cached.write() = Some(Cached {
            credential: credential.clone(),
            expires: fetched.expires,
            refresh_at: refresh_point(now, fetched.expires),
        });
        tracing::debug!(expires = ?fetched.expires, "fetched new S3 credentials");
        Ok(credential)
    }

    /// Waits for keys when none are usable; one caller fetches, the others find its result.
    async fn get_blocking(&self) -> anyhow::Result<Arc<AwsCredential>> {
        let _guard = self.fetching.lock().await;
        if let Some((c, _)) = self.usable(SystemTime::now()) {
            return Ok(c);
        }
        self.refresh().await
    }
}

fn spawn_background_refresh<F: Fetch>(inner: &Arc<Inner<F>>) {
    let now = SystemTime::now();
    if inner
        .last_failure
        .read()
        .is_some_and(|t| now < t + RETRY_AFTER)
    {
        return;
    }
    if inner.background.swap(true, Ordering::AcqRel) {
        return;
    }
    let inner = inner.clone();
    tokio::spawn(async move {
        let res = {
            let _guard = inner.fetching.lock().await;
            match inner.usable(SystemTime::now()) {
                Some((_, false)) => Ok(()),
                _ => inner.refresh().await.map(drop),
            }
        };
        if let Err(e) = res {
            *inner.last_failure.write() = Some(SystemTime::now());
            tracing::warn!("refreshing S3 credentials failed; keeping the current ones: {e:#}");
        }
        inner.background.store(false, Ordering::Release);
    });
}

#[async_trait]
impl<F: Fetch> CredentialProvider for Refreshing<F> {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        match self.inner.usable(SystemTime::now()) {
            Some((c, refresh_due)) => {
                if refresh_due {
                    spawn_background_refresh(&self.inner);
                }
                Ok(c)
            }
            None => self
                .inner
                .get_blocking()
                .await
                .map_err(|e| object_store::Error::Generic {
                    store: "S3",
                    source: Box::new(CredentialsError::new(e)),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[derive(Debug)]
    struct Counter {
        n: AtomicU64,
        life: Duration,
        delay: Duration,
        fail_after: u64,
    }

    #[async_trait]
    impl Fetch for Counter {
        async fn fetch(&self) -> anyhow::Result<Fetched> {
            tokio::time::sleep(self.delay).await;
            let n = self.n.fetch_add(1, Ordering::SeqCst) + 1;
            if n > self.fail_after {
                anyhow::bail!("endpoint down");
            }
            Ok(Fetched {
                credential: AwsCredential {
                    key_id: format!("key{n}"),
                    secret_key: "s".into(),
                    token: None,
                },
                expires: Some(SystemTime::now() + self.life),
            })
        }
    }

    fn provider(life: Duration, delay: Duration, fail_after: u64) -> Refreshing<Counter> {
        Refreshing::new(Counter {
            n: AtomicU64::new(0),
            life,
            delay,
            fail_after,
        })
    }

    /// Neither the fetched keys nor the provider holding them show a key in `Debug`.
    #[tokio::test]
    async fn debug_shows_no_key() {
        #[derive(Debug)]
        struct Fixed;
        #[async_trait]
        impl Fetch for Fixed {
            async fn fetch(&self) -> anyhow::Result<Fetched> {
                Ok(Fetched {
                    credential: AwsCredential {
                        key_id: "AKIDq3z".into(),
                        secret_key: "skq3z".into(),
                        token: Some("tkq3z".into()),
                    },
                    expires: None,
                })
            }
        }
        let fetched = Fixed.fetch().await.unwrap();
        let p = Refreshing::new(Fixed);
        assert_eq!(p.get_credential().await.unwrap().secret_key, "skq3z");
        let shown = format!("{fetched:?} {fetched:#?} {p:?} {p:#?}");
        for s in ["AKIDq3z", "skq3z", "tkq3z"] {
            assert!(!shown.contains(s), "{shown}");
        }
    }

    #[test]
    fn refresh_is_due_half_way_or_five_minutes_before_expiry() {
        let now = SystemTime::UNIX_EPOCH;
        let h = Duration::from_secs(3600);
        assert_eq!(
            refresh_point(now, Some(now + h)),
            Some(now + h - REFRESH_AHEAD)
        );
        let s = Duration::from_secs(4);
        assert_eq!(
            refresh_point(now, Some(now + s)),
            Some(now + Duration::from_secs(2))
        );
        assert_eq!(refresh_point(now, None), None);
    }

    #[tokio::test]
    async fn concurrent_first_requests_fetch_once() {
        let p = Arc::new(provider(
            Duration::from_secs(3600),
            Duration::from_millis(50),
            u64::MAX,
        ));
        let all = futures::future::join_all((0..8).map(|_| {
            let p = p.clone();
            async move { p.get_credential().await.unwrap().key_id.clone() }
        }))
        .await;
        assert!(all.iter().all(|k| k == "key1"), "{all:?}");
        assert_eq!(p.inner.fetcher.n.load(Ordering::SeqCst), 1);
    }

    /// Polls until the provider hands out `want`; every answer before it must be `before`.
    async fn wait_for_key(p: &Refreshing<Counter>, before: &str, want: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let key = p.get_credential().await.unwrap().key_id.clone();
            if key == want {
                return;
            }
            assert_eq!(key, before);
            assert!(std::time::Instant::now() < deadline, "{want} never came");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Lifetimes are long against the sleeps so that a loaded machine's late wake-ups (seconds
    // on a busy 2-core runner) cannot move a check across a refresh or expiry point.
    #[tokio::test]
    async fn keys_are_refreshed_in_the_background_before_expiry() {
        // key1 is fetched by t = 0.3 s: refresh due from 10.3 s, usable until 19.3 s.
        let p = provider(
            Duration::from_secs(20),
            Duration::from_millis(300),
            u64::MAX,
        );
        assert_eq!(p.get_credential().await.unwrap().key_id, "key1");
        tokio::time::sleep(Duration::from_millis(11_000)).await;
        // Due for refresh: answered with the current keys, not after the 300 ms refresh.
        assert_eq!(p.get_credential().await.unwrap().key_id, "key1");
        wait_for_key(&p, "key1", "key2").await;
        assert_eq!(p.inner.fetcher.n.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_current_keys_until_they_expire() {
        // key1: refresh due from 6 s, usable until 11 s; every later fetch fails.
        let p = provider(Duration::from_secs(12), Duration::ZERO, 1);
        assert_eq!(p.get_credential().await.unwrap().key_id, "key1");
        tokio::time::sleep(Duration::from_millis(6_500)).await;
        // The background refresh fails; the current keys are still handed out.
        assert_eq!(p.get_credential().await.unwrap().key_id, "key1");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(p.get_credential().await.unwrap().key_id, "key1");
        tokio::time::sleep(Duration::from_millis(5_000)).await;
        let err = p.get_credential().await.unwrap_err().to_string();
        assert!(err.contains("endpoint down"), "{err}");
    }
}
