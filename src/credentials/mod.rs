//! Where request signatures come from, in the order AWS tools use, and the object_store
//! credential provider for each: static keys, a named profile ([`aws_profile`]), NASA Earthdata
//! temporary keys ([`earthdata`]), or none (anonymous). Expiring keys go through
//! [`refresh::Refreshing`], which refreshes ahead of expiry without stalling requests. Static
//! keys may come from a file ([`keys_file`]).

pub mod aws_profile;
pub mod earthdata;
pub mod keys_file;
pub mod netrc;
pub mod refresh;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use object_store::StaticCredentialProvider;
use object_store::aws::{AwsCredential, AwsCredentialProvider};

use crate::config::{S3Settings, env_nonempty};

/// How one source's requests are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Unsigned requests (public buckets).
    Anonymous,
    /// Static keys in [`S3Settings`] (a credentials file, the config file or the environment).
    Keys,
    /// A named profile of `~/.aws/credentials` / `~/.aws/config`.
    Profile(String),
    /// NASA Earthdata temporary keys from this `s3credentials` URL.
    Earthdata(String),
}

/// Picks the access mode. Explicit choices come first (flags: `--no-sign-request`,
/// `--credentials-file`, `--profile`, `--earthdata-url`; a config file's `access`), then what a
/// dataset preset says, then the environment's keys, then `AWS_PROFILE`, then the `default`
/// profile if the profile files have one. `None`: nothing found (the build step says what to set).
pub fn resolve(explicit: Option<Access>, preset: Option<Access>) -> Option<Access> {
    explicit.or(preset).or_else(|| {
        if env_nonempty("AWS_ACCESS_KEY_ID").is_some()
            && env_nonempty("AWS_SECRET_ACCESS_KEY").is_some()
        {
            Some(Access::Keys)
        } else if let Some(p) = env_nonempty("AWS_PROFILE") {
            Some(Access::Profile(p))
        } else if aws_profile::default_profile_exists() {
            Some(Access::Profile("default".into()))
        } else {
            None
        }
    })
}

/// Records `access` in `s3`: keys from the environment when none were given, a profile's region
/// and endpoint where `s3` has none yet.
pub fn apply(access: Option<Access>, s3: &mut S3Settings) -> Result<()> {
    match access {
        Some(Access::Anonymous) => s3.no_sign_request = true,
        Some(Access::Keys) if s3.access_key_id.is_none() => {
            s3.access_key_id = env_nonempty("AWS_ACCESS_KEY_ID");
            s3.secret_access_key = env_nonempty("AWS_SECRET_ACCESS_KEY");
            s3.session_token = env_nonempty("AWS_SESSION_TOKEN");
        }
        None | Some(Access::Keys) => {}
        Some(Access::Profile(name)) => {
            let p = aws_profile::settings(&name)?;
            s3.region = s3.region.take().or(p.region);
            s3.endpoint_url = s3.endpoint_url.take().or(p.endpoint_url);
            s3.profile = Some(name);
        }
        Some(Access::Earthdata(url)) => s3.earthdata_url = Some(url),
    }
    Ok(())
}

/// The provider that signs requests for `s3`, or `None` for unsigned requests.
pub fn provider(
    s3: &S3Settings,
    bucket: &str,
    timeout: Duration,
) -> Result<Option<AwsCredentialProvider>> {
    if s3.no_sign_request {
        return Ok(None);
    }
    if let Some(url) = &s3.earthdata_url {
        let fetcher = earthdata::Earthdata::new(url, timeout)?;
        return Ok(Some(Arc::new(refresh::Refreshing::new(fetcher))));
    }
    if let Some(name) = &s3.profile {
        return Ok(Some(Arc::new(refresh::Refreshing::new(
            aws_profile::ProfileKeys::new(name),
        ))));
    }
    match (&s3.access_key_id, &s3.secret_access_key) {
        (Some(k), Some(sk)) => Ok(Some(Arc::new(StaticCredentialProvider::new(
            AwsCredential {
                key_id: k.clone(),
                secret_key: sk.clone(),
                token: s3.session_token.clone(),
            },
        )))),
        _ => bail!(
            "no credentials for s3://{bucket}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
             use --profile NAME (~/.aws/credentials), or pass --no-sign-request for a public bucket"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signing provider built from static keys shows neither the secret nor the session
    /// token (object_store's `AwsCredential` shows its key id).
    #[test]
    fn a_static_provider_hides_the_secret_and_token() {
        let s3 = S3Settings {
            access_key_id: Some("AKIDm2v".into()),
            secret_access_key: Some("skm2v".into()),
            session_token: Some("tkm2v".into()),
            ..Default::default()
        };
        let p = provider(&s3, "b", Duration::from_secs(5)).unwrap().unwrap();
        let shown = format!("{p:?} {p:#?}");
        assert!(shown.contains("AwsCredential"), "{shown}");
        for v in ["skm2v", "tkm2v"] {
            assert!(!shown.contains(v), "{shown}");
        }
    }
}
