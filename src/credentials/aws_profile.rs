//! Named AWS profiles from `~/.aws/credentials` and `~/.aws/config` (or `AWS_SHARED_CREDENTIALS_FILE`
//! / `AWS_CONFIG_FILE`), read with `aws-config`'s profile parser, so the file rules (`[profile x]`
//! sections, merging of the two files, `AWS_PROFILE`) are the AWS SDK's own and not a
//! re-implementation; `credential_process` runs through `aws-config`'s own provider. Keys come
//! from `aws_access_key_id` / `aws_secret_access_key` / `aws_session_token` or `credential_process`.
//! Roles (`role_arn`) and SSO need the SDK's STS/SSO HTTP clients, which geomount does not build:
//! such profiles are refused with a message. The keys go through
//! [`super::refresh::Refreshing`] for object_store.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use async_trait::async_trait;
use aws_config::credential_process::CredentialProcessProvider;
use aws_config::profile::Profile;
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
    settings_with(name, env, &Fs::real())
}

/// Profile `name`'s settings, the files read through `fs`.
fn settings_with(name: &str, env: &Env, fs: &Fs) -> Result<ProfileSettings> {
    with_profile_in(name, env, fs, |p| {
        let get = |k: &str| p.get(k).map(str::to_string).filter(|v| !v.is_empty());
        Ok(ProfileSettings {
            region: get("region"),
            endpoint_url: get("endpoint_url"),
        })
    })
}

/// Runs `f` on profile `name` of the files `env` points at.
fn with_profile<T>(name: &str, env: &Env, f: impl FnOnce(&Profile) -> Result<T>) -> Result<T> {
    with_profile_in(name, env, &Fs::real(), f)
}

/// Runs `f` on profile `name` of the files `env` points at, read through `fs`.
fn with_profile_in<T>(
    name: &str,
    env: &Env,
    fs: &Fs,
    f: impl FnOnce(&Profile) -> Result<T>,
) -> Result<T> {
    let (cred_file, config_file) = files_searched(env);
    let set = futures::executor::block_on(aws_config::profile::load(
        fs,
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
    f(p)
}

/// Profile `name` of a credentials file and a config file of the given texts: its settings and
/// whether its keys resolve (static keys or a `credential_process`; nothing is run).
pub(crate) fn profile_from_texts(
    name: &str,
    credentials: &str,
    config: &str,
) -> (Result<ProfileSettings>, Result<()>) {
    let env = Env::from_slice(&[
        ("AWS_SHARED_CREDENTIALS_FILE", "/credentials"),
        ("AWS_CONFIG_FILE", "/config"),
    ]);
    let fs = Fs::from_slice(&[("/credentials", credentials), ("/config", config)]);
    let settings = settings_with(name, &env, &fs);
    let keys = with_profile_in(name, &env, &fs, |p| key_source(name, p).map(drop));
    (settings, keys)
}

/// Where a profile's keys come from.
enum KeySource {
    Static(AwsCredential),
    Process(String),
}

fn key_source(name: &str, p: &Profile) -> Result<KeySource> {
    let get = |k: &str| p.get(k).map(str::to_string).filter(|v| !v.is_empty());
    if let Some(cmd) = get("credential_process") {
        return Ok(KeySource::Process(cmd));
    }
    if let (Some(key_id), Some(secret_key)) =
        (get("aws_access_key_id"), get("aws_secret_access_key"))
    {
        return Ok(KeySource::Static(AwsCredential {
            key_id,
            secret_key,
            token: get("aws_session_token"),
        }));
    }
    if get("role_arn").is_some() || get("sso_session").is_some() || get("sso_start_url").is_some() {
        bail!(
            "AWS profile '{name}' uses a role or SSO, which geomount does not support: give it keys or a credential_process (e.g. `aws configure export-credentials --profile {name} --format process`)"
        );
    }
    bail!(
        "AWS profile '{name}' has no keys: set aws_access_key_id and aws_secret_access_key, or credential_process"
    )
}

/// The keys of a profile: static keys with an optional session token, or `credential_process`
/// output (which may expire, and is then run again ahead of expiry).
#[derive(Debug)]
pub struct ProfileKeys {
    name: String,
}

impl ProfileKeys {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
        }
    }
}

#[async_trait]
impl Fetch for ProfileKeys {
    async fn fetch(&self) -> Result<Fetched> {
        let source = with_profile(&self.name, &Env::real(), |p| key_source(&self.name, p))?;
        match source {
            KeySource::Static(credential) => Ok(Fetched {
                credential,
                expires: None,
            }),
            KeySource::Process(cmd) => {
                let c = CredentialProcessProvider::new(cmd)
                    .provide_credentials()
                    .await
                    .with_context(|| {
                        format!("credential_process of AWS profile '{}' failed", self.name)
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

    #[test]
    fn keys_come_from_static_keys_or_credential_process_and_roles_are_refused() {
        let home = tempfile::tempdir().unwrap();
        let aws = home.path().join(".aws");
        std::fs::create_dir(&aws).unwrap();
        std::fs::write(
            aws.join("credentials"),
            "[s]\naws_access_key_id = AK\naws_secret_access_key = SK\naws_session_token = TOK\n",
        )
        .unwrap();
        std::fs::write(
            aws.join("config"),
            "[profile p]\ncredential_process = /bin/creds --x\n[profile r]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = s\n[profile e]\nregion = x\n",
        )
        .unwrap();
        let env = Env::from_slice(&[("HOME", home.path().to_str().unwrap())]);
        let ks = |n: &str| with_profile(n, &env, |p| key_source(n, p));
        match ks("s").unwrap() {
            KeySource::Static(c) => {
                assert_eq!((c.key_id.as_str(), c.token.as_deref()), ("AK", Some("TOK")))
            }
            KeySource::Process(_) => panic!("static expected"),
        }
        assert!(matches!(ks("p").unwrap(), KeySource::Process(c) if c == "/bin/creds --x"));
        let msg = ks("r").err().unwrap().to_string();
        assert!(msg.contains("role or SSO"), "{msg}");
        let msg = ks("e").err().unwrap().to_string();
        assert!(msg.contains("has no keys"), "{msg}");
    }
}
