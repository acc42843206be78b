//! NASA Earthdata temporary S3 credentials: a GET of the DAAC's `s3credentials` URL, which
//! redirects to Earthdata Login (urs.earthdata.nasa.gov) for HTTP basic auth with the `~/.netrc`
//! login, then back to the DAAC with a session cookie, which answers with JSON:
//! `accessKeyId`, `secretAccessKey`, `sessionToken`, `expiration` (valid about one hour).
//! Redirects are followed here (not by reqwest) so that the password goes only to the host its
//! netrc entry names, and only over https or loopback, and so that the session cookie set along
//! the way is sent back without a cookie-store dependency.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use async_trait::async_trait;
use object_store::aws::AwsCredential;
use serde::Deserialize;

use super::netrc;
use super::refresh::{Fetch, Fetched};

const MAX_REDIRECTS: usize = 10;

#[derive(Debug)]
pub struct Earthdata {
    url: String,
    netrc: PathBuf,
    client: reqwest::Client,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Credentials {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
    expiration: String,
}

impl Earthdata {
    pub fn new(url: &str, timeout: Duration) -> Result<Self> {
        url::Url::parse(url).with_context(|| format!("Earthdata credentials URL '{url}'"))?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout.max(Duration::from_secs(10)))
            .build()
            .context("cannot build the HTTP client for Earthdata")?;
        Ok(Self {
            url: url.to_string(),
            netrc: netrc::default_path(),
            client,
        })
    }

    async fn get_json(&self) -> Result<Vec<u8>> {
        let mut url = url::Url::parse(&self.url)?;
        let mut cookies: Vec<(String, String)> = Vec::new();
        for _ in 0..MAX_REDIRECTS {
            let host = url.host_str().unwrap_or_default().to_string();
            let mut req = self.client.get(url.clone());
            let jar: Vec<String> = cookies
                .iter()
                .filter(|(h, _)| *h == host)
                .map(|(_, c)| c.clone())
                .collect();
            if !jar.is_empty() {
                req = req.header(reqwest::header::COOKIE, jar.join("; "));
            }
            let loopback = matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]");
            if (url.scheme() == "https" || loopback)
                && let Some(l) = netrc::lookup(&self.netrc, &host)?
            {
                req = req.basic_auth(l.login, Some(l.password));
            }
            let resp = req
                .send()
                .await
                .map_err(|e| anyhow!("cannot reach {host} for Earthdata credentials: {e}"))?;
            for c in resp.headers().get_all(reqwest::header::SET_COOKIE) {
                if let Some(pair) = c.to_str().ok().and_then(|s| s.split(';').next()) {
                    cookies.push((host.clone(), pair.trim().to_string()));
                }
            }
            let status = resp.status();
            if status.is_redirection() {
                let loc = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| anyhow!("{host} answered {status} with no Location"))?;
                url = url
                    .join(loc)
                    .with_context(|| format!("redirect to '{loc}'"))?;
                continue;
            }
            if status == reqwest::StatusCode::UNAUTHORIZED
                || status == reqwest::StatusCode::FORBIDDEN
            {
                bail!(
                    "Earthdata login refused ({status}) at {host}: put `machine {host} login USER password PASS` for your Earthdata account in {} (chmod 600)",
                    self.netrc.display()
                );
            }
            if !status.is_success() {
                bail!(
                    "Earthdata credentials endpoint {} answered {status}",
                    self.url
                );
            }
            return Ok(resp.bytes().await?.to_vec());
        }
        bail!("more than {MAX_REDIRECTS} redirects fetching {}", self.url)
    }
}

/// Parses the `s3credentials` answer; `expiration` is like `2024-03-01 12:34:56+00:00`.
fn parse(body: &[u8]) -> Result<Fetched> {
    let c: S3Credentials = serde_json::from_slice(body)
        .context("the Earthdata credentials answer is not the expected JSON (accessKeyId, secretAccessKey, sessionToken, expiration)")?;
    let e = c.expiration.trim();
    let expires = chrono::DateTime::parse_from_str(e, "%Y-%m-%d %H:%M:%S%:z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(e))
        .with_context(|| format!("Earthdata credentials expiration '{e}' is not a date"))?;
    Ok(Fetched {
        credential: AwsCredential {
            key_id: c.access_key_id,
            secret_key: c.secret_access_key,
            token: c.session_token.filter(|t| !t.is_empty()),
        },
        expires: Some(SystemTime::from(expires.with_timezone(&chrono::Utc))),
    })
}

#[async_trait]
impl Fetch for Earthdata {
    async fn fetch(&self) -> Result<Fetched> {
        parse(&self.get_json().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_daac_answer() {
        let f = parse(br#"{"accessKeyId":"ASIA1","secretAccessKey":"sk","sessionToken":"tok","expiration":"2024-03-01 12:34:56+00:00"}"#).unwrap();
        assert_eq!(f.credential.key_id, "ASIA1");
        assert_eq!(f.credential.token.as_deref(), Some("tok"));
        let want = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_296_496);
        assert_eq!(f.expires, Some(want));
        let f = parse(
            br#"{"accessKeyId":"a","secretAccessKey":"b","expiration":"2024-03-01T12:34:56Z"}"#,
        )
        .unwrap();
        assert_eq!(f.expires, Some(want));
        assert!(parse(b"<html>login</html>").is_err());
    }
}
