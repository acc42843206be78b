//! AWS shared credentials and config files, through aws-config's profile parser and our
//! reading of a profile's settings and keys.
//! Input: a profile name line, the credentials file, a 0 byte, the config file.
//! Invariants: settings found are never empty strings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (name, files) = text.split_once('\n').unwrap_or(("default", text));
    let (credentials, config) = files.split_once('\0').unwrap_or((files, ""));
    let (settings, _keys) = geomount::fuzzing::aws_profile(name, credentials, config);
    if let Ok(s) = settings {
        assert!(s.region.is_none_or(|r| !r.is_empty()));
        assert!(s.endpoint_url.is_none_or(|e| !e.is_empty()));
    }
});
