//! mount(8) option strings (`-o ro,allow_other,endpoint-url=...`) translated to flags.
//! Invariants: the translation is a function of the text; each flag is a `--` flag or the value
//! after one, and no value is empty.
#![no_main]

use geomount::mount_helper::translate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(opts) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(t) = translate(opts) else {
        return;
    };
    assert!(
        t.flags.first().is_none_or(|f| f.starts_with("--")),
        "{:?}",
        t.flags
    );
    assert!(t.flags.iter().all(|f| !f.is_empty()), "{:?}", t.flags);
    assert_eq!(translate(opts).ok(), Some(t));
});
