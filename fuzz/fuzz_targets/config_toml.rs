//! `geomount.toml` config files: TOML, then our checks of modes, sizes, durations and sources.
//! Invariants: an error's message names a line within the text when it names one.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = geomount::config_file::parse(text) {
        let lines = text.lines().count().max(1);
        let msg = format!("{e:#}");
        if let Some(n) = msg
            .strip_prefix("line ")
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<usize>().ok())
        {
            assert!(n >= 1 && n <= lines + 1, "line {n} of {lines}: {msg}");
        }
    }
});
