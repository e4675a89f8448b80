//! What the journal writer's wall-clock tick costs with many open alerts, in process: the
//! writer itself ([`Writer::open`], [`Writer::commit`]) on a journal in a temporary directory,
//! no broker, no HTTP.
//!
//! ```text
//! cargo bench --bench tick                  # N = 10, 100, 500, 2000 open alerts
//! cargo bench --bench tick -- --n=500       # one size (comma list)
//! cargo bench --bench tick -- --reps=21     # repetitions per figure (default 15)
//! ```
//!
//! Each case builds a journal with N stations above their warning stage, so N open, firing,
//! unacknowledged alerts. The teams that hear them have re-notification, an escalation and
//! 叫应 (`respond_within`, members with superiors); a history phase runs them with timers of
//! one second, so each alert has its pages, reminder and escalation events and callout steps
//! in the journal, as after a while of a real flood. The writer is then reopened on the same
//! journal with the timers of a county office (minutes), so that a measured tick finds
//! nothing due: the common case, every two seconds.
//!
//! Figures (milliseconds, median of the repetitions, min and max beside it):
//! - tick: a group of one `Command::Tick`, as the daemon sends every two seconds (it writes
//!   nothing when nothing is due, so its commit syncs nothing: the figure is the tick's work);
//! - readings: a group of 100 one-reading messages to the alerting stations (no new event);
//! - readings + tick: the same group with a tick in it, as when the tick lands in a group;
//!   the difference of the two medians is what a tick adds to the group it lands in.
//!
//! Nothing here asserts a timing; it reports.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use hydrowatch::config::load_from_str;
use hydrowatch::model::{now_millis, Reading};
use hydrowatch::writer::{Command, Decoded, Hooks, Inbound, Shared, Writer};
use tokio::sync::{broadcast, Notify};

/// Stations that hold no alert, for the readings group.
const READINGS_PER_GROUP: usize = 100;

struct Options {
    sizes: Vec<usize>,
    reps: usize,
}

impl Options {
    fn parse() -> Options {
        let mut o = Options {
            sizes: vec![10, 100, 500, 2000],
            reps: 15,
        };
        for arg in std::env::args().skip(1) {
            if let Some(list) = arg.strip_prefix("--n=") {
                o.sizes = list
                    .split(',')
                    .map(|n| n.parse().expect("--n=N,M"))
                    .collect();
            } else if let Some(n) = arg.strip_prefix("--reps=") {
                o.reps = n.parse().expect("--reps=N");
            }
        }
        o
    }
}

/// The configuration: people in a chain of three, a team with re-notification, an escalation
/// and 叫应, the team it escalates to, and `n` stations of the first team.
fn config(dir: &Path, n: usize, short: bool) -> String {
    let (renotify, escalate, respond) = match short {
        true => ("1s", "1s", "1s"),
        false => ("30m", "20m", "15m"),
    };
    let mut text = format!(
        r#"
[mqtt]
url = "mqtt://127.0.0.1:1"
client_id = "bench"

[journal]
path = "{journal}"

[http]
listen = "127.0.0.1:0"

[rules]
pending = "0s"

{people}
[[teams]]
id = "east"
token = "east-token"
renotify = "{renotify}"
members = ["wang", "zhao"]
respond_within = "{respond}"
  [[teams.channels]]
  id = "hook"
  kind = "webhook"
  url = "http://127.0.0.1:1/hook"
  [[teams.escalation]]
  after = "{escalate}"
  team = "command"

[[teams]]
id = "command"
token = "command-token"
renotify = "{renotify}"
  [[teams.channels]]
  id = "hook"
  kind = "webhook"
  url = "http://127.0.0.1:1/command"
"#,
        journal = dir.join("journal.db").display(),
        people = include_str!("../tests/data/people.toml"),
    );
    for i in 0..n + READINGS_PER_GROUP {
        text += &format!(
            "\n[[stations]]\nid = \"s{i}\"\nteam = \"east\"\nstages = {{ guard = 1.0, warning = 2.0 }}\n"
        );
    }
    text
}

fn writer(dir: &Path, n: usize, short: bool) -> Writer {
    let settings = load_from_str(&config(dir, n, short)).expect("valid bench configuration");
    let hooks = Hooks {
        acks: None,
        live: broadcast::channel(16).0,
        forwarder: Arc::new(Notify::new()),
        dispatcher: Arc::new(Notify::new()),
    };
    Writer::open(Arc::new(settings), Arc::new(Shared::default()), hooks).expect("journal opens")
}

/// One one-reading message per station in `stations`, at `level`.
fn messages(stations: std::ops::Range<usize>, level: f64) -> Vec<Command> {
    let now = now_millis();
    stations
        .map(|i| {
            let mut reading = Reading::empty(format!("s{i}"), now);
            reading.level_m = Some(level);
            Command::Message(Inbound {
                topic: format!("hydro/s{i}/data"),
                received_at: now,
                decoded: Decoded::Readings(vec![reading]),
                receipt: None,
                frame: None,
            })
        })
        .collect()
}

fn tick() -> Command {
    Command::Tick {
        check_offline: true,
    }
}

/// Median, min and max of `reps` timings of `f` (each given a fresh group), in milliseconds.
fn time(reps: usize, mut f: impl FnMut() -> f64) -> (f64, f64, f64) {
    let mut samples: Vec<f64> = (0..reps).map(|_| f()).collect();
    samples.sort_by(f64::total_cmp);
    (samples[reps / 2], samples[0], samples[reps - 1])
}

fn commit_ms(w: &mut Writer, group: Vec<Command>) -> f64 {
    let start = Instant::now();
    w.commit(group);
    start.elapsed().as_secs_f64() * 1000.0
}

fn count(dir: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("journal.db")).expect("journal");
    conn.query_row(sql, [], |r| r.get(0)).expect("count")
}

fn case(n: usize, reps: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    // History: the alerts open and are paged, then seconds-long timers remind, escalate and
    // call along the chain, as minutes-long ones would over a flood.
    {
        let mut w = writer(dir.path(), n, true);
        w.commit(messages(0..n, 2.5));
        for _ in 0..4 {
            std::thread::sleep(std::time::Duration::from_millis(1100));
            w.commit(vec![tick()]);
        }
    }
    let open = count(dir.path(), "SELECT count(*) FROM alerts WHERE open = 1");
    let events = count(dir.path(), "SELECT count(*) FROM alert_events");
    let pages = count(dir.path(), "SELECT count(*) FROM alert_pages");
    let steps = count(dir.path(), "SELECT count(*) FROM callout_steps");
    // Measured: a county office's timers, nothing due.
    let mut w = writer(dir.path(), n, false);
    let alone = time(reps, || commit_ms(&mut w, vec![tick()]));
    let readings = time(reps, || {
        commit_ms(&mut w, messages(n..n + READINGS_PER_GROUP, 0.5))
    });
    let with_tick = time(reps, || {
        let mut group = messages(n..n + READINGS_PER_GROUP, 0.5);
        group.push(tick());
        commit_ms(&mut w, group)
    });
    let events_after = count(dir.path(), "SELECT count(*) FROM alert_events");
    let show = |(median, min, max): (f64, f64, f64)| format!("{median:.2} ({min:.2}–{max:.2})");
    println!(
        "| {n} | {open} | {events} | {pages} | {steps} | {} | {} | {} | {:.2} |",
        show(alone),
        show(readings),
        show(with_tick),
        with_tick.0 - readings.0,
    );
    assert_eq!(
        events, events_after,
        "a measured tick found something due: the figures would not be of an idle tick"
    );
}

fn main() {
    let opts = Options::parse();
    println!("# hydrowatch writer tick benchmark");
    println!();
    println!(
        "machine: {} cores; load average at start: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "milliseconds per commit, median of {} (min–max); {READINGS_PER_GROUP} readings per group",
        opts.reps
    );
    println!();
    println!("| open alerts | open (journal) | events | pages | callout steps | tick | readings | readings + tick | (readings + tick) − readings |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in &opts.sizes {
        case(*n, opts.reps);
    }
}
