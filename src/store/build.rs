//! Builds the backend for a [`Source`]: object_store (S3 or local files) plus our S3 lister,
//! sharing one set of client options (timeouts, CA bundle, plain HTTP only when asked).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use object_store::aws::AmazonS3Builder;
use object_store::client::{HttpConnector, ReqwestConnector};
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, Certificate, ClientOptions, RetryConfig};

use super::object::{Lister, ObjectBackend};
use super::s3_list::S3Lister;
use crate::config::{MountConfig, S3Settings, Source};

/// The default region when neither flag nor environment names one.
const DEFAULT_REGION: &str = "us-east-1";

pub fn build_backend(cfg: &MountConfig) -> Result<ObjectBackend> {
    match &cfg.source {
        Source::Local { root } => {
            if !root.is_dir() {
                bail!(
                    "source folder {} does not exist or is not a folder: check the file:// path",
                    root.display()
                );
            }
            let store = LocalFileSystem::new_with_prefix(root)
                .with_context(|| format!("cannot open source folder {}", root.display()))?;
            Ok(ObjectBackend::new(
                Arc::new(store),
                String::new(),
                Lister::Generic,
            ))
        }
        Source::S3 { bucket, prefix } => build_s3(bucket, prefix, &cfg.s3, cfg.request_timeout),
    }
}

/// The endpoint URL requests go to, for messages (never contains credentials).
pub fn endpoint_display(s3: &S3Settings) -> String {
    match &s3.endpoint_url {
        Some(e) => e.clone(),
        None => format!(
            "https://s3.{}.amazonaws.com",
            s3.region.as_deref().unwrap_or(DEFAULT_REGION)
        ),
    }
}

fn client_options(s3: &S3Settings, timeout: Duration) -> Result<ClientOptions> {
    let endpoint = endpoint_display(s3);
    let plain_http = endpoint.starts_with("http://");
    let mut opts = ClientOptions::new()
        .with_allow_http(plain_http)
        .with_timeout(timeout)
        .with_connect_timeout(timeout.min(Duration::from_secs(3)))
        .with_pool_max_idle_per_host(64);
    // A CA bundle only matters for TLS; on plain http it is ignored rather than an error.
    if !plain_http && let Some(bundle) = &s3.ca_bundle {
        let pem = std::fs::read(bundle).with_context(|| {
            format!("cannot read CA bundle {} (AWS_CA_BUNDLE)", bundle.display())
        })?;
        for cert in Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("CA bundle {} is not PEM (AWS_CA_BUNDLE)", bundle.display()))?
        {
            opts = opts.with_root_certificate(cert);
        }
    }
    Ok(opts)
}

fn build_s3(
    bucket: &str,
    prefix: &str,
    s3: &S3Settings,
    timeout: Duration,
) -> Result<ObjectBackend> {
    let region = s3
        .region
        .clone()
        .unwrap_or_else(|| DEFAULT_REGION.to_string());
    let opts = client_options(s3, timeout)?;
    // Custom endpoints get path-style addressing (as botocore does); AWS gets virtual-hosted
    // unless --force-path-style.
    let path_style = s3.force_path_style || s3.endpoint_url.is_some();
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(&region)
        .with_virtual_hosted_style_request(!path_style)
        .with_client_options(opts.clone())
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: timeout,
        });
    let endpoint = endpoint_display(s3);
    if let Some(e) = &s3.endpoint_url {
        b = b.with_endpoint(e);
    }
    if s3.no_sign_request {
        b = b.with_skip_signature(true);
    } else {
        match (&s3.access_key_id, &s3.secret_access_key) {
            (Some(k), Some(sk)) => {
                b = b.with_access_key_id(k).with_secret_access_key(sk);
                if let Some(t) = &s3.session_token {
                    b = b.with_token(t);
                }
            }
            _ => bail!(
                "no credentials for s3://{bucket}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                 or pass --no-sign-request for a public bucket"
            ),
        }
    }
    let store = b
        .build()
        .with_context(|| format!("cannot configure S3 client for s3://{bucket} at {endpoint}"))?;
    let credentials = (!s3.no_sign_request).then(|| store.credentials().clone());
    let endpoint = endpoint.trim_end_matches('/');
    let bucket_url = if path_style {
        format!("{endpoint}/{bucket}")
    } else {
        format!("https://{bucket}.s3.{region}.amazonaws.com")
    };
    let client = ReqwestConnector::default()
        .connect(&opts)
        .with_context(|| format!("cannot build HTTP client for {endpoint}"))?;
    let lister = S3Lister {
        client,
        bucket_url,
        bucket: bucket.to_string(),
        region,
        credentials,
    };
    Ok(ObjectBackend::new(
        Arc::new(store),
        prefix.to_string(),
        Lister::S3(lister),
    ))
}
