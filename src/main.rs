//! The `hydrowatch` command line: `run`, `check-config`, `demo`, `simulate`, `bulletin`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use hydrowatch::config::{self, Settings};

#[derive(Parser)]
#[command(
    name = "hydrowatch",
    version,
    about = "Flood and drought monitoring: gauge readings from MQTT into InfluxDB, stage rules, patrol alerts"
)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Commands,
}

// Parsed once at start-up: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Commands {
    /// Run the daemon. Several -c files layer in order over the built-in defaults, then
    /// HYDROWATCH__SECTION__KEY environment variables.
    Run {
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Vec<PathBuf>,
    },
    /// Validate everything `run` would load; print a summary and every problem.
    CheckConfig {
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Vec<PathBuf>,
    },
    /// The whole system on embedded defaults, fed by a simulated flood; no outside service.
    Demo(hydrowatch::sim::demo::DemoArgs),
    /// Publish simulated or replayed (CSV) gauge readings to a broker.
    Simulate(hydrowatch::sim::SimulateArgs),
    /// Write the daily bulletin (水雨情日报) of a past hydrological day from the journal.
    Bulletin {
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Vec<PathBuf>,
        /// The hydrological day, named by the local date it starts on (YYYY-MM-DD).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: String,
        #[arg(long, value_enum, default_value = "json")]
        format: BulletinFormat,
        /// Language of the markdown and HTML forms.
        #[arg(long, value_enum, default_value = "zh")]
        lang: BulletinLanguage,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BulletinFormat {
    Json,
    Html,
    Markdown,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BulletinLanguage {
    Zh,
    En,
}

fn init_logging(json: bool) {
    // rumqttd (the embedded broker) logs every client disconnect, clean or not, as an error
    // from `rumqttd::server::broker`, and a routing error for a connection that already left
    // from `rumqttd::router::routing`; both are silenced unless RUST_LOG asks for them.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,rumqttd=warn,rumqttd::server::broker=off,rumqttd::router::routing=off,rumqttc=warn",
        )
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    // One TLS provider for every client in the process (MQTT over TLS, HTTPS).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hydrowatch: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Commands::Run { config } => match load(&config) {
            Some(settings) => runtime.block_on(hydrowatch::daemon::run(
                settings,
                hydrowatch::shutdown::signal(),
            )),
            None => return ExitCode::from(1),
        },
        Commands::CheckConfig { config } => return check_config(&config),
        Commands::Demo(args) => runtime.block_on(hydrowatch::sim::demo::run(args)),
        Commands::Simulate(args) => runtime.block_on(hydrowatch::sim::simulate(args)),
        Commands::Bulletin {
            config,
            date,
            format,
            lang,
        } => match load(&config) {
            Some(settings) => bulletin(&settings, &date, format, lang),
            None => return ExitCode::from(1),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("hydrowatch: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn bulletin(
    settings: &Settings,
    date: &str,
    format: BulletinFormat,
    lang: BulletinLanguage,
) -> anyhow::Result<()> {
    use hydrowatch::bulletin;
    use std::io::Write as _;
    let day = bulletin::parse_date(date)?;
    let conn = hydrowatch::journal::open(&settings.journal.path)?;
    let b = bulletin::document(&conn, settings, day, hydrowatch::model::now_millis())?;
    let lang = match lang {
        BulletinLanguage::Zh => config::Language::Chinese,
        BulletinLanguage::En => config::Language::English,
    };
    let text = match format {
        BulletinFormat::Json => bulletin::to_json(&b),
        BulletinFormat::Html => bulletin::render::html(&b, settings, lang),
        BulletinFormat::Markdown => bulletin::render::markdown(
            &b,
            settings,
            lang,
            Some(&bulletin::schedule::page_url(settings, &b.date, lang)),
        ),
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}

fn load(files: &[PathBuf]) -> Option<Settings> {
    match config::load(files) {
        Ok(s) => Some(s),
        Err(problems) => {
            eprintln!(
                "hydrowatch: the configuration has {} problem(s):",
                problems.0.len()
            );
            for p in &problems.0 {
                eprintln!("  {p}");
            }
            None
        }
    }
}

fn check_config(files: &[PathBuf]) -> ExitCode {
    let Some(s) = load(files) else {
        return ExitCode::from(1);
    };
    let rules = |f: &dyn Fn(&config::Station) -> bool| s.stations.iter().filter(|st| f(st)).count();
    println!("configuration is valid ({} file(s))", files.len());
    println!("  stations: {}", s.stations.len());
    if !s.zones.is_empty() {
        println!("  zones:    {} (rain_level on their gauges)", s.zones.len());
    }
    println!(
        "  teams:    {} ({} channels)",
        s.teams.len(),
        s.teams.iter().map(|t| t.channels.len()).sum::<usize>()
    );
    if !s.people.is_empty() {
        println!(
            "  people:   {} ({} teams with a respond_within deadline)",
            s.people.len(),
            s.teams
                .iter()
                .filter(|t| t.respond_within.is_some())
                .count()
        );
    }
    println!("  rules:    stage {}, drought {}, rise_rate {}, rain {}, rain_level {}, dry_spell {}, sensor {}, offline {}",
        rules(&|st| !st.stages.is_empty()),
        rules(&|st| !st.drought.is_empty()),
        rules(&|st| st.rise_rate_m_per_h.is_some()),
        rules(&|st| !st.rain.is_empty()),
        rules(&|st| !st.rain_levels.is_empty()),
        rules(&|st| st.dry_spell.is_some()),
        rules(&|st| st.level_range.is_some() || st.max_step_m.is_some()),
        s.stations.len());
    println!(
        "  mqtt:     {}:{} as `{}`, topics {:?}",
        s.mqtt.host, s.mqtt.port, s.mqtt.client_id, s.mqtt.topics
    );
    match &s.influxdb {
        Some(i) => println!(
            "  influxdb: {} ({:?})",
            i.url,
            match &i.api {
                config::InfluxApi::V1 { .. } => "v1",
                config::InfluxApi::V2 { .. } => "v2",
            }
        ),
        None => println!("  influxdb: none (readings stay in the journal)"),
    }
    let speaking = s
        .stations
        .iter()
        .filter(|st| st.sl651_address.is_some())
        .count();
    match &s.sl651 {
        Some(c) => println!(
            "  sl651:    {} ({speaking} stations with an address), mqtt topics {:?}",
            c.listen
                .map_or("no TCP listener".to_string(), |a| format!("listening on {a}")),
            c.mqtt_topics
        ),
        None if speaking > 0 => println!(
            "  sl651:    none ({speaking} stations have an sl651_address, but no [sl651] centre runs)"
        ),
        None => {}
    }
    println!("  journal:  {}", s.journal.path.display());
    println!("  http:     {}", s.http.listen);
    ExitCode::SUCCESS
}
