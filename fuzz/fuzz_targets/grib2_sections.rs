//! GRIB2 section 0 hops over a whole object, then the section walk of each message's fields
//! and the heads the `grib` crate parses from sections 1-5.
//! Invariants: messages lie in the object, in order, without overlap; each field's sections
//! lie in its message (6 and 7 may reach past the head given, never past the message); a
//! `Need` asks for bytes past those given and within the message.
#![no_main]

use geomount::formats::grib2::{self, Step, Walked};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let size = data.len() as u64;
    let (steps, _) = grib2::walk(data);
    let mut at = 0;
    for s in steps {
        match s {
            Step::Grib2(r) => {
                assert!(r.start >= at && r.start < r.end && r.end <= size, "{r:?}");
                at = r.end;
                let msg = &data[r.start as usize..r.end as usize];
                check_message(msg);
                // A head cut short: at most the first 256 bytes.
                check_message(&msg[..msg.len().min(256)]);
            }
            Step::Other { range: r, .. } => {
                assert!(r.start >= at && r.start < r.end && r.end <= size, "{r:?}");
                at = r.end;
            }
            Step::End { trailing } => assert!(trailing.end == size && trailing.start >= at),
            Step::More(r) => panic!("walk returned More({r:?})"),
        }
    }
    // A lone section 0 probe from the start.
    let _ = grib2::step(
        &data[..data.len().min(grib2::PROBE_BYTES as usize)],
        0,
        size,
    );
});

/// `buf`: the first bytes of a message whose section 0 gives its length.
fn check_message(buf: &[u8]) {
    let Ok(len) = grib2::section0_len(buf) else {
        return;
    };
    let given = buf.len() as u64;
    match grib2::field_sections(buf, len) {
        Ok(Walked::Fields(fields)) => {
            for f in fields {
                let within = |r: &std::ops::Range<usize>| r.start <= r.end && r.end as u64 <= len;
                for s in [&f.s1, &f.s3, &f.s4, &f.s5] {
                    assert!(
                        within(s) && s.end as u64 <= given,
                        "section {s:?} of {given}"
                    );
                }
                assert!(within(&f.s6) && within(&f.s7), "{f:?} in {len}");
                if let Some(s2) = &f.s2 {
                    assert!(within(s2), "{s2:?}");
                }
            }
        }
        Ok(Walked::Need(r)) => {
            assert!(
                r.end > given && r.end <= len && r.start <= r.end,
                "need {r:?} of {len}"
            );
        }
        Err(_) => {}
    }
    let _ = grib2::parse_heads(buf, len);
}
