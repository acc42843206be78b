//! Named AWS profiles from `~/.aws/credentials` and `~/.aws/config` (or `AWS_SHARED_CREDENTIALS_FILE`
//! / `AWS_CONFIG_FILE`), read with `aws-config`'s profile parser and credentials provider, so the
//! profile rules (`[profile x]` sections, `source_profile`, session tokens, `credential_process`)
//! are the AWS SDK's own and not a re-implementation. The provider is wrapped in
//! [`super::refresh::Refreshing`] for object_store.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use async_trait::async_trait;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_credential_types::provider::ProvideCredentials;
use aws_runtime::env_config::file::EnvConfigFiles as ProfileFiles;
use aws_types::os_shim_internal::{Env, Fs};
use object_store::aws::AwsCredential;

use super::refresh::{Fetch, Fetched};

/// What a profile says about where requests go (credentials come from [`ProfileKeys`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProfileSettings {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// The two files searched (credentials, config), for messages.
pub fn files_searched(env: &Env) -> (PathBuf, PathBuf) {
    let home = PathBuf::from(env.get("HOME").unwrap_or_default());
    let pick = |var: &str, default: &str| {
        env.get(var)
            .ok()
            .filter(|v| !v.is_empty())
            .map_or_else(|| home.join(default), PathBuf::from)
    };
    (
        pick("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
        pick("AWS_CONFIG_FILE", ".aws/config"),
    )
}

/// Whether a `default` profile exists in the profile files.
pub fn default_profile_exists() -> bool {
    let (c, f) = files_searched(&Env::real());
    (c.exists() || f.exists()) && settings("default").is_ok()
}

/// Loads profile `name` from the real files.
pub fn settings(name: &str) -> Result<ProfileSettings> {
    settings_in(name, &Env::real())
}

/// Loads profile `name` with the files `env` points at; an error names both files when the
/// profile is in neither.
fn settings_in(name: &str, env: &Env) -> Result<ProfileSettings> {
    let (cred_file, config_file) = files_searched(env);
    let set = futures::executor::block_on(aws_config::profile::load(
        &Fs::real(),
        env,
        &ProfileFiles::default(),
        None,
    ))
    .map_err(|e| anyhow!("cannot read AWS profiles: {e}"))?;
    let Some(p) = set.get_profile(name) else {
        let known: Vec<&str> = set.profiles().collect();
        bail!(
            "AWS profile '{name}' not found in {} or {}{}: add it there, or pick another with --profile / AWS_PROFILE",
            cred_file.display(),
            config_file.display(),
            if known.is_empty() {
                String::new()
            } else {
                format!(" (profiles there: {})", known.join(", "))
            }
        );
    };
    let get = |k: &str| p.get(k).map(str::to_string).filter(|v| !v.is_empty());
    Ok(ProfileSettings {
        region: get("region"),
        endpoint_url: get("endpoint_url"),
    })
}

/// The keys of a profile: static keys, session tokens or `credential_process` output.
#[derive(Debug)]
pub struct ProfileKeys {
    name: String,
    provider: ProfileFileCredentialsProvider,
}

impl ProfileKeys {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            provider: ProfileFileCredentialsProvider::builder()
                .profile_name(name)
                .build(),
        }
    }
}

#[async_trait]
impl Fetch for ProfileKeys {
    async fn fetch(&self) -> Result<Fetched> {
        let c =
            self.provider.provide_credentials().await.with_context(|| {
                format!("cannot get credentials from AWS profile '{}'", self.name)
            })?;
        Ok(Fetched {
            credential: AwsCredential {
                key_id: c.access_key_id().to_string(),
                secret_key: c.secret_access_key().to_string(),
                token: c.session_token().map(str::to_string),
            },
            expires: c.expiry(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_region_and_endpoint_come_from_the_config_file() {
        let home = tempfile::tempdir().unwrap();
        let aws = home.path().join(".aws");
        std::fs::create_dir(&aws).unwrap();
        std::fs::write(
            aws.join("credentials"),
            "[lab]\naws_access_key_id = AKID\naws_secret_access_key = SK\n",
        )
        .unwrap();
        std::fs::write(
            aws.join("config"),
            "[profile lab]\nregion = garage\nendpoint_url = http://127.0.0.1:3900\n[default]\nregion = x\n",
        )
        .unwrap();
        let env = Env::from_slice(&[("HOME", home.path().to_str().unwrap())]);
        let s = settings_in("lab", &env).unwrap();
        assert_eq!(s.region.as_deref(), Some("garage"));
        assert_eq!(s.endpoint_url.as_deref(), Some("http://127.0.0.1:3900"));
        let msg = settings_in("nope", &env).unwrap_err().to_string();
        assert!(
            msg.contains(&format!("{}", aws.join("credentials").display()))
                && msg.contains(&format!("{}", aws.join("config").display()))
                && msg.contains("lab"),
            "{msg}"
        );
    }
}
