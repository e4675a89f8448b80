//! The SL 651 telemetry centre under load: `hydrowatch run` (the release binary) with ten
//! thousand RTU links held open at once, then a steady 1,000 report frames a second spread
//! across them, each link waiting for the answer to its frame as an RTU does.
//!
//! ```text
//! cargo bench --bench sl651                          # 10,000 links, 1,000 frames/s for 30 s
//! cargo bench --bench sl651 -- --quick               # 1,000 links, 200 frames/s for 10 s
//! cargo bench --bench sl651 -- --links=N --rate=N --seconds=N
//! ```
//!
//! Reports: reply latency (frame written → answer read; the answer leaves only after the
//! frame's reading is committed, fsync included) p50/p99/max, hydrowatch's resident memory
//! with the links open and at the end, and its CPU seconds per 1,000 frames. The journal is
//! the only store (no InfluxDB), so the figures are the centre's and the writer's.
//! Nothing here asserts a timing; it reports.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use hydrowatch::sim::sl651::{element, report_frame};
use hydrowatch::sl651::frame::{function, EndMark};
use hydrowatch::sl651::{FrameDecoder, StationAddress, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

struct Options {
    links: usize,
    rate: usize,
    seconds: u64,
}

impl Options {
    fn parse() -> Options {
        let mut o = Options {
            links: 10_000,
            rate: 1_000,
            seconds: 30,
        };
        for arg in std::env::args().skip(1) {
            let number = |prefix: &str| arg.strip_prefix(prefix)?.parse::<u64>().ok();
            if arg == "--quick" {
                o = Options {
                    links: 1_000,
                    rate: 200,
                    seconds: 10,
                };
            } else if let Some(n) = number("--links=") {
                o.links = n as usize;
            } else if let Some(n) = number("--rate=") {
                o.rate = n as usize;
            } else if let Some(n) = number("--seconds=") {
                o.seconds = n;
            }
        }
        o
    }
}

/// Raises this process's open-file limit to the hard limit: it holds one socket per link.
fn raise_nofile() -> libc::rlim_t {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a struct owned here.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    limit.rlim_cur
}

fn address(i: usize) -> StationAddress {
    format!("00{i:08}").parse().expect("address")
}

fn config(mqtt: &Mosquitto, centre_port: u16, links: usize) -> String {
    let mut stations = String::with_capacity(links * 60);
    for i in 0..links {
        stations.push_str(&format!(
            "[[stations]]\nid = \"r{i}\"\nsl651_address = \"00{i:08}\"\n\n"
        ));
    }
    HwConfig::new(mqtt)
        .body(&format!(
            "[sl651]\nlisten = \"127.0.0.1:{centre_port}\"\nmax_connections = {}\n\n{stations}",
            links + 1000
        ))
        .build()
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// (VmRSS, VmHWM) in MB.
fn rss_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// One RTU link: sends a timed report when told, waits for its answer, records the latency.
async fn link(
    mut socket: TcpStream,
    index: usize,
    mut go: mpsc::Receiver<()>,
    latencies: Arc<Mutex<Vec<Duration>>>,
    failures: Arc<Mutex<u64>>,
) {
    let address = address(index);
    let mut decoder = FrameDecoder::default();
    let mut buf = [0u8; 256];
    let base: jiff::civil::DateTime = "2021-07-01T08:00:00".parse().expect("time");
    let mut serial: u16 = 0;
    while go.recv().await.is_some() {
        serial = serial.wrapping_add(1).max(1);
        let observed = base + jiff::Span::new().minutes(i64::from(serial) * 5);
        let frame = report_frame(
            address,
            function::TIMED,
            serial,
            observed,
            b'H',
            vec![(
                observed,
                vec![element(
                    0x39,
                    Value::Number(10.0 + (index % 100) as f64 / 10.0),
                )],
            )],
        )
        .expect("encodes");
        let sent = Instant::now();
        let answered = async {
            socket.write_all(&frame).await.ok()?;
            loop {
                let n = socket.read(&mut buf).await.ok()?;
                if n == 0 {
                    return None;
                }
                if let Some(Ok(answer)) = decoder.push(&buf[..n]).into_iter().next() {
                    return (answer.end == EndMark::Eot).then_some(());
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(30), answered).await {
            Ok(Some(())) => latencies.lock().expect("lock").push(sent.elapsed()),
            _ => *failures.lock().expect("lock") += 1,
        }
    }
}

fn main() {
    let opts = Options::parse();
    let nofile = raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "SL 651 centre: {} links, {} frames/s for {} s (open-file limit here: {nofile})",
        opts.links, opts.rate, opts.seconds
    );
    let mqtt = Mosquitto::start(false);
    let port = free_port();
    let mut hw = Hydrowatch::start(&config(&mqtt, port, opts.links));
    hw.wait_ready(Duration::from_secs(120));
    let pid = hw.pid().expect("pid");
    let centre = format!("127.0.0.1:{port}");

    rt.block_on(async {
        let latencies = Arc::new(Mutex::new(Vec::with_capacity(
            opts.rate * opts.seconds as usize,
        )));
        let failures = Arc::new(Mutex::new(0u64));
        let opened = Instant::now();
        let mut triggers = Vec::with_capacity(opts.links);
        let mut tasks = Vec::with_capacity(opts.links);
        for i in 0..opts.links {
            let socket = loop {
                match TcpStream::connect(&centre).await {
                    Ok(s) => break s,
                    // The listen backlog is full for a moment: the centre catches up.
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            };
            let _ = socket.set_nodelay(true);
            let (tx, rx) = mpsc::channel(1);
            triggers.push(tx);
            tasks.push(tokio::spawn(link(
                socket,
                i,
                rx,
                Arc::clone(&latencies),
                Arc::clone(&failures),
            )));
        }
        let metrics = loop {
            let (_, text) = hw.http_get("/metrics");
            let open = text
                .lines()
                .find_map(|l| l.strip_prefix("hydrowatch_sl651_connections_open "))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            if open as usize >= opts.links {
                break open;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (rss_open, _) = rss_mb(pid);
        println!(
            "links open: {metrics} after {:.1} s; hydrowatch RSS {rss_open:.0} MB",
            opened.elapsed().as_secs_f64()
        );

        let cpu_before = cpu_seconds(pid);
        let started = Instant::now();
        let total = opts.rate * opts.seconds as usize;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let per_tick = (opts.rate / 100).max(1);
        let mut sent = 0usize;
        let mut skipped = 0usize;
        while sent < total {
            tick.tick().await;
            for _ in 0..per_tick.min(total - sent) {
                // try_send: a link with a frame already waiting behind the one in flight is
                // counted as skipped rather than queued deeper, so that a slow centre shows
                // as latency and skips, not as a growing backlog in the bench.
                if triggers[sent % opts.links].try_send(()).is_err() {
                    skipped += 1;
                }
                sent += 1;
            }
        }
        let total = total - skipped;
        let offered_for = started.elapsed();
        let done = || latencies.lock().expect("lock").len() as u64 + *failures.lock().expect("lock");
        let deadline = Instant::now() + Duration::from_secs(60);
        while done() < total as u64 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let cpu = cpu_seconds(pid) - cpu_before;
        let (rss_end, hwm) = rss_mb(pid);
        let mut lat = latencies.lock().expect("lock").clone();
        lat.sort();
        let answered = lat.len();
        println!(
            "frames: {total} offered in {:.1} s ({:.0}/s), {answered} answered, {} failed, {skipped} skipped",
            offered_for.as_secs_f64(),
            total as f64 / offered_for.as_secs_f64(),
            failures.lock().expect("lock")
        );
        println!(
            "reply latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            percentile(&lat, 0.50).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
        println!(
            "hydrowatch: RSS {rss_end:.0} MB at the end (peak {hwm:.0} MB); CPU {:.2} s per 1,000 frames ({cpu:.1} s in all)",
            cpu / answered.max(1) as f64 * 1000.0
        );
        drop(triggers);
        for t in tasks {
            let _ = t.await;
        }
    });
    let stored = {
        let conn = rusqlite::Connection::open(hw.dir().join("journal.db")).expect("journal");
        conn.query_row("SELECT count(*) FROM readings", [], |r| r.get::<_, i64>(0))
            .unwrap_or(-1)
    };
    println!("journal: {stored} readings stored");
    hw.stop();
    drop(mqtt);
}
