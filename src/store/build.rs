//! Builds the backend for a [`Source`]: object_store (S3 or local files) plus our S3 lister,
//! sharing one set of client options (timeouts, CA bundle, plain HTTP only when asked) and one
//! credential provider; a tree of sources gets one such stack per source under a
//! [`MultiBackend`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use object_store::aws::AmazonS3Builder;
use object_store::client::{HttpConnector, ReqwestConnector};
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, Certificate, ClientOptions, RetryConfig};

use super::Backend;
use super::multi::MultiBackend;
use super::object::{Lister, ObjectBackend, WriteSupport};
use super::s3_list::S3Lister;
use crate::config::{MountConfig, S3Settings, Source};

/// The default region when neither flag nor environment names one.
const DEFAULT_REGION: &str = "us-east-1";

pub fn build_backend(cfg: &MountConfig) -> Result<Arc<dyn Backend>> {
    build_source(
        &cfg.source,
        &cfg.s3,
        cfg.request_timeout,
        cfg.writes.is_some(),
    )
}

/// What a source's store may do when writing, if the mount writes.
fn write_support(writable: bool, s3: bool) -> WriteSupport {
    WriteSupport {
        enabled: writable,
        // S3 servers honour If-None-Match/If-Match on PUT (AWS since 2024, MinIO, R2); one
        // that ignores them overwrites, as a plain PUT would. Local folders have no ETags.
        preconditions: s3,
        metadata: s3,
    }
}

fn build_source(
    source: &Source,
    s3: &S3Settings,
    timeout: Duration,
    writable: bool,
) -> Result<Arc<dyn Backend>> {
    match source {
        Source::Tree(sources) => {
            let mut built = Vec::with_capacity(sources.len());
            for s in sources {
                if matches!(s.source, Source::Tree(_)) {
                    bail!("source {}: a tree cannot hold another tree", s.name);
                }
                let b = build_source(&s.source, &s.s3, timeout, writable)
                    .with_context(|| format!("source {}", s.name))?;
                built.push((s.name.clone(), b));
            }
            Ok(Arc::new(MultiBackend::new(built)))
        }
        Source::Local { root } => {
            if !root.is_dir() {
                bail!(
                    "source folder {} does not exist or is not a folder: check the file:// path",
                    root.display()
                );
            }
            let store = LocalFileSystem::new_with_prefix(root)
                .with_context(|| format!("cannot open source folder {}", root.display()))?;
            Ok(Arc::new(
                ObjectBackend::new(Arc::new(store), String::new(), Lister::Generic)
                    .with_writes(write_support(writable, false)),
            ))
        }
        Source::S3 { bucket, prefix } => Ok(Arc::new(
            build_s3(bucket, prefix, s3, timeout)?.with_writes(write_support(writable, true)),
        )),
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
    let credentials = crate::credentials::provider(s3, bucket, timeout)?;
    b = match &credentials {
        None => b.with_skip_signature(true),
        Some(c) => b.with_credentials(c.clone()),
    };
    let store = b
        .build()
        .with_context(|| format!("cannot configure S3 client for s3://{bucket} at {endpoint}"))?;
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
