//! CF time units (`<unit> since <date>`) in the calendars whose dates are proleptic Gregorian
//! (`standard`, `gregorian`, `proleptic_gregorian`; a missing calendar is `standard`), which
//! is how the views label and join time coordinates. Dates before 1582-10-15 are taken as
//! proleptic Gregorian, where CF's `standard` is Julian: such units are not used here.

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{Map, Value};

/// A time coordinate's units: seconds per unit and the reference date.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeUnits {
    pub seconds: f64,
    pub origin: NaiveDateTime,
}

/// The units of a variable with these attributes, when they are CF time units in a
/// Gregorian calendar.
pub fn units_of(attrs: &Map<String, Value>) -> Option<TimeUnits> {
    let units = attrs.get("units")?.as_str()?;
    let calendar = attrs
        .get("calendar")
        .and_then(Value::as_str)
        .unwrap_or("standard");
    if !matches!(calendar, "standard" | "gregorian" | "proleptic_gregorian") {
        return None;
    }
    let (unit, since) = units.split_once(" since ")?;
    let seconds = match unit.trim() {
        "days" | "day" | "d" => 86_400.0,
        "hours" | "hour" | "h" => 3_600.0,
        "minutes" | "minute" | "min" => 60.0,
        "seconds" | "second" | "s" => 1.0,
        _ => return None,
    };
    let since = since.trim().trim_end_matches('Z').trim_end_matches(" UTC");
    let origin = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(since, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(since, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)
    })?;
    let gregorian = NaiveDate::from_ymd_opt(1582, 10, 15)?.and_hms_opt(0, 0, 0)?;
    (calendar == "proleptic_gregorian" || origin >= gregorian)
        .then_some(TimeUnits { seconds, origin })
}

impl TimeUnits {
    /// The value in `to`'s units of `v` in these units.
    pub fn rebase(&self, v: f64, to: &TimeUnits) -> f64 {
        let offset = (self.origin - to.origin).num_milliseconds() as f64 / 1000.0;
        (v * self.seconds + offset) / to.seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(units: &str, calendar: Option<&str>) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("units".into(), json!(units));
        if let Some(c) = calendar {
            m.insert("calendar".into(), json!(c));
        }
        m
    }

    #[test]
    fn values_move_between_reference_dates_and_units() {
        let a = units_of(&attrs("days since 2001-01-01", None)).unwrap();
        let b = units_of(&attrs("hours since 2002-01-01 00:00:00", Some("gregorian"))).unwrap();
        // 2002-01-02 00:00 is 24 h after b's origin and 366 days after a's.
        assert_eq!(b.rebase(24.0, &a), 366.0);
        assert_eq!(a.rebase(366.0, &b), 24.0);
    }

    #[test]
    fn other_calendars_and_units_are_not_taken() {
        assert!(units_of(&attrs("days since 2001-01-01", Some("noleap"))).is_none());
        assert!(units_of(&attrs("months since 2001-01-01", None)).is_none());
        assert!(units_of(&attrs("days since 1500-01-01", None)).is_none());
        assert!(units_of(&attrs("days since 1500-01-01", Some("proleptic_gregorian"))).is_some());
        assert!(units_of(&attrs("K", None)).is_none());
    }
}
