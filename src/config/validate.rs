//! Turning the raw configuration into typed values, collecting every problem on the way.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;

use super::problem::{secret, Origins, Problem};
use super::raw::{RawChannel, RawRainLevel, RawSettings, RawStation, RawTeam, RawZone};
use super::*;

/// The Chinese characteristic levels, in order of severity.
pub const CHINESE_STAGES: [&str; 4] = ["guard", "warning", "guaranteed", "record"];
/// The US National Weather Service flood categories, in order of severity.
pub const NWS_STAGES: [&str; 5] = ["action", "minor", "moderate", "major", "record"];
/// Drought levels, in order of severity (levels descend).
pub const DROUGHT_LEVELS: [&str; 4] = ["warning", "limit", "seasonal_min", "historical_min"];

struct Ctx<'a> {
    origins: &'a Origins,
    problems: Vec<Problem>,
    /// Position of the station being validated, for its file.
    station_index: usize,
}

impl Ctx<'_> {
    fn section(&mut self, section: &str, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.origins.section(section),
            key: format!("{section}.{key}"),
            message: message.into(),
        });
    }

    fn station(&mut self, id: &str, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self
                .origins
                .station(self.station_index)
                .filter(|f| !f.is_empty()),
            key: format!("stations[{id}].{key}"),
            message: message.into(),
        });
    }

    fn person(&mut self, id: &str, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.origins.section("people"),
            key: format!("people[{id}].{key}"),
            message: message.into(),
        });
    }

    fn team(&mut self, id: &str, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.origins.team(id),
            key: format!("teams[{id}].{key}"),
            message: message.into(),
        });
    }

    fn zone(&mut self, id: &str, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.origins.section("zones"),
            key: format!("zones[{id}].{key}"),
            message: message.into(),
        });
    }

    /// A problem in a list of rain levels, reported where the list was written.
    fn levels(&mut self, owner: &LevelsOwner, key: &str, message: impl Into<String>) {
        let key = format!("rain_levels{key}");
        match owner {
            LevelsOwner::Rules => self.section("rules", &key, message),
            LevelsOwner::Station(id) => self.station(id, &key, message),
            LevelsOwner::Zone(id) => self.zone(id, &key, message),
        }
    }

    fn duration(&mut self, text: &str, report: impl FnOnce(&mut Self, String)) -> Duration {
        match humantime::parse_duration(text.trim()) {
            Ok(d) => d,
            Err(e) => {
                report(
                    self,
                    format!("`{text}` is not a duration ({e}); write e.g. \"30s\", \"5m\", \"1h\""),
                );
                Duration::ZERO
            }
        }
    }
}

/// Where a list of rain levels was written, for the keys of its problems.
enum LevelsOwner {
    Rules,
    Station(String),
    Zone(String),
}

/// The shortest rain window a rain level may use: two 5-minute amounts.
const SHORTEST_LEVEL_WINDOW: Duration = Duration::from_secs(600);

pub(super) fn validate(mut raw: RawSettings, origins: &Origins) -> Result<Settings, Vec<Problem>> {
    let mut cx = Ctx {
        origins,
        problems: Vec::new(),
        station_index: 0,
    };

    let mqtt = mqtt(&mut cx, raw.mqtt);
    let influxdb = raw.influxdb.map(|i| influx(&mut cx, i));
    let journal = JournalSettings {
        path: PathBuf::from(&raw.journal.path),
        retention: cx.duration(&raw.journal.retention, |c, m| {
            c.section("journal", "retention", m)
        }),
        max_wal_bytes: raw.journal.max_wal_bytes,
    };
    if journal.max_wal_bytes < 1 << 20 {
        cx.section(
            "journal",
            "max_wal_bytes",
            "must be at least 1048576 (1 MiB): a smaller log is checkpointed after every commit",
        );
    }
    let read_token = secret(
        raw.http.read_token.take(),
        raw.http.read_token_file.take(),
        "http.read_token",
        origins.section("http"),
        &mut cx.problems,
    );
    if raw.http.listen.parse::<std::net::SocketAddr>().is_err() {
        cx.section(
            "http",
            "listen",
            format!(
                "`{}` is not an address like 127.0.0.1:8080",
                raw.http.listen
            ),
        );
    }
    if read_token.as_deref() == Some("") {
        cx.section(
            "http",
            "read_token",
            "is empty: leave it out for open reads",
        );
    }
    let http = http(&mut cx, raw.http, read_token);
    let broker = broker(&mut cx, raw.broker, &mqtt);
    let mut mqtt = mqtt;
    if broker.embedded && mqtt.username.is_none() {
        // hydrowatch's own source is a client of the embedded broker like any gauge.
        if let Some(user) = broker.users.first() {
            mqtt.username = Some(user.username.clone());
            mqtt.password = Some(user.password.clone());
        }
    }
    let rules = rules(&mut cx, &raw.rules);
    let limits = Limits {
        max_payload_bytes: raw.limits.max_payload_bytes,
        max_readings_per_message: raw.limits.max_readings_per_message,
        future_tolerance: cx.duration(&raw.limits.future_tolerance, |c, m| {
            c.section("limits", "future_tolerance", m)
        }),
        max_dead_letters: raw.limits.max_dead_letters,
    };
    if limits.max_payload_bytes < 1024 {
        cx.section("limits", "max_payload_bytes", "must be at least 1024 bytes");
    }
    if limits.max_dead_letters == 0 {
        cx.section(
            "limits",
            "max_dead_letters",
            "must be at least 1: dead letters are how bad messages stay visible",
        );
    }

    let sl651 = raw.sl651.map(|s| sl651(&mut cx, s, &rules, &mqtt.topics));

    let people = people(&mut cx, raw.people);

    let mut team_ids = HashSet::new();
    for t in &raw.teams {
        if !team_ids.insert(t.id.clone()) {
            cx.team(&t.id, "id", "duplicate team id");
        }
    }
    let teams: Vec<Team> = raw
        .teams
        .into_iter()
        .map(|t| team(&mut cx, t, &team_ids, &people))
        .collect();

    for (i, t) in teams.iter().enumerate() {
        let Some(token) = &t.token else { continue };
        if token.trim().is_empty() {
            cx.team(
                &t.id,
                "token",
                "is empty: anyone could acknowledge this team's alerts",
            );
        } else if let Some(other) = teams[..i].iter().find(|o| o.holds_token(token)) {
            cx.team(
                &t.id,
                "token",
                format!(
                    "is also team `{}`'s token: an acknowledgement must name one team",
                    other.id
                ),
            );
        }
        if http
            .read_token
            .as_deref()
            .is_some_and(|r| crate::config::same_secret(token, r))
        {
            cx.team(
                &t.id,
                "token",
                "is also http.read_token: whoever may read could acknowledge",
            );
        }
    }

    let default_rain = raw.rules.rain.clone();
    let default_dry = raw.rules.dry_spell.clone();
    let default_levels = raw
        .rules
        .rain_levels
        .as_deref()
        .map(|l| rain_levels(&mut cx, &LevelsOwner::Rules, l));
    let mut seen = HashSet::new();
    let mut stations = Vec::new();
    for (index, s) in raw.stations.into_iter().enumerate() {
        cx.station_index = index;
        if !seen.insert(s.id.clone()) {
            cx.station(&s.id, "id", "duplicate station id");
            continue;
        }
        stations.push(station(
            &mut cx,
            s,
            &team_ids,
            default_rain.as_ref(),
            default_dry.as_ref(),
            default_levels.as_deref(),
        ));
    }
    let zones = zones(
        &mut cx,
        raw.zones,
        &stations,
        &team_ids,
        default_levels.as_deref(),
    );
    let mut addresses: std::collections::HashMap<crate::sl651::StationAddress, String> =
        std::collections::HashMap::new();
    for (index, s) in stations.iter().enumerate() {
        let Some(address) = s.sl651_address else {
            continue;
        };
        if let Some(first) = addresses.get(&address) {
            cx.station_index = index;
            cx.station(
                &s.id,
                "sl651_address",
                format!("{address} is already station `{first}`'s address; each RTU needs its own"),
            );
        } else {
            addresses.insert(address, s.id.clone());
        }
    }
    for t in &teams {
        for (stage, _) in t.respond_within.iter().flat_map(|r| &r.by_stage) {
            let known = stations.iter().any(|s| s.stages.position(stage).is_some());
            if !known && !stations.is_empty() {
                cx.team(
                    &t.id,
                    &format!("respond_within.{stage}"),
                    format!(
                        "no station has a stage named `{stage}` (use `default` for every alert)"
                    ),
                );
            }
        }
        for e in &t.escalation {
            if let Some(stage) = &e.min_stage {
                let known = stations.iter().any(|s| s.stages.position(stage).is_some());
                if !known && !stations.is_empty() {
                    cx.team(
                        &t.id,
                        "escalation.min_stage",
                        format!("no station has a stage named `{stage}`"),
                    );
                }
            }
        }
    }

    if cx.problems.is_empty() {
        Ok(Settings {
            mqtt,
            influxdb,
            journal,
            http,
            broker,
            rules,
            limits,
            sl651,
            people,
            teams,
            stations,
            zones,
            station_ids: Default::default(),
        })
    } else {
        Err(cx.problems)
    }
}

fn http(cx: &mut Ctx, raw: super::raw::RawHttp, read_token: Option<String>) -> HttpSettings {
    let failed_auth_window = match &raw.failed_auth_window {
        Some(t) => cx.duration(t, |c, m| c.section("http", "failed_auth_window", m)),
        None => Duration::from_secs(600),
    };
    let max_event_streams = raw.max_event_streams.unwrap_or(64);
    if max_event_streams == 0 {
        cx.section("http", "max_event_streams", "must be at least 1");
    }
    let event_buffer = raw.event_buffer.unwrap_or(8192);
    if event_buffer == 0 {
        cx.section("http", "event_buffer", "must be at least 1");
    }
    let max_failed_auth = raw.max_failed_auth.unwrap_or(10);
    if max_failed_auth == 0 {
        cx.section("http", "max_failed_auth", "must be at least 1");
    }
    HttpSettings {
        listen: raw.listen,
        read_token,
        public_url: raw.public_url,
        legacy_query_token: raw.legacy_query_token.unwrap_or(false),
        metrics_need_token: raw.metrics_need_token.unwrap_or(false),
        max_event_streams,
        event_buffer,
        max_failed_auth,
        failed_auth_window,
    }
}

/// Whether `listen` stays on this machine. An unparsable address is reported elsewhere.
fn loopback_only(listen: &str) -> bool {
    listen
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(true)
}

fn broker(cx: &mut Ctx, raw: super::raw::RawBroker, mqtt: &MqttSettings) -> BrokerSettings {
    let origin = cx.origins.section("broker");
    let mut users = Vec::new();
    if let Some(username) = raw.username {
        let password = secret(
            raw.password,
            raw.password_file,
            "broker.password",
            origin.clone(),
            &mut cx.problems,
        );
        users.push((username, password, "broker.password".to_string()));
    } else if raw.password.is_some() || raw.password_file.is_some() {
        cx.section("broker", "username", "a password needs a username");
    }
    for (i, u) in raw.users.into_iter().enumerate() {
        let key = format!("broker.users[{i}].password");
        let password = secret(
            u.password,
            u.password_file,
            &key,
            origin.clone(),
            &mut cx.problems,
        );
        users.push((u.username, password, key));
    }
    let mut checked: Vec<BrokerUser> = Vec::new();
    let mut seen = HashSet::new();
    for (username, password, key) in users {
        let key = key.trim_start_matches("broker.").to_string();
        if username.is_empty() {
            cx.section("broker", &key.replace("password", "username"), "is empty");
            continue;
        }
        if !seen.insert(username.clone()) {
            cx.section(
                "broker",
                &key.replace("password", "username"),
                format!("user `{username}` is listed twice"),
            );
            continue;
        }
        match password {
            Some(p) if !p.is_empty() => checked.push(BrokerUser {
                username,
                password: p,
            }),
            Some(_) => cx.section(
                "broker",
                &key,
                format!("user `{username}` has an empty password"),
            ),
            None => cx.section(
                "broker",
                &key,
                format!("user `{username}` needs a password (or password_file)"),
            ),
        }
    }
    let listen = raw
        .listen
        .unwrap_or_else(|| format!("{}:{}", mqtt.host, mqtt.port));
    let tls = match (raw.tls_listen, raw.tls_cert_file, raw.tls_key_file) {
        (None, None, None) => None,
        (Some(tls_listen), Some(cert), Some(key)) => Some(BrokerTls {
            listen: tls_listen,
            cert_file: PathBuf::from(cert),
            key_file: PathBuf::from(key),
        }),
        (None, _, _) => {
            cx.section(
                "broker",
                "tls_listen",
                "TLS files need a listener, e.g. \"0.0.0.0:8883\"",
            );
            None
        }
        (Some(_), None, _) => {
            cx.section(
                "broker",
                "tls_cert_file",
                "a TLS listener needs a certificate (PEM)",
            );
            None
        }
        (Some(_), Some(_), None) => {
            cx.section(
                "broker",
                "tls_key_file",
                "a TLS listener needs the certificate's key (PEM)",
            );
            None
        }
    };
    if raw.embedded {
        for (key, address) in std::iter::once(("listen", &listen))
            .chain(tls.as_ref().map(|t| ("tls_listen", &t.listen)))
        {
            if address.parse::<std::net::SocketAddr>().is_err() {
                cx.section(
                    "broker",
                    key,
                    format!("`{address}` is not an address like 127.0.0.1:1883"),
                );
            } else if checked.is_empty() && !loopback_only(address) {
                cx.section(
                    "broker",
                    key,
                    format!(
                        "`{address}` reaches beyond this machine and the broker has no users: \
                         anyone could publish readings. Set broker.username and \
                         broker.password (or password_file), or listen on 127.0.0.1"
                    ),
                );
            }
        }
        if let Some(t) = &tls {
            if let Err(e) = crate::tls::acceptor(&t.cert_file, &t.key_file) {
                let key = match e {
                    crate::tls::TlsError::Key(..) => "tls_key_file",
                    _ => "tls_cert_file",
                };
                cx.section("broker", key, e.to_string());
            }
        }
    }
    BrokerSettings {
        embedded: raw.embedded,
        listen,
        users: checked,
        tls,
    }
}

fn mqtt(cx: &mut Ctx, raw: super::raw::RawMqtt) -> MqttSettings {
    let (mut host, mut port, mut tls) = ("127.0.0.1".to_string(), 1883, false);
    match url::Url::parse(&raw.url) {
        Ok(u) if matches!(u.scheme(), "mqtt" | "tcp" | "mqtts" | "ssl") => {
            tls = matches!(u.scheme(), "mqtts" | "ssl");
            host = u.host_str().unwrap_or("127.0.0.1").to_string();
            port = u.port().unwrap_or(if tls { 8883 } else { 1883 });
        }
        Ok(u) => cx.section(
            "mqtt",
            "url",
            format!("scheme `{}` is not mqtt:// or mqtts://", u.scheme()),
        ),
        Err(e) => cx.section("mqtt", "url", format!("`{}` is not a URL: {e}", raw.url)),
    }
    if raw.client_id.is_empty() {
        cx.section(
            "mqtt",
            "client_id",
            "must be set: the broker keeps the session by it",
        );
    }
    if raw.topics.is_empty() {
        cx.section("mqtt", "topics", "at least one topic filter is needed");
    }
    let password = secret(
        raw.password,
        raw.password_file,
        "mqtt.password",
        cx.origins.section("mqtt"),
        &mut cx.problems,
    );
    MqttSettings {
        host,
        port,
        tls,
        client_id: raw.client_id,
        topics: raw.topics,
        keep_alive: cx.duration(&raw.keep_alive, |c, m| c.section("mqtt", "keep_alive", m)),
        username: raw.username,
        password,
        ca_file: raw.ca_file.map(PathBuf::from),
        ack_topic: raw.ack_topic,
    }
}

fn influx(cx: &mut Ctx, raw: super::raw::RawInflux) -> InfluxSettings {
    let url = match url::Url::parse(&raw.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        Ok(u) => {
            cx.section(
                "influxdb",
                "url",
                format!("scheme `{}` is not http:// or https://", u.scheme()),
            );
            u
        }
        Err(e) => {
            cx.section(
                "influxdb",
                "url",
                format!("`{}` is not a URL: {e}", raw.url),
            );
            url::Url::parse("http://127.0.0.1:8086").expect("constant URL")
        }
    };
    let origin = cx.origins.section("influxdb");
    let token = secret(
        raw.token,
        raw.token_file,
        "influxdb.token",
        origin.clone(),
        &mut cx.problems,
    );
    let password = secret(
        raw.password,
        raw.password_file,
        "influxdb.password",
        origin,
        &mut cx.problems,
    );
    let api = match raw.api.as_str() {
        "v1" => InfluxApi::V1 {
            database: raw.database.unwrap_or_else(|| {
                cx.section("influxdb", "database", "api = \"v1\" needs a database");
                String::new()
            }),
            retention_policy: raw.retention_policy,
            username: raw.username,
            password,
        },
        "v2" => {
            let org = raw.org.unwrap_or_else(|| {
                cx.section("influxdb", "org", "api = \"v2\" needs an org");
                String::new()
            });
            let bucket = raw.bucket.unwrap_or_else(|| {
                cx.section("influxdb", "bucket", "api = \"v2\" needs a bucket");
                String::new()
            });
            if token.is_none() {
                cx.section(
                    "influxdb",
                    "token",
                    "api = \"v2\" needs a token (or token_file)",
                );
            }
            InfluxApi::V2 { org, bucket }
        }
        other => {
            cx.section(
                "influxdb",
                "api",
                format!("`{other}` is not \"v1\" or \"v2\""),
            );
            InfluxApi::V2 {
                org: String::new(),
                bucket: String::new(),
            }
        }
    };
    let flush_interval = match &raw.flush_interval {
        Some(t) => cx.duration(t, |c, m| c.section("influxdb", "flush_interval", m)),
        None => Duration::from_millis(200),
    };
    let timeout = match &raw.timeout {
        Some(t) => cx.duration(t, |c, m| c.section("influxdb", "timeout", m)),
        None => Duration::from_secs(30),
    };
    if timeout.is_zero() {
        cx.section("influxdb", "timeout", "must be above zero");
    }
    InfluxSettings {
        url,
        api,
        token,
        batch_size: raw.batch_size.unwrap_or(5000).max(1),
        flush_interval,
        timeout,
    }
}

fn rules(cx: &mut Ctx, raw: &super::raw::RawRules) -> RuleSettings {
    if !(raw.clear_margin_m >= 0.0 && raw.clear_margin_m.is_finite()) {
        cx.section("rules", "clear_margin_m", "must be zero or more metres");
    }
    if !(0..24).contains(&raw.day_start_hour) {
        cx.section("rules", "day_start_hour", "must be an hour from 0 to 23");
    }
    let time_zone = match jiff::tz::TimeZone::get(&raw.time_zone) {
        Ok(tz) => tz,
        Err(e) => {
            cx.section(
                "rules",
                "time_zone",
                format!("`{}` is not a known time zone: {e}", raw.time_zone),
            );
            jiff::tz::TimeZone::UTC
        }
    };
    RuleSettings {
        clear_margin_m: raw.clear_margin_m,
        pending: cx.duration(&raw.pending, |c, m| c.section("rules", "pending", m)),
        time_zone,
        time_zone_name: raw.time_zone.clone(),
        day_start_hour: raw.day_start_hour.clamp(0, 23) as u8,
        late_after: cx.duration(&raw.late_after, |c, m| c.section("rules", "late_after", m)),
    }
}

fn sl651(
    cx: &mut Ctx,
    raw: super::raw::RawSl651,
    rules: &RuleSettings,
    mqtt_topics: &[String],
) -> Sl651Settings {
    let listen = raw.listen.as_deref().and_then(|text| match text.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            cx.section(
                "sl651",
                "listen",
                format!("`{text}` is not an address like 0.0.0.0:5005"),
            );
            None
        }
    });
    if raw.listen.is_none() && raw.mqtt_topics.is_empty() {
        cx.section(
            "sl651",
            "listen",
            "set listen (TCP) or mqtt_topics (frames bridged over MQTT), or both",
        );
    }
    let time_zone = match &raw.time_zone {
        None => rules.time_zone.clone(),
        Some(name) => jiff::tz::TimeZone::get(name).unwrap_or_else(|e| {
            cx.section(
                "sl651",
                "time_zone",
                format!("`{name}` is not a known time zone: {e}"),
            );
            jiff::tz::TimeZone::UTC
        }),
    };
    let reply_end = match raw.reply_end.as_deref() {
        None => crate::sl651::ReplyEnd::Eot,
        Some(text) => text.parse().unwrap_or_else(|_| {
            cx.section(
                "sl651",
                "reply_end",
                format!("`{text}` is not \"eot\" or \"esc\""),
            );
            crate::sl651::ReplyEnd::Eot
        }),
    };
    let idle_timeout = match raw.idle_timeout.as_deref() {
        None => Duration::from_secs(600),
        Some(t) => cx.duration(t, |c, m| c.section("sl651", "idle_timeout", m)),
    };
    if idle_timeout.is_zero() {
        cx.section("sl651", "idle_timeout", "must be above zero");
    }
    for t in &raw.mqtt_topics {
        if mqtt_topics.contains(t) {
            cx.section(
                "sl651",
                "mqtt_topics",
                format!(
                    "`{t}` is also in mqtt.topics: a topic carries JSON or SL 651 frames, not both"
                ),
            );
        }
    }
    let max_connections = raw.max_connections.unwrap_or(20_000);
    if max_connections == 0 {
        cx.section("sl651", "max_connections", "must be at least 1");
    }
    let max_frame_bytes = raw
        .max_frame_bytes
        .unwrap_or(crate::sl651::stream::DEFAULT_MAX_FRAME);
    if max_frame_bytes < 64 {
        cx.section("sl651", "max_frame_bytes", "must be at least 64 bytes");
    }
    Sl651Settings {
        listen,
        time_zone,
        reply_end,
        idle_timeout,
        mqtt_topics: raw.mqtt_topics,
        max_connections,
        max_frame_bytes,
    }
}

fn language(text: Option<&str>) -> Result<Language, String> {
    match text.unwrap_or("zh") {
        "zh" | "zh-CN" | "chinese" => Ok(Language::Chinese),
        "en" | "english" => Ok(Language::English),
        other => Err(format!("`{other}` is not \"zh\" or \"en\"")),
    }
}

/// The people, each reference checked: unique ids, known superiors, no superior chain that
/// comes back to where it started.
fn people(cx: &mut Ctx, raw: Vec<super::raw::RawPerson>) -> Vec<Person> {
    let mut seen = HashSet::new();
    let mut out: Vec<Person> = Vec::new();
    for p in raw {
        if !valid_station_id(&p.id) {
            cx.person(
                &p.id,
                "id",
                "must be 1 to 64 characters of A-Z a-z 0-9 _ . -",
            );
        }
        if !seen.insert(p.id.clone()) {
            cx.person(&p.id, "id", "duplicate person id");
            continue;
        }
        if p.phone
            .as_deref()
            .is_some_and(|ph| phone_digits(ph).len() < 3)
        {
            cx.person(&p.id, "phone", "is not a phone number");
        }
        for platform in p.chat_ids.keys() {
            if !["wecom", "dingtalk", "feishu"].contains(&platform.as_str()) {
                cx.person(
                    &p.id,
                    &format!("chat_ids.{platform}"),
                    "is not one of wecom, dingtalk, feishu",
                );
            }
        }
        out.push(Person {
            name: p.name.unwrap_or_else(|| p.id.clone()),
            id: p.id,
            phone: p.phone,
            role: p.role,
            superior: p.superior,
            chat_ids: p.chat_ids.into_iter().collect(),
        });
    }
    let ids: HashSet<&str> = out.iter().map(|p| p.id.as_str()).collect();
    let mut reported_cycle: HashSet<String> = HashSet::new();
    for p in &out {
        let Some(boss) = &p.superior else { continue };
        if !ids.contains(boss.as_str()) {
            cx.person(&p.id, "superior", format!("unknown person `{boss}`"));
            continue;
        }
        // Follow the chain up; coming back to `p` is a cycle (reported once, at the first
        // person of it in the file).
        let mut chain = vec![p.id.clone()];
        let mut at = boss.clone();
        loop {
            if at == p.id {
                if chain.iter().all(|c| !reported_cycle.contains(c)) {
                    chain.push(at);
                    cx.person(
                        &p.id,
                        "superior",
                        format!(
                            "superiors go round in a circle ({}): the chain must end with someone who has no superior",
                            chain.join(" → ")
                        ),
                    );
                    reported_cycle.extend(chain);
                }
                break;
            }
            if chain.contains(&at) {
                break; // a cycle further up, reported from one of its own people
            }
            chain.push(at.clone());
            match out
                .iter()
                .find(|q| q.id == at)
                .and_then(|q| q.superior.clone())
            {
                Some(next) if ids.contains(next.as_str()) => at = next,
                _ => break,
            }
        }
    }
    out
}

fn team(cx: &mut Ctx, raw: RawTeam, team_ids: &HashSet<String>, people: &[Person]) -> Team {
    let id = raw.id.clone();
    let token = secret(
        raw.token,
        raw.token_file,
        "token",
        cx.origins.team(&id),
        &mut cx.problems,
    );
    let language = language(raw.language.as_deref()).unwrap_or_else(|m| {
        cx.team(&id, "language", m);
        Language::Chinese
    });
    let mut members: Vec<Member> = Vec::new();
    for (i, m) in raw.members.into_iter().enumerate() {
        match m {
            super::raw::RawMember::Person(pid) => match people.iter().find(|p| p.id == pid) {
                Some(p) => {
                    if members
                        .iter()
                        .any(|m| m.person.as_deref() == Some(pid.as_str()))
                    {
                        cx.team(
                            &id,
                            &format!("members[{i}]"),
                            format!("`{pid}` is listed twice"),
                        );
                    }
                    members.push(Member {
                        person: Some(pid),
                        name: p.name.clone(),
                        phone: p.phone.clone(),
                    });
                }
                None => cx.team(
                    &id,
                    &format!("members[{i}]"),
                    format!("unknown person `{pid}`: add it to [[people]]"),
                ),
            },
            super::raw::RawMember::Inline(m) => members.push(Member {
                person: None,
                name: m.name,
                phone: m.phone,
            }),
        }
    }
    let channels: Vec<Channel> = raw
        .channels
        .into_iter()
        .enumerate()
        .filter_map(|(i, c)| channel(cx, &id, i, c, language, &members))
        .collect();
    for (i, c) in channels.iter().enumerate() {
        if channels[..i].iter().any(|earlier| earlier.id == c.id) {
            cx.team(
                &id,
                &format!("channels[{i}].id"),
                format!(
                    "another channel of this team is also `{}`: give each an `id` of its own",
                    c.id
                ),
            );
        }
    }
    let escalation = raw
        .escalation
        .into_iter()
        .map(|e| {
            if !team_ids.contains(&e.team) {
                cx.team(&id, "escalation.team", format!("unknown team `{}`", e.team));
            }
            Escalation {
                after: cx.duration(&e.after, |c, m| c.team(&id, "escalation.after", m)),
                team: e.team,
                min_stage: e.min_stage,
            }
        })
        .collect();
    let renotify = raw
        .renotify
        .as_deref()
        .map(|t| cx.duration(t, |c, m| c.team(&id, "renotify", m)));
    let deadline = |cx: &mut Ctx, key: &str, text: &str| {
        let before = cx.problems.len();
        let d = cx.duration(text, |c, m| c.team(&id, key, m));
        if d.is_zero() && cx.problems.len() == before {
            cx.team(&id, key, "must be above zero");
        }
        d
    };
    let respond_within = raw.respond_within.map(|r| match r {
        super::raw::RawRespondWithin::Always(t) => RespondWithin {
            default: Some(deadline(cx, "respond_within", &t)),
            by_stage: Vec::new(),
        },
        super::raw::RawRespondWithin::ByStage(table) => {
            let mut out = RespondWithin {
                default: None,
                by_stage: Vec::new(),
            };
            for (stage, t) in table {
                let d = deadline(cx, &format!("respond_within.{stage}"), &t);
                match stage.as_str() {
                    "default" => out.default = Some(d),
                    _ => out.by_stage.push((stage, d)),
                }
            }
            out
        }
    });
    if respond_within.is_some() && members.is_empty() {
        cx.team(
            &id,
            "respond_within",
            "a deadline needs members to call: list them in `members`",
        );
    }
    Team {
        name: raw.name.unwrap_or_else(|| id.clone()),
        id,
        token,
        members,
        channels,
        escalation,
        renotify,
        respond_within,
        language,
        bulletin: raw.bulletin,
    }
}

fn channel(
    cx: &mut Ctx,
    team: &str,
    index: usize,
    mut raw: RawChannel,
    team_language: Language,
    members: &[Member],
) -> Option<Channel> {
    let key = |k: &str| format!("channels[{index}].{k}");
    let kind = match raw.kind.as_str() {
        "webhook" => ChannelKind::Webhook,
        "mqtt" => ChannelKind::Mqtt,
        "wecom" => ChannelKind::Wecom,
        "dingtalk" => ChannelKind::Dingtalk,
        "feishu" => ChannelKind::Feishu,
        "sms" => ChannelKind::Sms,
        "voice" => ChannelKind::Voice,
        other => {
            cx.team(
                team,
                &key("kind"),
                format!(
                    "`{other}` is not one of webhook, mqtt, wecom, dingtalk, feishu, sms, voice"
                ),
            );
            return None;
        }
    };
    let provider = if kind == ChannelKind::Voice {
        match raw.provider.as_deref() {
            Some("aliyun") => Some(VoiceProvider::Aliyun),
            Some("tencent") => Some(VoiceProvider::Tencent),
            Some("template") => Some(VoiceProvider::Template),
            Some(other) => {
                cx.team(
                    team,
                    &key("provider"),
                    format!("`{other}` is not one of aliyun, tencent, template"),
                );
                None
            }
            None => {
                cx.team(
                    team,
                    &key("provider"),
                    "a voice channel needs a provider: aliyun, tencent or template",
                );
                None
            }
        }
    } else {
        None
    };
    // The clouds' public endpoints, unless written (a proxy, a test double).
    let default_url = match provider {
        Some(VoiceProvider::Aliyun) => Some("https://dyvmsapi.aliyuncs.com/"),
        Some(VoiceProvider::Tencent) => Some("https://vms.tencentcloudapi.com/"),
        _ => None,
    };
    let url = match (raw.url.as_deref().or(default_url), kind) {
        (None, ChannelKind::Mqtt) => None,
        (None, _) => {
            cx.team(
                team,
                &key("url"),
                format!("a {} channel needs a url", raw.kind),
            );
            None
        }
        (Some(u), _) => match url::Url::parse(u) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            Ok(_) | Err(_) => {
                cx.team(team, &key("url"), format!("`{u}` is not an http(s) URL"));
                None
            }
        },
    };
    let has_secret = raw.secret.is_some() || raw.secret_file.is_some();
    let secret = secret(
        raw.secret.clone(),
        raw.secret_file.clone(),
        &key("secret"),
        cx.origins.team(team),
        &mut cx.problems,
    );
    let mut phones = std::mem::take(&mut raw.phones);
    let phone_kinds = [
        ChannelKind::Sms,
        ChannelKind::Voice,
        ChannelKind::Wecom,
        ChannelKind::Dingtalk,
    ];
    if phone_kinds.contains(&kind) && phones.is_empty() {
        phones = members.iter().filter_map(|m| m.phone.clone()).collect();
        if phones.is_empty() && matches!(kind, ChannelKind::Sms | ChannelKind::Voice) {
            cx.team(
                team,
                &key("phones"),
                format!(
                    "an {} channel needs phones, or members with a phone",
                    raw.kind
                ),
            );
        }
    }
    if raw.mention.is_some() && !matches!(kind, ChannelKind::Wecom | ChannelKind::Dingtalk) {
        cx.team(
            team,
            &key("mention"),
            "only wecom and dingtalk channels @mention phones",
        );
    }
    let voice =
        provider.map(|provider| voice_settings(cx, team, index, &raw, has_secret, provider));
    if kind != ChannelKind::Voice {
        let voice_only = [
            ("provider", raw.provider.is_some()),
            ("key_id", raw.key_id.is_some()),
            ("template", raw.template.is_some()),
            ("tts_params", !raw.tts_params.is_empty()),
            ("caller", raw.caller.is_some()),
            ("app_id", raw.app_id.is_some()),
            ("region", raw.region.is_some()),
            ("play_times", raw.play_times.is_some()),
            ("country_code", raw.country_code.is_some()),
            ("redial", raw.redial.is_some()),
        ];
        for (name, written) in voice_only {
            if written {
                cx.team(team, &key(name), "applies to voice channels only");
            }
        }
    }
    let timeout = match raw.timeout.as_deref() {
        None => Duration::from_secs(10),
        Some(t) => cx.duration(t, |c, m| c.team(team, &key("timeout"), m)),
    };
    let backoff = match raw.backoff.as_deref() {
        None => Duration::from_secs(1),
        Some(t) => cx.duration(t, |c, m| c.team(team, &key("backoff"), m)),
    };
    let give_up_after = match raw.give_up_after.as_deref() {
        None => Duration::from_secs(6 * 3600),
        Some(t) => cx.duration(t, |c, m| c.team(team, &key("give_up_after"), m)),
    };
    let id = match raw.id {
        Some(id) => {
            if !super::valid_channel_id(&id) {
                cx.team(
                    team,
                    &key("id"),
                    format!("`{id}` is not 1 to 64 of A-Z a-z 0-9 _ . : -"),
                );
            }
            id
        }
        None => Channel::derived_id(
            kind,
            url.as_ref(),
            match kind {
                ChannelKind::Mqtt => vec![raw.topic.as_deref(), raw.status_topic.as_deref()],
                _ => Vec::new(),
            }
            .as_slice(),
        ),
    };
    let written_zero = raw
        .timeout
        .as_deref()
        .is_some_and(|t| humantime::parse_duration(t).is_ok_and(|d| d.is_zero()));
    if written_zero {
        cx.team(team, &key("timeout"), "must be above zero");
    }
    if raw.rate_per_minute == Some(0) {
        cx.team(
            team,
            &key("rate_per_minute"),
            "must be at least 1 (leave it out for no limit)",
        );
    }
    let callback_key = self::secret(
        raw.callback_key.take(),
        raw.callback_key_file.take(),
        &key("callback_key"),
        cx.origins.team(team),
        &mut cx.problems,
    );
    if callback_key.as_deref().is_some_and(|k| k.len() < 16) {
        cx.team(
            team,
            &key("callback_key"),
            "must be at least 16 characters: it is all that authenticates a provider's callback",
        );
    }
    let confirm_digit = raw.confirm_digit.unwrap_or_else(|| "1".into());
    if !(confirm_digit.len() == 1
        && matches!(confirm_digit.as_bytes()[0], b'0'..=b'9' | b'*' | b'#'))
    {
        cx.team(
            team,
            &key("confirm_digit"),
            format!("`{confirm_digit}` is not one key of a phone's keypad (0-9, * or #)"),
        );
    }
    let language = match raw.language.as_deref() {
        None => team_language,
        Some(l) => language(Some(l)).unwrap_or_else(|m| {
            cx.team(team, &key("language"), m);
            team_language
        }),
    };
    Some(Channel {
        id,
        kind,
        url,
        secret,
        method: raw.method.unwrap_or_else(|| "POST".into()).to_uppercase(),
        body: raw.body,
        content_type: raw.content_type,
        phones,
        language,
        rate_per_minute: raw.rate_per_minute,
        topic: raw.topic,
        status_topic: raw.status_topic,
        timeout,
        backoff,
        give_up_after,
        headers: raw.headers.into_iter().collect(),
        confirm_digit,
        callback_key,
        mention: raw.mention.unwrap_or(true),
        voice,
    })
}

/// A voice channel's provider settings, each missing or malformed one a problem.
fn voice_settings(
    cx: &mut Ctx,
    team: &str,
    index: usize,
    raw: &RawChannel,
    has_secret: bool,
    provider: VoiceProvider,
) -> VoiceSettings {
    let key = |k: &str| format!("channels[{index}].{k}");
    let signed = matches!(provider, VoiceProvider::Aliyun | VoiceProvider::Tencent);
    if signed {
        let needs: [(&str, bool); 3] = [
            ("key_id", raw.key_id.is_some()),
            ("secret", has_secret),
            ("template", raw.template.is_some()),
        ];
        for (name, written) in needs {
            if !written {
                cx.team(
                    team,
                    &key(name),
                    format!("a {} voice channel needs {name}", provider.as_str()),
                );
            }
        }
    }
    if provider == VoiceProvider::Tencent && raw.app_id.is_none() {
        cx.team(
            team,
            &key("app_id"),
            "a tencent voice channel needs app_id (the VoiceSdkAppid)",
        );
    }
    if let Some(times) = raw.play_times {
        if !(1..=3).contains(&times) {
            cx.team(team, &key("play_times"), "must be 1, 2 or 3");
        }
    }
    let redial = match &raw.redial {
        None => Redial::default(),
        Some(r) => {
            if !(1..=10).contains(&r.attempts) {
                cx.team(
                    team,
                    &key("redial.attempts"),
                    "must be 1 to 10 calls (the first call included)",
                );
            }
            let spacing = cx.duration(&r.spacing, |c, m| c.team(team, &key("redial.spacing"), m));
            // Aliyun and Tencent both throttle calls to one number at about one a minute; a
            // gateway of one's own (a PBX, another platform) sets its own pace.
            let cloud = matches!(provider, VoiceProvider::Aliyun | VoiceProvider::Tencent);
            if cloud && spacing < Duration::from_secs(60) {
                cx.team(
                    team,
                    &key("redial.spacing"),
                    "must be at least 60s for aliyun and tencent: they refuse a second call to a number within a minute",
                );
            } else if spacing < Duration::from_secs(1) {
                cx.team(team, &key("redial.spacing"), "must be at least 1s");
            }
            Redial {
                attempts: r.attempts.clamp(1, 10),
                spacing,
            }
        }
    };
    let country_code = raw
        .country_code
        .clone()
        .unwrap_or_else(|| "86".into())
        .trim_start_matches('+')
        .to_string();
    if country_code.is_empty() || !country_code.bytes().all(|b| b.is_ascii_digit()) {
        cx.team(team, &key("country_code"), "must be digits, like 86");
    }
    VoiceSettings {
        provider,
        key_id: raw.key_id.clone(),
        template: raw.template.clone(),
        tts_params: raw
            .tts_params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        caller: raw.caller.clone(),
        app_id: raw.app_id.clone(),
        region: raw.region.clone().unwrap_or_else(|| "ap-guangzhou".into()),
        play_times: raw.play_times,
        country_code,
        redial,
    }
}

fn valid_station_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Orders the stages by a known vocabulary when every name belongs to it, else as written,
/// and checks that levels move in `direction` (+1 ascending, -1 descending).
fn ladder(
    cx: &mut Ctx,
    id: &str,
    key: &str,
    raw: &IndexMap<String, f64>,
    vocabularies: &[&[&str]],
    direction: f64,
) -> StageLadder {
    let mut stages: Vec<Stage> = raw
        .iter()
        .map(|(name, level)| Stage {
            name: name.clone(),
            level_m: *level,
        })
        .collect();
    for s in &stages {
        if !s.level_m.is_finite() {
            cx.station(id, &format!("{key}.{}", s.name), "level must be a number");
        }
    }
    if let Some(vocab) = vocabularies
        .iter()
        .find(|v| stages.iter().all(|s| v.contains(&s.name.as_str())))
    {
        stages.sort_by_key(|s| vocab.iter().position(|n| *n == s.name));
    }
    for pair in stages.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if (b.level_m - a.level_m) * direction <= 0.0 {
            let order = if direction > 0.0 { "ascend" } else { "descend" };
            cx.station(
                id,
                key,
                format!(
                    "stage levels must {order}: {} = {} then {} = {}",
                    a.name, a.level_m, b.name, b.level_m
                ),
            );
        }
    }
    StageLadder { stages }
}

fn rain_windows(cx: &mut Ctx, id: &str, raw: &IndexMap<String, f64>) -> Vec<RainWindow> {
    let mut out = Vec::new();
    for (label, threshold) in raw {
        let window = match humantime::parse_duration(label) {
            Ok(d) if d >= Duration::from_secs(60) => d,
            _ => {
                cx.station(
                    id,
                    &format!("rain.{label}"),
                    "window must be a duration of a minute or more, e.g. \"1h\", \"3h\", \"24h\"",
                );
                continue;
            }
        };
        if !(threshold.is_finite() && *threshold > 0.0) {
            cx.station(id, &format!("rain.{label}"), "threshold must be above 0 mm");
            continue;
        }
        out.push(RainWindow {
            label: label.clone(),
            window,
            threshold_mm: *threshold,
        });
    }
    out
}

/// Checks a list of rain levels: ids, windows of 10 minutes or more, amounts above zero, and
/// amounts that rise from level to level in every window two levels share.
fn rain_levels(cx: &mut Ctx, owner: &LevelsOwner, raw: &[RawRainLevel]) -> Vec<RainLevel> {
    let mut levels: Vec<RainLevel> = Vec::new();
    for (i, l) in raw.iter().enumerate() {
        if !valid_station_id(&l.level) {
            cx.levels(
                owner,
                &format!("[{i}].level"),
                format!(
                    "`{}` must be 1 to 64 characters of A-Z a-z 0-9 _ . - (e.g. \"prepare\")",
                    l.level
                ),
            );
        } else if levels.iter().any(|earlier| earlier.level == l.level) {
            cx.levels(
                owner,
                &format!("[{i}].level"),
                format!("level `{}` is listed twice", l.level),
            );
        }
        if l.windows.is_empty() {
            cx.levels(
                owner,
                &format!("[{i}].windows"),
                "a level needs at least one window, e.g. { \"1h\" = 35.0 }",
            );
        }
        let mut windows: Vec<RainWindow> = Vec::new();
        for (label, amount) in &l.windows {
            let key = format!("[{i}].windows.{label}");
            let window = match humantime::parse_duration(label) {
                Ok(d) if d >= SHORTEST_LEVEL_WINDOW => d,
                _ => {
                    cx.levels(
                        owner,
                        &key,
                        "window must be a duration of 10 minutes or more, e.g. \"10m\", \"1h\", \"24h\"",
                    );
                    continue;
                }
            };
            if !(amount.is_finite() && *amount > 0.0) {
                cx.levels(owner, &key, "amount must be above 0 mm");
                continue;
            }
            if let Some(same) = windows.iter().find(|w| w.window == window) {
                cx.levels(
                    owner,
                    &key,
                    format!("the same window as `{}` in this level", same.label),
                );
                continue;
            }
            // Levels are ordered least severe first: against the nearest earlier level that
            // has this window, the amount must be higher.
            let earlier = levels
                .iter()
                .rev()
                .find_map(|e| Some((e, e.windows.iter().find(|w| w.window == window)?)));
            if let Some((e, w)) = earlier {
                if *amount <= w.threshold_mm {
                    cx.levels(
                        owner,
                        &key,
                        format!(
                            "{amount} mm must be more than level `{}`'s {} mm for {}: levels \
                             are written least severe first",
                            e.level, w.threshold_mm, w.label
                        ),
                    );
                }
            }
            windows.push(RainWindow {
                label: label.clone(),
                window,
                threshold_mm: *amount,
            });
        }
        levels.push(RainLevel {
            level: l.level.clone(),
            name: l.name.clone().unwrap_or_else(|| l.level.clone()),
            windows,
        });
    }
    levels
}

/// The warning zones: known gauges, a team, and levels (their own or `rules.rain_levels`).
fn zones(
    cx: &mut Ctx,
    raw: Vec<RawZone>,
    stations: &[Station],
    team_ids: &HashSet<String>,
    default_levels: Option<&[RainLevel]>,
) -> Vec<Zone> {
    let mut out: Vec<Zone> = Vec::new();
    for z in raw {
        let id = z.id.clone();
        if !valid_station_id(&id) {
            cx.zone(&id, "id", "must be 1 to 64 characters of A-Z a-z 0-9 _ . -");
        }
        if out.iter().any(|earlier| earlier.place.id == id) {
            cx.zone(&id, "id", "duplicate zone id");
            continue;
        }
        if stations.iter().any(|s| s.id == id) {
            cx.zone(
                &id,
                "id",
                "is also a station's id: alerts name a zone as they name a station",
            );
        }
        if let Some(team) = &z.team {
            if !team_ids.contains(team) {
                cx.zone(&id, "team", format!("unknown team `{team}`"));
            }
        }
        if z.stations.is_empty() {
            cx.zone(
                &id,
                "stations",
                "a zone needs at least one station (its rain gauges)",
            );
        }
        let mut gauges: Vec<String> = Vec::new();
        for g in z.stations {
            if !stations.iter().any(|s| s.id == g) {
                cx.zone(&id, "stations", format!("unknown station `{g}`"));
            } else if gauges.contains(&g) {
                cx.zone(&id, "stations", format!("station `{g}` is listed twice"));
            } else {
                gauges.push(g);
            }
        }
        let levels = match (&z.rain_levels, default_levels) {
            (Some(raw), _) => rain_levels(cx, &LevelsOwner::Zone(id.clone()), raw),
            (None, Some(default)) => default.to_vec(),
            (None, None) => Vec::new(),
        };
        if levels.is_empty() {
            cx.zone(
                &id,
                "rain_levels",
                "a zone needs rain_levels (or rules.rain_levels)",
            );
        }
        let place = Station {
            name: z.name.unwrap_or_else(|| id.clone()),
            river: None,
            basin: None,
            team: z.team,
            interval: Duration::from_secs(300),
            stages: StageLadder::default(),
            drought: StageLadder::default(),
            rise_rate_m_per_h: None,
            level_range: None,
            max_step_m: None,
            rain: Vec::new(),
            rain_levels: levels,
            offline_after: Duration::ZERO,
            dry_spell: None,
            escalate: Vec::new(),
            maintenance: false,
            sl651_address: None,
            sl651_level: crate::sl651::LevelElement::Z,
            id,
        };
        out.push(Zone { place, gauges });
    }
    out
}

fn station(
    cx: &mut Ctx,
    raw: RawStation,
    team_ids: &HashSet<String>,
    default_rain: Option<&IndexMap<String, f64>>,
    default_dry: Option<&super::raw::RawDrySpell>,
    default_levels: Option<&[RainLevel]>,
) -> Station {
    let id = raw.id.clone();
    if !valid_station_id(&id) {
        cx.station(&id, "id", "must be 1 to 64 characters of A-Z a-z 0-9 _ . -");
    }
    if let Some(team) = &raw.team {
        if !team_ids.contains(team) {
            cx.station(&id, "team", format!("unknown team `{team}`"));
        }
    }
    let problems_before = cx.problems.len();
    let interval = match &raw.interval {
        Some(t) => cx.duration(t, |c, m| c.station(&id, "interval", m)),
        None => Duration::from_secs(300),
    };
    if interval.is_zero() && cx.problems.len() == problems_before {
        cx.station(&id, "interval", "must be above zero");
    }
    let stages = ladder(
        cx,
        &id,
        "stages",
        &raw.stages,
        &[&CHINESE_STAGES, &NWS_STAGES],
        1.0,
    );
    let drought = ladder(cx, &id, "drought", &raw.drought, &[&DROUGHT_LEVELS], -1.0);
    let level_range = match raw.level_range.as_deref() {
        None => None,
        Some([lo, hi]) if lo < hi => Some((*lo, *hi)),
        Some(_) => {
            cx.station(
                &id,
                "level_range",
                "must be [lowest, highest] with lowest < highest",
            );
            None
        }
    };
    if let Some(rate) = raw.rise_rate_m_per_h {
        if !(rate.is_finite() && rate > 0.0) {
            cx.station(&id, "rise_rate_m_per_h", "must be above 0");
        }
    }
    if let Some(step) = raw.max_step_m {
        if !(step.is_finite() && step > 0.0) {
            cx.station(&id, "max_step_m", "must be above 0");
        }
    }
    let rain = match raw.rain.as_ref().or(default_rain) {
        Some(r) => rain_windows(cx, &id, r),
        None => Vec::new(),
    };
    let rain_levels = match (&raw.rain_levels, default_levels) {
        (Some(raw), _) => rain_levels(cx, &LevelsOwner::Station(id.clone()), raw),
        (None, Some(default)) => default.to_vec(),
        (None, None) => Vec::new(),
    };
    let offline_after = match &raw.offline_after {
        Some(t) => cx.duration(t, |c, m| c.station(&id, "offline_after", m)),
        None => interval * 3,
    };
    let dry_spell = match (raw.dry_spell, default_dry) {
        (Some(false), _) | (None, None) => None,
        (_, Some(d)) => Some(DrySpell {
            dry_day_mm: d.dry_day_mm,
        }),
        (Some(true), None) => Some(DrySpell { dry_day_mm: 0.1 }),
    };
    let mut escalate = Vec::new();
    for (stage, teams) in &raw.escalate {
        match stages.position(stage) {
            Some(i) => escalate.push((i, teams.clone())),
            None => cx.station(&id, &format!("escalate.{stage}"), "no such stage"),
        }
        for t in teams {
            if !team_ids.contains(t) {
                cx.station(
                    &id,
                    &format!("escalate.{stage}"),
                    format!("unknown team `{t}`"),
                );
            }
        }
    }
    let sl651_address = raw.sl651_address.as_deref().and_then(|text| {
        text.parse::<crate::sl651::StationAddress>()
            .map_err(|e| cx.station(&id, "sl651_address", e.to_string()))
            .ok()
    });
    let sl651_level = match raw.sl651_level.as_deref() {
        None => crate::sl651::LevelElement::Z,
        Some(text) => text.parse().unwrap_or_else(|e: crate::sl651::Sl651Error| {
            cx.station(&id, "sl651_level", e.to_string());
            crate::sl651::LevelElement::Z
        }),
    };
    if raw.sl651_level.is_some() && sl651_address.is_none() && raw.sl651_address.is_none() {
        cx.station(
            &id,
            "sl651_level",
            "needs sl651_address (the station's RTU address)",
        );
    }
    Station {
        name: raw.name.unwrap_or_else(|| id.clone()),
        river: raw.river,
        basin: raw.basin,
        team: raw.team,
        interval,
        stages,
        drought,
        rise_rate_m_per_h: raw.rise_rate_m_per_h,
        level_range,
        max_step_m: raw.max_step_m,
        rain,
        rain_levels,
        offline_after,
        dry_spell,
        escalate,
        maintenance: raw.maintenance.unwrap_or(false),
        sl651_address,
        sl651_level,
        id,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_from_str;

    const TEAM: &str = "[[teams]]\nid = \"east\"\n";

    fn channel(lines: &str) -> String {
        format!("  [[teams.channels]]\n{lines}\n")
    }

    #[test]
    fn channel_ids_are_derived_without_the_url_secret_and_stable() {
        let text = format!(
            "{TEAM}{}{}",
            channel("  kind = \"wecom\"\n  url = \"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=SECRET-KEY\""),
            channel("  kind = \"mqtt\"\n  give_up_after = \"30m\"")
        );
        let settings = load_from_str(&text).expect("valid");
        let wecom = &settings.teams[0].channels[0];
        assert!(
            wecom.id.starts_with("wecom-qyapi.weixin.qq.com-"),
            "{}",
            wecom.id
        );
        assert!(!wecom.id.contains("SECRET"), "{}", wecom.id);
        assert_eq!(
            wecom.give_up_after,
            std::time::Duration::from_secs(6 * 3600)
        );
        let mqtt = &settings.teams[0].channels[1];
        assert!(mqtt.id.starts_with("mqtt-"), "{}", mqtt.id);
        assert_eq!(mqtt.give_up_after, std::time::Duration::from_secs(1800));
        // Same configuration, same ids: what the outbox relies on across restarts.
        let again = load_from_str(&text).expect("valid");
        assert_eq!(again.teams[0].channels[0].id, wecom.id);
    }

    #[test]
    fn channel_ids_must_be_unique_in_a_team_and_well_formed() {
        let hook = channel("  kind = \"webhook\"\n  url = \"http://127.0.0.1:9/hook\"");
        let problems = load_from_str(&format!("{TEAM}{hook}{hook}"))
            .expect_err("two identical channels")
            .to_string();
        assert!(problems.contains("channels[1].id"), "{problems}");
        let named = |id: &str| {
            channel(&format!(
                "  id = \"{id}\"\n  kind = \"webhook\"\n  url = \"http://127.0.0.1:9/hook\""
            ))
        };
        assert!(load_from_str(&format!("{TEAM}{hook}{}", named("duty-officer"))).is_ok());
        let problems = load_from_str(&format!("{TEAM}{}", named("a/b")))
            .expect_err("a slash")
            .to_string();
        assert!(problems.contains("channels[0].id"), "{problems}");
    }

    const TWO_TIER: &str = r#"rain_levels = [
  { level = "prepare", name = "准备转移", windows = { "1h" = 35.0, "3h" = 55.0, "6h" = 70.0 } },
  { level = "evacuate", name = "立即转移", windows = { "1h" = 45.0, "3h" = 75.0, "6h" = 95.0 } },
]"#;

    #[test]
    fn rain_levels_are_read_in_order_with_their_windows() {
        let text = format!("[[stations]]\nid = \"p01\"\n{TWO_TIER}\n");
        let settings = load_from_str(&text).expect("valid");
        let levels = &settings.stations[0].rain_levels;
        let ids: Vec<&str> = levels.iter().map(|l| l.level.as_str()).collect();
        assert_eq!(ids, ["prepare", "evacuate"]);
        assert_eq!(levels[1].name, "立即转移");
        let windows: Vec<(&str, u64, f64)> = levels[1]
            .windows
            .iter()
            .map(|w| (w.label.as_str(), w.window.as_secs(), w.threshold_mm))
            .collect();
        assert_eq!(
            windows,
            [("1h", 3600, 45.0), ("3h", 10800, 75.0), ("6h", 21600, 95.0)]
        );
        assert_eq!(
            settings.widest_rain_window(),
            std::time::Duration::from_secs(6 * 3600)
        );
    }

    #[test]
    fn the_four_colour_scheme_is_a_county_default() {
        let text = r#"
[rules]
rain_levels = [
  { level = "blue", name = "蓝色预警", windows = { "1h" = 35, "3h" = 55, "6h" = 70, "24h" = 100 } },
  { level = "yellow", name = "黄色预警", windows = { "1h" = 45, "3h" = 75, "6h" = 95, "24h" = 130 } },
  { level = "orange", name = "橙色预警", windows = { "1h" = 60, "3h" = 100, "6h" = 120, "24h" = 160 } },
  { level = "red", name = "红色预警", windows = { "1h" = 80, "3h" = 120, "6h" = 150, "24h" = 200 } },
]

[[stations]]
id = "p01"

[[stations]]
id = "p02"
rain_levels = []
"#;
        let settings = load_from_str(text).expect("valid");
        let p01 = &settings.stations[0].rain_levels;
        assert_eq!(p01.len(), 4);
        assert_eq!(p01[3].windows[3].threshold_mm, 200.0);
        assert!(
            settings.stations[1].rain_levels.is_empty(),
            "a station opts out"
        );
        assert_eq!(
            settings.widest_rain_window(),
            std::time::Duration::from_secs(24 * 3600)
        );
    }

    #[test]
    fn bad_rain_levels_name_their_key() {
        let text = r#"
[[stations]]
id = "p01"
rain_levels = [
  { level = "prepare", windows = { "1h" = 35.0, "5m" = 10.0, "3h" = 0.0, "abc" = 3.0 } },
  { level = "prepare", windows = { "1h" = 30.0, "60m" = 50.0 } },
  { level = "evacuate", windows = {} },
]
"#;
        let problems = load_from_str(text).expect_err("invalid").to_string();
        for expected in [
            "stations[p01].rain_levels[0].windows.5m: window must be a duration of 10 minutes",
            "stations[p01].rain_levels[0].windows.abc: window must be",
            "stations[p01].rain_levels[0].windows.3h: amount must be above 0 mm",
            "stations[p01].rain_levels[1].level: level `prepare` is listed twice",
            "stations[p01].rain_levels[1].windows.1h: 30 mm must be more than level `prepare`'s 35 mm for 1h",
            "stations[p01].rain_levels[1].windows.60m: the same window as `1h`",
            "stations[p01].rain_levels[2].windows: a level needs at least one window",
        ] {
            assert!(problems.contains(expected), "{expected}\nin:\n{problems}");
        }
        // Levels compare against the nearest earlier level with the window, not only the
        // one just before.
        let text = r#"
[rules]
rain_levels = [
  { level = "blue", windows = { "1h" = 35.0 } },
  { level = "yellow", windows = { "3h" = 75.0 } },
  { level = "orange", windows = { "1h" = 35.0, "3h" = 100.0 } },
]
"#;
        let problems = load_from_str(text).expect_err("invalid").to_string();
        assert!(
            problems.contains(
                "rules.rain_levels[2].windows.1h: 35 mm must be more than level `blue`'s 35 mm"
            ),
            "{problems}"
        );
        assert!(!problems.contains("windows.3h"), "{problems}");
    }

    #[test]
    fn zones_take_known_gauges_a_team_and_levels() {
        let text = format!(
            r#"{TEAM}
[rules]
{TWO_TIER}

[[stations]]
id = "p01"

[[stations]]
id = "p02"

[[zones]]
id = "v01"
name = "山口村"
team = "east"
stations = ["p01", "p02"]
"#
        );
        let settings = load_from_str(&text).expect("valid");
        let zone = &settings.zones[0];
        assert_eq!(zone.gauges, ["p01", "p02"]);
        assert_eq!(zone.place.rain_levels.len(), 2, "the county default");
        let place = settings.place("v01").expect("a zone is a place");
        assert_eq!(
            (place.name.as_str(), place.team.as_deref()),
            ("山口村", Some("east"))
        );
        assert!(settings.station("v01").is_none(), "but not a station");

        let text = r#"
[[stations]]
id = "p01"

[[zones]]
id = "p01"
team = "nobody"
stations = ["p01", "p07", "p01"]

[[zones]]
id = "v02"
stations = []
rain_levels = [{ level = "prepare", windows = { "1h" = -1.0 } }]
"#;
        let problems = load_from_str(text).expect_err("invalid").to_string();
        for expected in [
            "zones[p01].id: is also a station's id",
            "zones[p01].team: unknown team `nobody`",
            "zones[p01].stations: unknown station `p07`",
            "zones[p01].stations: station `p01` is listed twice",
            "zones[p01].rain_levels: a zone needs rain_levels (or rules.rain_levels)",
            "zones[v02].stations: a zone needs at least one station",
            "zones[v02].rain_levels[0].windows.1h: amount must be above 0 mm",
        ] {
            assert!(problems.contains(expected), "{expected}\nin:\n{problems}");
        }
    }

    const MEMBERS: &str =
        "[[teams]]\nid = \"east\"\nmembers = [{ name = \"王\", phone = \"13800000001\" }]\n";

    #[test]
    fn voice_channels_take_provider_settings_and_member_phones() {
        let text = format!(
            "{MEMBERS}{}",
            channel(
                "  kind = \"voice\"\n  provider = \"tencent\"\n  key_id = \"AKID\"\n  secret = \"s\"\n  template = \"4356\"\n  app_id = \"1400006666\"\n  redial = { attempts = 3, spacing = \"90s\" }"
            )
        );
        let settings = load_from_str(&text).expect("valid");
        let voice = &settings.teams[0].channels[0];
        assert_eq!(voice.phones, vec!["13800000001".to_string()]);
        assert_eq!(
            voice.url.as_ref().map(|u| u.as_str()),
            Some("https://vms.tencentcloudapi.com/")
        );
        let v = voice.voice.as_ref().expect("voice settings");
        assert_eq!(v.redial.attempts, 3);
        assert_eq!(v.redial.spacing, std::time::Duration::from_secs(90));
        assert_eq!(v.region, "ap-guangzhou");
    }

    #[test]
    fn voice_channel_problems_name_their_keys() {
        let bad = |lines: &str| {
            load_from_str(&format!("{MEMBERS}{}", channel(lines)))
                .expect_err("invalid")
                .to_string()
        };
        let problems = bad("  kind = \"voice\"");
        assert!(problems.contains("channels[0].provider"), "{problems}");
        let problems = bad("  kind = \"voice\"\n  provider = \"aliyun\"");
        for key in [
            "channels[0].key_id",
            "channels[0].secret",
            "channels[0].template",
        ] {
            assert!(problems.contains(key), "{key}: {problems}");
        }
        let problems = bad("  kind = \"voice\"\n  provider = \"tencent\"\n  key_id = \"k\"\n  secret = \"s\"\n  template = \"1\"");
        assert!(problems.contains("channels[0].app_id"), "{problems}");
        let problems = bad("  kind = \"voice\"\n  provider = \"template\"\n  url = \"http://127.0.0.1:9/call\"\n  redial = { attempts = 0, spacing = \"500ms\" }");
        assert!(
            problems.contains("channels[0].redial.attempts"),
            "{problems}"
        );
        assert!(
            problems.contains("channels[0].redial.spacing"),
            "{problems}"
        );
        // The clouds refuse a second call within a minute; a gateway of one's own may not.
        let problems = bad("  kind = \"voice\"\n  provider = \"aliyun\"\n  key_id = \"k\"\n  secret = \"s\"\n  template = \"T\"\n  redial = { attempts = 3, spacing = \"30s\" }");
        assert!(
            problems.contains("channels[0].redial.spacing") && problems.contains("60s"),
            "{problems}"
        );
        let gateway = load_from_str(&format!(
            "{TEAM}{}",
            channel("  kind = \"voice\"\n  provider = \"template\"\n  url = \"http://127.0.0.1:9/call\"\n  phones = [\"13800000001\"]\n  redial = { attempts = 3, spacing = \"1s\" }")
        ))
        .expect("a template gateway may redial after a second");
        let redial = &gateway.teams[0].channels[0].voice.as_ref().unwrap().redial;
        assert_eq!(redial.spacing, std::time::Duration::from_secs(1));
        let problems = bad("  kind = \"voice\"\n  provider = \"template\"\n  url = \"http://127.0.0.1:9/call\"\n  redial = { attempts = 2, spacing = \"soon\" }");
        assert!(
            problems.contains("channels[0].redial.spacing"),
            "{problems}"
        );
        let problems = bad("  kind = \"voice\"\n  provider = \"telegraph\"");
        assert!(problems.contains("channels[0].provider"), "{problems}");
        let problems = bad("  kind = \"webhook\"\n  url = \"http://127.0.0.1:9/h\"\n  redial = { attempts = 2, spacing = \"90s\" }");
        assert!(problems.contains("channels[0].redial"), "{problems}");
        let no_phones = load_from_str(&format!(
            "{TEAM}{}",
            channel("  kind = \"voice\"\n  provider = \"template\"\n  url = \"http://127.0.0.1:9/call\"")
        ))
        .expect_err("nobody to call")
        .to_string();
        assert!(no_phones.contains("channels[0].phones"), "{no_phones}");
    }
}
