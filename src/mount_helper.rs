//! `mount.fuse.geomount`: the helper mount(8) runs for `mount -t fuse.geomount SOURCE DIR -o OPTS`
//! and for fstab lines of type `fuse.geomount`. The same binary, found through a symlink and
//! recognised by its name (`cli::main`, which hands [`main`] the command line runner). mount(8)
//! calls it as `mount.fuse.geomount SOURCE DIR [-s] [-f] [-n] [-v] [-o OPTS]`; [`translate`]
//! turns `OPTS` into `geomount mount` flags, and the mount then runs in the background as usual:
//! this process returns (and so does mount(8)) once the mount answers, or fails with the reason.
//!
//! mount(8) strips `x-*`, `noauto`, `comment=` and `defaults` itself and always passes `rw`
//! unless `ro` is given; options it or systemd own are accepted and dropped here.

use std::ffi::OsString;

use anyhow::{Result, bail};

use crate::config::{parse_duration, parse_mode, parse_size};

/// mount(8)'s exit status for bad usage or options.
const EXIT_USAGE: i32 = 1;
/// mount(8)'s exit status for a mount that failed.
const EXIT_MOUNT_FAILED: i32 = 32;

/// Options that belong to mount(8), systemd or the kernel flags geomount always sets (`ro`,
/// `nodev`, `nosuid`; `exec` is the default). Atime options mean nothing on a read-only mount.
const DROPPED: &[&str] = &[
    "_netdev",
    "nofail",
    "noauto",
    "auto",
    "defaults",
    "ro",
    "user",
    "users",
    "nouser",
    "owner",
    "group",
    "nodev",
    "nosuid",
    "exec",
    "atime",
    "noatime",
    "relatime",
    "strictatime",
    "nodiratime",
    "diratime",
];

/// `-o` flags without a value, and the `geomount mount` flag each becomes.
const SWITCHES: &[(&str, &str)] = &[
    ("allow_other", "--allow-other"),
    ("force_path_style", "--force-path-style"),
    ("no_sign_request", "--no-sign-request"),
    ("noexec", "--noexec"),
    ("no_convert", "--no-convert"),
    ("read_write", "--read-write"),
    ("no_delete", "--no-delete"),
];

/// `-o` options with a value (`name=value`), and the `geomount mount` flag each becomes.
const VALUED: &[(&str, &str)] = &[
    ("uid", "--uid"),
    ("gid", "--gid"),
    ("file_mode", "--file-mode"),
    ("dir_mode", "--dir-mode"),
    ("endpoint_url", "--endpoint-url"),
    ("region", "--region"),
    ("metadata_ttl", "--metadata-ttl"),
    ("cache_memory", "--cache-memory"),
    ("cache_dir", "--cache-dir"),
    ("cache_disk", "--cache-disk"),
    ("request_timeout", "--request-timeout"),
    ("threads", "--threads"),
    ("log_file", "--log-file"),
    ("credentials_file", "--credentials-file"),
    ("profile", "--profile"),
    ("earthdata_url", "--earthdata-url"),
    ("write_back", "--write-back"),
    ("staging_dir", "--staging-dir"),
    ("staging_max", "--staging-max"),
];

/// The flags for `geomount mount` from a mount(8) option string, plus warnings to print.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Translated {
    /// `geomount mount` flags in option order; a repeated option appears once, with its last value.
    pub flags: Vec<String>,
    pub warnings: Vec<String>,
}

/// Translates mount(8) options (`ro,allow_other,endpoint-url=https://x,...`) into `geomount mount`
/// flags. Names may use `_` or `-`. Unknown options are an error naming the option.
pub fn translate(opts: &str) -> Result<Translated> {
    let mut out = Translated::default();
    // (flag, value): one entry per flag, where it first appeared; a repeat replaces the value.
    let mut chosen: Vec<(&'static str, Option<String>)> = Vec::new();
    let mut choose = |flag: &'static str, value: Option<String>| match chosen
        .iter_mut()
        .find(|(f, _)| *f == flag)
    {
        Some(entry) => entry.1 = value,
        None => chosen.push((flag, value)),
    };
    for opt in opts.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let (raw_name, value) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (opt, None),
        };
        let name = raw_name.replace('-', "_");
        let name = name.as_str();
        if DROPPED.contains(&name) || name.starts_with("x_") || name == "comment" {
            // `x-systemd.*`, `x-gvfs-*`, ...: arrive here only if mount(8) passed them on.
            continue;
        }
        if name == "rw" {
            out.warnings.push(
                "mounting read-only: mount(8) adds `rw` unless the options say `ro`, so a writable mount is asked for with `read_write`"
                    .into(),
            );
            continue;
        }
        if let Some((_, flag)) = SWITCHES.iter().find(|(n, _)| *n == name) {
            if value.is_some() {
                bail!("mount option '{opt}' takes no value: write just '{raw_name}'");
            }
            choose(flag, None);
            continue;
        }
        let Some((_, flag)) = VALUED.iter().find(|(n, _)| *n == name) else {
            bail!(
                "unknown mount option '{raw_name}': see `man geomount` (section MOUNT HELPER) for the options geomount accepts"
            );
        };
        let value = match value {
            Some(v) if !v.is_empty() => v,
            _ => bail!("mount option '{raw_name}' needs a value: write '{raw_name}=VALUE'"),
        };
        check_value(name, value).map_err(|e| anyhow::anyhow!("mount option '{opt}': {e:#}"))?;
        choose(flag, Some(value.to_string()));
    }
    for (flag, value) in chosen {
        out.flags.push(flag.to_string());
        out.flags.extend(value);
    }
    Ok(out)
}

/// Checks a value early, so a bad fstab line fails naming the option as written there.
fn check_value(name: &str, value: &str) -> Result<()> {
    match name {
        "uid" | "gid" => {
            value
                .parse::<u32>()
                .map_err(|_| anyhow::anyhow!("'{value}' is not a numeric id"))?;
        }
        "threads" => {
            value
                .parse::<usize>()
                .map_err(|_| anyhow::anyhow!("'{value}' is not a number"))?;
        }
        "file_mode" | "dir_mode" => {
            parse_mode(value)?;
        }
        "metadata_ttl" | "request_timeout" => {
            parse_duration(value)?;
        }
        "cache_memory" | "cache_disk" => {
            parse_size(value)?;
        }
        "log_file" | "credentials_file" | "cache_dir" if !value.starts_with('/') => {
            bail!("'{value}' must be an absolute path")
        }
        _ => {}
    }
    Ok(())
}

/// What mount(8) asked for.
#[derive(Debug, PartialEq, Eq)]
struct Invocation {
    source: String,
    mountpoint: String,
    opts: String,
    fake: bool,
    verbose: bool,
}

fn parse_invocation(args: &[String]) -> Result<Invocation> {
    let mut positional = Vec::new();
    let mut opts: Vec<&str> = Vec::new();
    let (mut fake, mut verbose) = (false, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" => match it.next() {
                Some(o) => opts.push(o),
                None => bail!("-o needs an option list"),
            },
            "-t" => match it.next().map(String::as_str) {
                Some("fuse.geomount" | "geomount") => {}
                Some(t) => bail!("filesystem type '{t}' is not fuse.geomount"),
                None => bail!("-t needs a filesystem type"),
            },
            "-N" => bail!("mounting in another namespace (-N) is not supported"),
            "-f" => fake = true,
            "-v" => verbose = true,
            // sloppy, no-mtab: nothing to do (there is no mtab file to skip).
            "-s" | "-n" => {}
            s if s.starts_with("-o") && s.len() > 2 => opts.push(&s[2..]),
            s if s.starts_with('-') && s.len() > 1 => bail!("unknown argument '{s}'"),
            _ => positional.push(a.clone()),
        }
    }
    let [source, mountpoint] = <[String; 2]>::try_from(positional).map_err(|p| {
        anyhow::anyhow!(
            "expected SOURCE and MOUNTPOINT, got {} argument(s): usage: mount.fuse.geomount SOURCE MOUNTPOINT [-o OPTIONS]",
            p.len()
        )
    })?;
    Ok(Invocation {
        source,
        mountpoint,
        opts: opts.join(","),
        fake,
        verbose,
    })
}

/// Runs as `mount.fuse.geomount` and returns the exit status mount(8) expects. `run` runs a
/// `geomount` command line (`argv[0]` first) and returns its exit status.
pub fn main(args: Vec<OsString>, run: impl FnOnce(Vec<String>) -> i32) -> i32 {
    let args: Vec<String> = match args.into_iter().map(OsString::into_string).collect() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("mount.fuse.geomount: arguments must be valid UTF-8");
            return EXIT_USAGE;
        }
    };
    let (inv, tr) = match parse_invocation(&args).and_then(|inv| {
        let tr = translate(&inv.opts)?;
        Ok((inv, tr))
    }) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("mount.fuse.geomount: {e:#}");
            return EXIT_USAGE;
        }
    };
    for w in &tr.warnings {
        eprintln!("mount.fuse.geomount: {w}");
    }
    // Flags carry no secrets (credentials come from the environment or a file), so they can be shown.
    if inv.verbose || inv.fake {
        eprintln!(
            "mount.fuse.geomount: geomount mount {} {} {}",
            inv.source,
            inv.mountpoint,
            tr.flags.join(" ")
        );
    }
    if inv.fake {
        return 0;
    }
    let argv = ["geomount", "mount", &inv.source, &inv.mountpoint]
        .into_iter()
        .map(str::to_string)
        .chain(tr.flags)
        .collect();
    match run(argv) {
        0 => 0,
        _ => EXIT_MOUNT_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(opts: &str) -> Vec<String> {
        translate(opts).unwrap().flags
    }

    fn err(opts: &str) -> String {
        format!("{:#}", translate(opts).unwrap_err())
    }

    #[test]
    fn mount_and_systemd_options_are_dropped() {
        let t = translate(
            "ro,_netdev,nofail,noauto,auto,defaults,user,users,nodev,nosuid,exec,noatime,relatime,\
             x-systemd.automount,x-systemd.idle-timeout=60,x-systemd.requires=network-online.target,\
             comment=dataset",
        )
        .unwrap();
        assert_eq!(t, Translated::default());
    }

    #[test]
    fn geomount_options_become_flags() {
        assert_eq!(
            flags(
                "ro,allow_other,uid=1000,gid=100,file_mode=0440,dir_mode=0550,\
                 endpoint_url=https://usgs.osn.mghpcc.org,region=us-west-2,force_path_style,\
                 no_sign_request,metadata_ttl=5m,cache_memory=2GiB,request_timeout=30s,threads=8,\
                 log_file=/var/log/gm.log,credentials_file=/etc/geomount/a.cred,noexec"
            ),
            [
                "--allow-other",
                "--uid",
                "1000",
                "--gid",
                "100",
                "--file-mode",
                "0440",
                "--dir-mode",
                "0550",
                "--endpoint-url",
                "https://usgs.osn.mghpcc.org",
                "--region",
                "us-west-2",
                "--force-path-style",
                "--no-sign-request",
                "--metadata-ttl",
                "5m",
                "--cache-memory",
                "2GiB",
                "--request-timeout",
                "30s",
                "--threads",
                "8",
                "--log-file",
                "/var/log/gm.log",
                "--credentials-file",
                "/etc/geomount/a.cred",
                "--noexec",
            ]
        );
    }

    #[test]
    fn dashed_and_underscored_names_are_the_same_option() {
        assert_eq!(
            flags("allow-other,endpoint-url=http://127.0.0.1:9000,no-sign-request"),
            flags("allow_other,endpoint_url=http://127.0.0.1:9000,no_sign_request")
        );
    }

    #[test]
    fn a_repeated_option_keeps_its_last_value_once() {
        assert_eq!(
            flags("uid=1,allow_other,uid=2,allow_other"),
            ["--uid", "2", "--allow-other"]
        );
    }

    #[test]
    fn values_keep_equals_signs_and_empty_items_are_skipped() {
        assert_eq!(
            flags(",endpoint_url=https://h/p?a=b,,"),
            ["--endpoint-url", "https://h/p?a=b"]
        );
    }

    #[test]
    fn rw_mounts_read_only_with_a_warning() {
        let t = translate("rw,allow_other").unwrap();
        assert_eq!(t.flags, ["--allow-other"]);
        assert_eq!(t.warnings.len(), 1);
        assert!(t.warnings[0].contains("read-only"), "{:?}", t.warnings);
    }

    #[test]
    fn unknown_options_are_errors_naming_the_option() {
        let e = err("ro,sync");
        assert!(e.contains("unknown mount option 'sync'"), "{e}");
        let e = err("allow_other,fsname=foo");
        assert!(e.contains("'fsname'"), "{e}");
    }

    #[test]
    fn bad_values_are_errors_naming_the_option() {
        assert!(err("uid=alice").contains("uid=alice"));
        assert!(err("file_mode=999").contains("file_mode=999"));
        assert!(err("metadata_ttl=soon").contains("metadata_ttl=soon"));
        assert!(err("cache_memory=lots").contains("cache_memory=lots"));
        assert!(err("threads=-1").contains("threads=-1"));
        assert!(err("log_file=relative.log").contains("absolute path"));
        assert!(err("credentials_file=x.env").contains("absolute path"));
        assert!(err("uid").contains("needs a value"));
        assert!(err("endpoint_url=").contains("needs a value"));
        assert!(err("allow_other=1").contains("takes no value"));
    }

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn invocations_from_mount_8_are_understood() {
        let inv = parse_invocation(&strings(&[
            "s3://b/p", "/mnt/x", "-v", "-o", "ro,uid=1", "-n", "-s",
        ]))
        .unwrap();
        assert_eq!(
            inv,
            Invocation {
                source: "s3://b/p".into(),
                mountpoint: "/mnt/x".into(),
                opts: "ro,uid=1".into(),
                fake: false,
                verbose: true,
            }
        );
        let inv = parse_invocation(&strings(&[
            "s3://b",
            "/mnt/x",
            "-f",
            "-t",
            "fuse.geomount",
            "-oro",
            "-o",
            "allow_other",
        ]))
        .unwrap();
        assert!(inv.fake);
        assert_eq!(inv.opts, "ro,allow_other");
        assert!(parse_invocation(&strings(&["s3://b"])).is_err());
        assert!(parse_invocation(&strings(&["s3://b", "/m", "/extra"])).is_err());
        assert!(parse_invocation(&strings(&["s3://b", "/m", "-t", "fuse.sshfs"])).is_err());
        assert!(parse_invocation(&strings(&["s3://b", "/m", "-o"])).is_err());
        assert!(parse_invocation(&strings(&["s3://b", "/m", "-N", "1"])).is_err());
    }
}
