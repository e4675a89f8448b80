//! The configuration exactly as written in TOML, before validation.
//!
//! These structs only describe shape; every range, order and cross-reference check lives in
//! `validate.rs`, which turns them into the typed values in `mod.rs`.

use indexmap::IndexMap;
use serde::Deserialize;

/// Built-in defaults, the first layer under every configuration file.
pub const DEFAULTS: &str = r#"
[mqtt]
url = "mqtt://127.0.0.1:1883"
client_id = "hydrowatch-1"
topics = ["hydro/+/data"]
keep_alive = "30s"

[journal]
path = "var/hydrowatch.db"
retention = "30d"
max_wal_bytes = 67108864

[http]
listen = "127.0.0.1:8080"

[rules]
clear_margin_m = 0.05
pending = "0s"
time_zone = "Asia/Shanghai"
day_start_hour = 8
late_after = "1h"

[limits]
max_payload_bytes = 1048576
max_readings_per_message = 10000
future_tolerance = "5m"
max_dead_letters = 100000
"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub mqtt: RawMqtt,
    pub influxdb: Option<RawInflux>,
    pub journal: RawJournal,
    pub http: RawHttp,
    #[serde(default)]
    pub broker: RawBroker,
    pub rules: RawRules,
    pub limits: RawLimits,
    /// The SL 651 telemetry centre; absent: no TCP listener.
    pub sl651: Option<RawSl651>,
    #[serde(default)]
    pub catalog: Vec<String>,
    #[serde(default)]
    pub people: Vec<RawPerson>,
    #[serde(default)]
    pub teams: Vec<RawTeam>,
    #[serde(default)]
    pub stations: Vec<RawStation>,
    #[serde(default)]
    pub zones: Vec<RawZone>,
}

/// A named person (`[[people]]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPerson {
    pub id: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub role: Option<String>,
    pub superior: Option<String>,
    /// Chat user ids by platform: `{ wecom = "WangDa", dingtalk = "..." }`.
    #[serde(default)]
    pub chat_ids: IndexMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    pub url: String,
    pub client_id: String,
    pub topics: Vec<String>,
    pub keep_alive: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub ca_file: Option<String>,
    /// Topic prefix on which apps acknowledge alerts: `{ack_topic}/{alert_id}`.
    pub ack_topic: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInflux {
    pub url: String,
    #[serde(default = "default_api")]
    pub api: String,
    pub database: Option<String>,
    pub retention_policy: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<String>,
    pub org: Option<String>,
    pub bucket: Option<String>,
    pub batch_size: Option<usize>,
    pub flush_interval: Option<String>,
    /// Longest one write may take before it counts as failed.
    pub timeout: Option<String>,
}

fn default_api() -> String {
    "v1".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJournal {
    pub path: String,
    pub retention: String,
    pub max_wal_bytes: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub listen: String,
    /// Bearer token for reads; unset means reads are open (office network).
    pub read_token: Option<String>,
    pub read_token_file: Option<String>,
    /// Base URL people use to reach the board, for acknowledgement links in messages.
    pub public_url: Option<String>,
    /// Accept the read token in `?token=` as well (old board links; it lands in logs).
    pub legacy_query_token: Option<bool>,
    /// `/metrics` needs the read token too.
    pub metrics_need_token: Option<bool>,
    /// Most `/api/v1/events` streams open at once; more are answered 503.
    pub max_event_streams: Option<usize>,
    /// Live updates held for a slow event stream before it is told to `resync`.
    pub event_buffer: Option<usize>,
    /// Failed acknowledgements or logins (401/403) from one address before 429.
    pub max_failed_auth: Option<u32>,
    /// The window those failures are counted in.
    pub failed_auth_window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBroker {
    #[serde(default)]
    pub embedded: bool,
    pub listen: Option<String>,
    /// One user, written inline; `users` holds more.
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    #[serde(default)]
    pub users: Vec<RawBrokerUser>,
    /// A TLS listener in front of the broker (`tls_cert_file`, `tls_key_file`: PEM).
    pub tls_listen: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
}

/// A user of the embedded broker.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBrokerUser {
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRules {
    pub clear_margin_m: f64,
    pub pending: String,
    pub time_zone: String,
    pub day_start_hour: i64,
    pub late_after: String,
    /// Default rain windows for every station that reports rain.
    pub rain: Option<IndexMap<String, f64>>,
    /// Default rain warning levels for every station that does not write its own.
    pub rain_levels: Option<Vec<RawRainLevel>>,
    pub dry_spell: Option<RawDrySpell>,
}

/// One rain warning level: `{ level = "prepare", name = "准备转移", windows = { "1h" = 35.0 } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRainLevel {
    pub level: String,
    pub name: Option<String>,
    #[serde(default)]
    pub windows: IndexMap<String, f64>,
}

/// A warning zone (`[[zones]]`): a village judged on several rain gauges.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    pub id: String,
    pub name: Option<String>,
    pub team: Option<String>,
    #[serde(default)]
    pub stations: Vec<String>,
    /// Default: `rules.rain_levels`.
    pub rain_levels: Option<Vec<RawRainLevel>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDrySpell {
    /// A hydrological day with less rain than this counts as dry.
    #[serde(default = "default_dry_day_mm")]
    pub dry_day_mm: f64,
}

fn default_dry_day_mm() -> f64 {
    0.1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_payload_bytes: usize,
    pub max_readings_per_message: usize,
    pub future_tolerance: String,
    pub max_dead_letters: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSl651 {
    /// TCP address RTUs connect to; optional when frames only arrive over MQTT.
    pub listen: Option<String>,
    /// Zone of the RTUs' clocks (default: `rules.time_zone`).
    pub time_zone: Option<String>,
    /// `eot` or `esc`: the end byte of answers to complete reports.
    pub reply_end: Option<String>,
    pub idle_timeout: Option<String>,
    #[serde(default)]
    pub mqtt_topics: Vec<String>,
    pub max_connections: Option<usize>,
    /// Largest frame accepted, bytes (default: the 12-bit length's maximum with framing).
    pub max_frame_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTeam {
    pub id: String,
    pub name: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<String>,
    #[serde(default)]
    pub members: Vec<RawMember>,
    #[serde(default)]
    pub channels: Vec<RawChannel>,
    #[serde(default)]
    pub escalation: Vec<RawEscalation>,
    pub renotify: Option<String>,
    /// 叫应 deadline for an acknowledgement of a page: `"5m"`, or
    /// `{ default = "10m", guaranteed = "3m" }` (from a flood stage up).
    pub respond_within: Option<RawRespondWithin>,
    pub language: Option<String>,
    /// Send the daily bulletin (水雨情日报) to this team's chat channels.
    #[serde(default)]
    pub bulletin: bool,
}

/// A deadline for every alert, or per flood stage.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawRespondWithin {
    Always(String),
    ByStage(IndexMap<String, String>),
}

/// A team member: a person's id, or an inline table.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawMember {
    Person(String),
    Inline(RawInlineMember),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInlineMember {
    pub name: String,
    pub phone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChannel {
    /// The channel's identity in the outbox (default: derived from kind and URL or topic).
    pub id: Option<String>,
    pub kind: String,
    pub url: Option<String>,
    pub secret: Option<String>,
    pub secret_file: Option<String>,
    pub method: Option<String>,
    pub body: Option<String>,
    pub content_type: Option<String>,
    #[serde(default)]
    pub phones: Vec<String>,
    pub language: Option<String>,
    pub rate_per_minute: Option<u32>,
    pub topic: Option<String>,
    /// MQTT channel: retained per-station status topic prefix (default `hydro/status`).
    pub status_topic: Option<String>,
    /// How long one attempt may take (default 10s).
    pub timeout: Option<String>,
    /// First retry delay, doubled per failed attempt up to a minute (default 1s).
    pub backoff: Option<String>,
    /// How long a notification that keeps failing transiently is retried (default 6h).
    pub give_up_after: Option<String>,
    /// Extra HTTP headers (an SMS gateway's API key, for instance).
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// The key that confirms a call in a provider's callback (default "1").
    pub confirm_digit: Option<String>,
    /// A random key the provider puts in the callback URL (`?key=`), for voice and SMS
    /// platforms that cannot sign their callbacks.
    pub callback_key: Option<String>,
    pub callback_key_file: Option<String>,
    /// Voice channel: `aliyun`, `tencent` or `template` (an HTTP gateway like `sms`).
    pub provider: Option<String>,
    /// Voice channel: the AccessKey ID (Aliyun) or SecretId (Tencent); `secret` is its secret.
    pub key_id: Option<String>,
    /// Voice channel: the TTS template (Aliyun TtsCode, Tencent TemplateId).
    pub template: Option<String>,
    /// Voice channel: the template's variables, each a text with placeholders. Aliyun: sent
    /// as the TtsParam object; Tencent: the values in written order ({1}, {2}, ...).
    #[serde(default)]
    pub tts_params: IndexMap<String, String>,
    /// Voice channel: the number shown to the callee (Aliyun CalledShowNumber).
    pub caller: Option<String>,
    /// Voice channel: Tencent's VoiceSdkAppid.
    pub app_id: Option<String>,
    /// Voice channel: Tencent's region (default ap-guangzhou).
    pub region: Option<String>,
    /// Voice channel: how often the message is played in one call (1 to 3).
    pub play_times: Option<u32>,
    /// Voice channel: the country code put before numbers written without `+` (default 86).
    pub country_code: Option<String>,
    /// Voice channel: calls again when a call is not answered.
    pub redial: Option<RawRedial>,
    /// Chat channels: @mention the team's phones on pages that need an answer (default true).
    pub mention: Option<bool>,
}

/// `redial = { attempts = 3, spacing = "90s" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedial {
    /// Calls in all, the first included.
    pub attempts: u32,
    /// The wait between an unanswered call's result and the next call.
    pub spacing: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEscalation {
    pub after: String,
    pub team: String,
    pub min_stage: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStation {
    pub id: String,
    pub name: Option<String>,
    pub river: Option<String>,
    pub basin: Option<String>,
    pub team: Option<String>,
    pub interval: Option<String>,
    #[serde(default)]
    pub stages: IndexMap<String, f64>,
    #[serde(default)]
    pub drought: IndexMap<String, f64>,
    pub rise_rate_m_per_h: Option<f64>,
    pub level_range: Option<Vec<f64>>,
    pub max_step_m: Option<f64>,
    pub rain: Option<IndexMap<String, f64>>,
    /// Rain warning levels, least severe first (default: `rules.rain_levels`).
    pub rain_levels: Option<Vec<RawRainLevel>>,
    pub offline_after: Option<String>,
    pub dry_spell: Option<bool>,
    /// Extra teams paged from this stage upward, e.g. the county command at `guaranteed`.
    #[serde(default)]
    pub escalate: IndexMap<String, Vec<String>>,
    pub maintenance: Option<bool>,
    /// The station's SL 651 address, 10 hex digits.
    pub sl651_address: Option<String>,
    /// Which SL 651 element is the level: Z, ZU or ZB (default Z).
    pub sl651_level: Option<String>,
}

/// A separate station catalogue file (`catalog = [...]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCatalog {
    #[serde(default)]
    pub stations: Vec<RawStation>,
}
