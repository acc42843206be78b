//! ListObjectsV2 with a delimiter, written here because object_store parses every returned key
//! as a `Path` and fails the whole page on one key it rejects (`a//b`, `./x`). Keys that cannot be
//! file names are left for [`super::finish_listing`] to skip. Signing and TLS come from
//! object_store (`AwsAuthorizer`, `ReqwestConnector`), so they match the GET path exactly.

use std::time::{Duration, SystemTime};

use object_store::aws::{AwsAuthorizer, AwsCredentialProvider};
use object_store::client::{HttpClient, HttpRequest, HttpRequestBody};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::{Listing, ObjectInfo};
use crate::error::{ErrorResponse, FsError, StoreError, StoreErrorKind as K};

/// RFC 3986 unreserved characters stay; everything else is percent-encoded (SigV4 rules).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub struct S3Lister {
    pub client: HttpClient,
    /// `scheme://host[:port]/bucket` (path style) or `scheme://bucket.host` (virtual hosted).
    pub bucket_url: String,
    pub bucket: String,
    pub region: String,
    /// `None` for unsigned (anonymous) requests.
    pub credentials: Option<AwsCredentialProvider>,
}

impl std::fmt::Debug for S3Lister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Lister")
            .field("bucket_url", &self.bucket_url)
            .field("signed", &self.credentials.is_some())
            .finish()
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ListBucketResult {
    is_truncated: bool,
    next_continuation_token: Option<String>,
    contents: Vec<Content>,
    common_prefixes: Vec<CommonPrefix>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Content {
    key: String,
    size: u64,
    last_modified: String,
    #[serde(rename = "ETag")]
    e_tag: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CommonPrefix {
    prefix: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct S3ErrorBody {
    code: String,
    message: String,
}

impl S3Lister {
    /// Lists one level below `prefix` (empty or ending in `/`), following continuation tokens.
    pub async fn list(&self, prefix: &str) -> Result<Listing, FsError> {
        let mut listing = Listing {
            requests: 0,
            ..Default::default()
        };
        let mut token: Option<String> = None;
        loop {
            let page = self.page(prefix, token.as_deref(), None).await?;
            listing.requests += 1;
            match add_page(&mut listing, page, prefix) {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        Ok(listing)
    }

    /// One request for at most one key below `prefix`: checks bucket, endpoint and credentials.
    pub async fn probe(&self, prefix: &str) -> Result<(), FsError> {
        self.page(prefix, None, Some(1)).await.map(drop)
    }

    async fn page(
        &self,
        prefix: &str,
        token: Option<&str>,
        max_keys: Option<u32>,
    ) -> Result<ListBucketResult, FsError> {
        let mut query = vec![
            ("delimiter", "/".to_string()),
            ("list-type", "2".to_string()),
            ("prefix", prefix.to_string()),
        ];
        if let Some(t) = token {
            query.push(("continuation-token", t.to_string()));
        }
        if let Some(n) = max_keys {
            query.push(("max-keys", n.to_string()));
        }
        query.sort();
        let qs: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY)))
            .collect();
        let url = format!("{}?{}", self.bucket_url, qs.join("&"));
        let what = format!("listing s3://{}/{}", self.bucket, prefix);

        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send(&url, &what).await {
                Ok(body) => {
                    return parse_page(&body).map_err(|e| {
                        StoreError::new(
                            K::Remote { status: Some(200) },
                            format!("{what}: unreadable ListObjectsV2 answer"),
                        )
                        .with_source(e)
                        .into()
                    });
                }
                Err(Retry::Invalid(e)) => return Err(e),
                Err(Retry::No(e)) => return Err(e.into()),
                Err(Retry::Yes(e)) if attempt >= 3 => return Err(e.into()),
                Err(Retry::Yes(e)) => {
                    tracing::debug!(attempt, error = %e, "retrying LIST");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
            }
        }
    }

    async fn send(&self, url: &str, what: &str) -> Result<bytes::Bytes, Retry> {
        let mut req: HttpRequest = http::Request::builder()
            .method(http::Method::GET)
            .uri(url)
            .body(HttpRequestBody::empty())
            .map_err(|e| Retry::Invalid(FsError::InvalidArgument(format!("{what}: {e}"))))?;
        if let Some(provider) = &self.credentials {
            let cred = provider
                .get_credential()
                .await
                .map_err(|e| Retry::No(StoreError::new(K::Credentials, what).with_source(e)))?;
            AwsAuthorizer::new(&cred, "s3", &self.region)
                .try_authorize(&mut req, None)
                .map_err(|e| {
                    Retry::No(
                        StoreError::new(K::AccessDenied, format!("{what}: signing")).with_source(e),
                    )
                })?;
        }
        let resp = self
            .client
            .execute(req)
            .await
            .map_err(|e| Retry::Yes(StoreError::transport(e, what)))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .bytes()
            .await
            .map_err(|e| Retry::Yes(StoreError::transport(e, what)))?;
        if status.is_success() {
            return Ok(body);
        }
        let err: S3ErrorBody = quick_xml::de::from_reader(body.as_ref()).unwrap_or_default();
        let answer = ErrorResponse {
            status,
            code: err.code,
            message: err.message,
        };
        let code = status.as_u16();
        let kind = match code {
            401 | 403 => K::AccessDenied,
            _ => K::Remote { status: Some(code) },
        };
        let e = StoreError::new(kind, what).with_source(answer);
        Err(match code {
            429 | 500..=599 => Retry::Yes(e),
            _ => Retry::No(e),
        })
    }
}

enum Retry {
    /// Worth another attempt: no answer, throttling, a server error.
    Yes(StoreError),
    No(StoreError),
    /// The request itself cannot be built.
    Invalid(FsError),
}

/// One ListObjectsV2 answer body.
fn parse_page(body: &[u8]) -> Result<ListBucketResult, quick_xml::DeError> {
    quick_xml::de::from_reader(body)
}

/// Adds the names one page lists below `prefix` to `listing`: the continuation token when the
/// listing goes on.
fn add_page(listing: &mut Listing, page: ListBucketResult, prefix: &str) -> Option<String> {
    for p in page.common_prefixes {
        if let Some(name) = p.prefix.strip_prefix(prefix) {
            listing.dirs.push(name.trim_end_matches('/').to_string());
        }
    }
    for c in page.contents {
        let Some(name) = c.key.strip_prefix(prefix) else {
            continue;
        };
        if name.is_empty() {
            // The `dir/` marker object of the directory being listed.
            listing.marker = true;
            continue;
        }
        listing.files.push(ObjectInfo {
            name: name.to_string(),
            size: c.size,
            mtime: parse_time(&c.last_modified),
            etag: c.e_tag,
        });
    }
    match (page.is_truncated, page.next_continuation_token) {
        (true, Some(t)) if !t.is_empty() => Some(t),
        _ => None,
    }
}

/// The names one listing page gives, and its continuation token.
pub type Page = (Listing, Option<String>);
/// The (code, message) of an error answer.
pub type ErrorBody = (String, String);

/// A listing page's body as [`S3Lister::list`] reads it (`None`: unreadable); and the error
/// body of a failed request as `send` reads it.
pub(crate) fn read_bodies(body: &[u8], prefix: &str) -> (Option<Page>, ErrorBody) {
    let page = parse_page(body).ok().map(|page| {
        let mut listing = Listing::default();
        let token = add_page(&mut listing, page, prefix);
        (listing, token)
    });
    let err: S3ErrorBody = quick_xml::de::from_reader(body).unwrap_or_default();
    (page, (err.code, err.message))
}

fn parse_time(s: &str) -> SystemTime {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc).into())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_page_with_odd_keys() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix>d/</Prefix><KeyCount>3</KeyCount><IsTruncated>true</IsTruncated>
  <NextContinuationToken>tok en</NextContinuationToken>
  <Contents><Key>d/</Key><Size>0</Size><LastModified>2024-01-02T03:04:05.000Z</LastModified><ETag>"m"</ETag></Contents>
  <Contents><Key>d/a &amp; b+%.txt</Key><Size>12</Size><LastModified>2024-01-02T03:04:05.000Z</LastModified><ETag>"abc"</ETag></Contents>
  <CommonPrefixes><Prefix>d//</Prefix></CommonPrefixes>
  <CommonPrefixes><Prefix>d/sub/</Prefix></CommonPrefixes>
</ListBucketResult>"#;
        let page: ListBucketResult = quick_xml::de::from_str(xml).unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.next_continuation_token.as_deref(), Some("tok en"));
        assert_eq!(page.contents.len(), 2);
        assert_eq!(page.contents[1].key, "d/a & b+%.txt");
        assert_eq!(page.contents[1].e_tag.as_deref(), Some("\"abc\""));
        assert_eq!(page.common_prefixes[1].prefix, "d/sub/");
        assert!(parse_time(&page.contents[1].last_modified) > SystemTime::UNIX_EPOCH);
    }

    #[test]
    fn query_encoding_is_sigv4_strict() {
        let enc = utf8_percent_encode("a b+/ü~", QUERY).to_string();
        assert_eq!(enc, "a%20b%2B%2F%C3%BC~");
    }
}
