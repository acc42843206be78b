//! Counters for requests, bytes and cache outcomes. Cheap atomics, readable while mounted through
//! the hidden `/.geomount-stats` file (JSON) and logged at unmount.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Metrics {
    pub list_requests: AtomicU64,
    pub head_requests: AtomicU64,
    pub get_requests: AtomicU64,
    pub request_errors: AtomicU64,
    pub bytes_fetched: AtomicU64,
    pub block_hits: AtomicU64,
    pub block_misses: AtomicU64,
    pub prefetch_requests: AtomicU64,
    pub prefetch_skipped: AtomicU64,
    pub fuse_reads: AtomicU64,
    pub bytes_read: AtomicU64,
    pub lookups: AtomicU64,
    pub negative_hits: AtomicU64,
    pub listing_hits: AtomicU64,
    pub disk_hits: AtomicU64,
    pub disk_misses: AtomicU64,
    pub disk_writes: AtomicU64,
    pub disk_corrupt: AtomicU64,
    pub disk_evictions: AtomicU64,
    pub uploads: AtomicU64,
    pub bytes_uploaded: AtomicU64,
    pub upload_errors: AtomicU64,
    pub upload_conflicts: AtomicU64,
    pub delete_requests: AtomicU64,
}

macro_rules! snapshot_fields {
    ($self:ident, $($f:ident),*) => {
        serde_json::json!({ $(stringify!($f): $self.$f.load(Relaxed)),* })
    };
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> serde_json::Value {
        snapshot_fields!(
            self,
            list_requests,
            head_requests,
            get_requests,
            request_errors,
            bytes_fetched,
            block_hits,
            block_misses,
            prefetch_requests,
            prefetch_skipped,
            fuse_reads,
            bytes_read,
            lookups,
            negative_hits,
            listing_hits,
            disk_hits,
            disk_misses,
            disk_writes,
            disk_corrupt,
            disk_evictions,
            uploads,
            bytes_uploaded,
            upload_errors,
            upload_conflicts,
            delete_requests
        )
    }

    /// Pretty JSON with a trailing newline, as served by the stats file.
    pub fn render(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(&self.snapshot()).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reports_counts() {
        let m = Metrics::default();
        Metrics::inc(&m.get_requests);
        Metrics::add(&m.bytes_fetched, 10);
        let s = m.snapshot();
        assert_eq!(s["get_requests"], 1);
        assert_eq!(s["bytes_fetched"], 10);
        assert!(String::from_utf8(m.render()).unwrap().ends_with("}\n"));
    }
}
