//! Time to compute one day's bulletin from the journal for N stations (5-minute levels and
//! rain, the day and the day before in the journal): `cargo bench --bench bulletin [-- N]`.
//! Prints the load + compute time, and the JSON and HTML rendering times.

use std::time::Instant;

use hydrowatch::bulletin;
use hydrowatch::journal;
use hydrowatch::model::Reading;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut toml = String::from("[rules]\ntime_zone = \"Asia/Shanghai\"\n\n");
    for i in 0..n {
        toml.push_str(&format!(
            "[[stations]]\nid = \"s{i}\"\nname = \"站{i}\"\nbasin = \"b{}\"\ninterval = \"5m\"\n\
             stages = {{ guard = 50.5, warning = 51.0, guaranteed = 52.0 }}\n\n",
            i % 10
        ));
    }
    let mut settings = hydrowatch::config::load_from_str(&toml).expect("valid");
    settings.journal.path = dir.path().join("journal.db");
    let day = jiff::civil::date(2021, 7, 20);
    let (from, to) = bulletin::bounds(&settings, day).expect("bounds");
    let conn = journal::open(&settings.journal.path).expect("journal");
    let started = Instant::now();
    let tx = conn.unchecked_transaction().expect("tx");
    {
        let mut stmt = tx.prepare_cached(journal::INSERT_READING).expect("stmt");
        let mut seq = 0;
        for i in 0..n {
            let mut t = from - 24 * 3_600_000;
            while t < to {
                t += 300_000;
                seq += 1;
                let mut r = Reading::empty(format!("s{i}"), t);
                let phase = ((t - from) as f64 / 3_600_000.0 + i as f64 * 0.1).sin();
                r.level_m = Some(50.0 + phase);
                r.rain_mm = Some(((phase + 1.0) * 2.0).floor() / 10.0);
                r.rain_period_s = Some(300);
                journal::insert_reading(&mut stmt, &r, seq, t).expect("insert");
            }
        }
    }
    tx.commit().expect("commit");
    let readings = n * 576;
    println!(
        "journal: {n} stations, {readings} readings written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for round in 0..3 {
        let started = Instant::now();
        let b = bulletin::load(&conn, &settings, day, to + 1).expect("bulletin");
        let computed = started.elapsed();
        let started = Instant::now();
        let json = bulletin::to_json(&b);
        let to_json = started.elapsed();
        let started = Instant::now();
        let html = bulletin::render::html(&b, &settings, hydrowatch::config::Language::Chinese);
        let to_html = started.elapsed();
        println!(
            "round {round}: load + compute {:.0} ms, JSON {:.0} ms ({} KB), HTML {:.0} ms ({} KB)",
            computed.as_secs_f64() * 1000.0,
            to_json.as_secs_f64() * 1000.0,
            json.len() / 1024,
            to_html.as_secs_f64() * 1000.0,
            html.len() / 1024
        );
    }
}
