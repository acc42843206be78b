//! netrc files (`machine`, `login`, `password`, `default`, `macdef`), looked up for a host.
//! Input: a host line, then the file.
//! Invariants: a login found is also found again for the same text (lookups are pure).
#![no_main]

use geomount::credentials::netrc;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (host, file) = text
        .split_once('\n')
        .unwrap_or(("urs.earthdata.nasa.gov", text));
    let pair = |l: netrc::Login| (l.login, l.password);
    let found = netrc::parse(file, host).map(pair);
    assert_eq!(found, netrc::parse(file, host).map(pair));
});
