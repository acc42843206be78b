use std::io::Write;
use std::time::Duration;

use clap::Parser;
use geomount_labproxy::{bind, Config, Proxy};
use tokio::signal::unix::{signal, SignalKind};

/// Loopback S3 reverse proxy: latency, bandwidth cap, faults and request counts.
#[derive(Parser)]
#[command(name = "geomount-labproxy")]
struct Args {
    /// Address to listen on (port 0 = any free port; the bound address is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// S3 server to forward to, http://host:port.
    #[arg(long)]
    upstream: String,
    /// Delay before each response head, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Bandwidth cap shared by all responses, megabits per second (0 = none).
    #[arg(long, default_value_t = 0.0)]
    bandwidth_mbps: f64,
    /// Share of requests answered 503 SlowDown without contacting the upstream.
    #[arg(long, default_value_t = 0.0)]
    fail_503: f64,
    /// Share of requests answered 500 InternalError without contacting the upstream.
    #[arg(long, default_value_t = 0.0)]
    fail_500: f64,
    /// Share of responses whose body is cut off half-way (connection closed).
    #[arg(long, default_value_t = 0.0)]
    reset_mid_body: f64,
    /// Extra sleep before responding, for a share --stall-ratio of requests.
    #[arg(long, default_value_t = 0)]
    stall_ms: u64,
    #[arg(long, default_value_t = 0.0)]
    stall_ratio: f64,
    /// Seed of the fault draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the counts (JSON) here on SIGUSR1 and at exit.
    #[arg(long)]
    stats_file: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let a = Args::parse();
    for (name, p) in [
        ("--fail-503", a.fail_503),
        ("--fail-500", a.fail_500),
        ("--reset-mid-body", a.reset_mid_body),
        ("--stall-ratio", a.stall_ratio),
    ] {
        if !(0.0..=1.0).contains(&p) {
            return Err(format!("{name} must be between 0 and 1").into());
        }
    }
    let proxy = Proxy::new(Config {
        upstream: a.upstream,
        delay: Duration::from_millis(a.delay_ms),
        bandwidth_mbps: a.bandwidth_mbps,
        fail_503: a.fail_503,
        fail_500: a.fail_500,
        reset_mid_body: a.reset_mid_body,
        stall: Duration::from_millis(a.stall_ms),
        stall_ratio: a.stall_ratio,
        seed: a.seed,
    })?;
    let (listener, addr) = bind(&a.listen).await?;
    println!("listening http://{addr}");
    std::io::stdout().flush()?;

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let write_stats = |p: &Proxy| {
        if let Some(f) = &a.stats_file {
            let tmp = f.with_extension("tmp");
            let r = std::fs::write(&tmp, format!("{}\n", p.stats.to_json()))
                .and_then(|_| std::fs::rename(&tmp, f));
            if let Err(e) = r {
                eprintln!("labproxy: writing {}: {e}", f.display());
            }
        }
    };
    let server = tokio::spawn(proxy.clone().serve(listener, std::future::pending()));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = usr1.recv() => write_stats(&proxy),
        }
    }
    server.abort();
    write_stats(&proxy);
    // Exit at once: do not wait for open keep-alive connections or blocking DNS threads.
    std::process::exit(0)
}
