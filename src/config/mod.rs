//! Configuration: layered loading (defaults, files, `HYDROWATCH__SECTION__KEY` environment),
//! validation that names the file, the station or team and the key of every problem, and the
//! typed values the rest of hydrowatch works with.
//!
//! A station's stages are parsed and checked once, here; rules receive a [`Station`] whose
//! [`StageLadder`] is already known to be in order.

mod load;
mod problem;
mod raw;
mod sl323;
mod validate;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

pub use load::{load, load_from_str};
pub use problem::{Problem, Problems};

/// Everything `hydrowatch run` needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mqtt: MqttSettings,
    pub influxdb: Option<InfluxSettings>,
    pub journal: JournalSettings,
    pub http: HttpSettings,
    pub broker: BrokerSettings,
    pub rules: RuleSettings,
    pub limits: Limits,
    /// The SL 651 telemetry centre, when configured.
    pub sl651: Option<Sl651Settings>,
    /// The named people alerts reach (叫应), with their superiors.
    pub people: Vec<Person>,
    pub teams: Vec<Team>,
    pub stations: Vec<Station>,
    /// Warning zones (villages) judged on several rain gauges.
    pub zones: Vec<Zone>,
    /// Station id → index into `stations`, built on the first [`Settings::station`] lookup
    /// (the writer's tick looks up the station of every open alert, every two seconds).
    station_ids: std::sync::OnceLock<HashMap<String, usize>>,
}

impl Settings {
    /// Looks a person up by id.
    pub fn person(&self, id: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.id == id)
    }

    /// The person whose phone this is (digits compared, so `+86 138-0000-0001` matches
    /// `13800000001`).
    pub fn person_by_phone(&self, phone: &str) -> Option<&Person> {
        let wanted = phone_digits(phone);
        if wanted.is_empty() {
            return None;
        }
        self.people.iter().find(|p| {
            p.phone
                .as_deref()
                .is_some_and(|own| same_phone(&phone_digits(own), &wanted))
        })
    }

    /// Looks a station up by id.
    pub fn station(&self, id: &str) -> Option<&Station> {
        let index = self.station_ids.get_or_init(|| {
            let mut index = HashMap::with_capacity(self.stations.len());
            for (i, s) in self.stations.iter().enumerate() {
                index.entry(s.id.clone()).or_insert(i);
            }
            index
        });
        match index.get(id).and_then(|&i| self.stations.get(i)) {
            Some(s) if s.id == id => Some(s),
            // Not a station (a zone), or `stations` changed after the index was built.
            _ => self.stations.iter().find(|s| s.id == id),
        }
    }

    /// What an alert's `station` names: a station, or a warning zone (addressed like a
    /// station: its id, name and team; see [`Zone::place`]). Notifications route by this.
    pub fn place(&self, id: &str) -> Option<&Station> {
        self.station(id).or_else(|| {
            self.zones
                .iter()
                .find(|z| z.place.id == id)
                .map(|z| &z.place)
        })
    }

    /// The widest rain window any rule looks at: how much rain history the rules need.
    pub fn widest_rain_window(&self) -> Duration {
        let stations = self.stations.iter().map(Station::widest_rain_window);
        let zones = self.zones.iter().map(|z| z.place.widest_rain_window());
        stations.chain(zones).max().unwrap_or(Duration::ZERO)
    }

    /// Looks a team up by id.
    pub fn team(&self, id: &str) -> Option<&Team> {
        self.teams.iter().find(|t| t.id == id)
    }

    /// Station id → index into `stations`, for hot-path lookups.
    pub fn station_index(&self) -> HashMap<String, usize> {
        self.stations
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect()
    }
}

/// The MQTT connection the gauges publish to.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub client_id: String,
    pub topics: Vec<String>,
    pub keep_alive: Duration,
    pub username: Option<String>,
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub ack_topic: Option<String>,
}

/// Which InfluxDB write API to speak.
#[derive(Debug, Clone, PartialEq)]
pub enum InfluxApi {
    /// `/write?db=` (InfluxDB 1.x and the 2.x/3.x compatibility API).
    V1 {
        database: String,
        retention_policy: Option<String>,
        username: Option<String>,
        password: Option<String>,
    },
    /// `/api/v2/write` with org and bucket.
    V2 { org: String, bucket: String },
}

/// Where readings are forwarded for dashboards.
#[derive(Debug, Clone)]
pub struct InfluxSettings {
    pub url: url::Url,
    pub api: InfluxApi,
    pub token: Option<String>,
    pub batch_size: usize,
    pub flush_interval: Duration,
    /// Longest one write may take (a hung server counts as down, not as slow).
    pub timeout: Duration,
}

/// The embedded store.
#[derive(Debug, Clone)]
pub struct JournalSettings {
    pub path: PathBuf,
    /// Forwarded readings older than this are deleted; unforwarded ones never are.
    pub retention: Duration,
    /// The write-ahead log is checkpointed and truncated when it grows past this.
    pub max_wal_bytes: u64,
}

/// The HTTP listener (API, metrics, board).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: String,
    pub read_token: Option<String>,
    pub public_url: Option<String>,
    /// Also accept the read token as `?token=` (off by default: URLs land in logs).
    pub legacy_query_token: bool,
    /// `/metrics` needs the read token (when one is set).
    pub metrics_need_token: bool,
    /// Most event streams open at once.
    pub max_event_streams: usize,
    /// Live updates a slow event stream may fall behind by before it gets `resync`.
    pub event_buffer: usize,
    /// Failed token checks from one address within `failed_auth_window` before 429.
    pub max_failed_auth: u32,
    pub failed_auth_window: Duration,
}

/// The embedded MQTT broker.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    pub embedded: bool,
    /// The plain MQTT listener.
    pub listen: String,
    /// Who may connect; empty means anyone (allowed on loopback only).
    pub users: Vec<BrokerUser>,
    /// A TLS listener in front of the plain one.
    pub tls: Option<BrokerTls>,
}

/// A username and password the embedded broker accepts.
#[derive(Clone)]
pub struct BrokerUser {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for BrokerUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerUser")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The embedded broker's TLS listener: a certificate chain and its key, PEM files.
#[derive(Debug, Clone)]
pub struct BrokerTls {
    pub listen: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Whether two secrets are equal, in time that depends on neither: both are hashed first, so
/// not even a length is compared early, then the digests are compared in constant time.
pub fn same_secret(presented: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

/// Settings shared by every station's rules.
#[derive(Debug, Clone)]
pub struct RuleSettings {
    /// Hysteresis: an alert falls back only this far below its stage.
    pub clear_margin_m: f64,
    /// How long a condition must hold before it fires.
    pub pending: Duration,
    /// For naive timestamps and the hydrological day.
    pub time_zone: jiff::tz::TimeZone,
    /// Name of that zone as configured, for display.
    pub time_zone_name: String,
    /// The hour the hydrological day starts (08:00 in China).
    pub day_start_hour: u8,
    /// Events observed longer ago than this are marked `late`.
    pub late_after: Duration,
}

/// Limits on incoming messages.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_payload_bytes: usize,
    pub max_readings_per_message: usize,
    pub future_tolerance: Duration,
    /// The newest this many dead letters are kept; older ones are deleted first.
    pub max_dead_letters: usize,
}

impl Limits {
    /// The largest MQTT packet hydrowatch accepts from the broker: four times the payload
    /// limit, so that a message too large to decode still arrives and becomes a `too_large`
    /// dead letter instead of breaking the connection. Brokers in front of hydrowatch must
    /// cap packets at or below this (`max_packet_size` in Mosquitto; the embedded broker
    /// does so itself).
    pub fn max_packet_bytes(&self) -> usize {
        self.max_payload_bytes.saturating_mul(4)
    }
}

/// The SL 651 telemetry centre (`[sl651]`).
#[derive(Debug, Clone)]
pub struct Sl651Settings {
    /// TCP address RTUs connect to; `None` when frames only arrive bridged over MQTT.
    pub listen: Option<std::net::SocketAddr>,
    /// Zone of the RTUs' clocks.
    pub time_zone: jiff::tz::TimeZone,
    pub reply_end: crate::sl651::ReplyEnd,
    /// A connection that completes no frame for this long is closed.
    pub idle_timeout: Duration,
    /// MQTT topic filters on which DTUs bridge frames (binary or hex text).
    pub mqtt_topics: Vec<String>,
    pub max_connections: usize,
    pub max_frame_bytes: usize,
}

/// A named level. In a [`StageLadder`] the order is the severity.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    pub level_m: f64,
}

/// Ordered stages, least severe first. Flood stages ascend in level; drought levels descend.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StageLadder {
    pub stages: Vec<Stage>,
}

impl StageLadder {
    /// True when the station configures no stage of this kind.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Position of a stage by name.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }
}

/// A sliding rainfall window with its threshold, rule `rain_<label>`.
#[derive(Debug, Clone, PartialEq)]
pub struct RainWindow {
    /// As written in the configuration: "1h", "3h", "24h".
    pub label: String,
    pub window: Duration,
    pub threshold_mm: f64,
}

/// A rain warning level (山洪 准备转移 / 立即转移, or one colour of a four-colour scheme): reached
/// when any of its windows holds at least the level's amount for it. In a station's list the
/// order is the severity, least severe first.
#[derive(Debug, Clone, PartialEq)]
pub struct RainLevel {
    /// The id events carry as their `stage`, e.g. "prepare", "evacuate", "blue".
    pub level: String,
    /// What people call it, for messages, e.g. "准备转移".
    pub name: String,
    /// Amounts per window, as written (`threshold_mm` is the level's amount).
    pub windows: Vec<RainWindow>,
}

/// A warning zone (a village, 防治区村落) judged on several rain gauges: its `rain_level` alert
/// is at the worst level any of its gauges reaches on the zone's own levels.
#[derive(Debug, Clone)]
pub struct Zone {
    /// How alerts and notifications address the zone, like a station: `id`, `name`, `team`,
    /// `rain_levels`; it has no readings and runs no other rule.
    pub place: Station,
    /// The rain gauges (station ids) that stand for the zone, in the order written.
    pub gauges: Vec<String>,
}

/// Consecutive dry days, graded by season (domain.md).
#[derive(Debug, Clone, PartialEq)]
pub struct DrySpell {
    /// A hydrological day with less rain than this counts as dry.
    pub dry_day_mm: f64,
}

/// A gauge station and the rules it runs.
#[derive(Debug, Clone)]
pub struct Station {
    pub id: String,
    pub name: String,
    pub river: Option<String>,
    pub basin: Option<String>,
    pub team: Option<String>,
    /// Expected reporting interval; also the default rain period.
    pub interval: Duration,
    /// Flood stages, ascending.
    pub stages: StageLadder,
    /// Drought levels, descending (warning above limit).
    pub drought: StageLadder,
    pub rise_rate_m_per_h: Option<f64>,
    pub level_range: Option<(f64, f64)>,
    pub max_step_m: Option<f64>,
    pub rain: Vec<RainWindow>,
    /// Rain warning levels (rule `rain_level`), least severe first.
    pub rain_levels: Vec<RainLevel>,
    pub offline_after: Duration,
    pub dry_spell: Option<DrySpell>,
    /// Extra teams paged at or above a flood stage: (stage index, team ids).
    pub escalate: Vec<(usize, Vec<String>)>,
    /// Under maintenance: events are recorded but nobody is paged.
    pub maintenance: bool,
    /// The station's address on SL 651 links, when it speaks SL 651.
    pub sl651_address: Option<crate::sl651::StationAddress>,
    /// Which SL 651 element is its level.
    pub sl651_level: crate::sl651::LevelElement,
}

impl Station {
    /// The widest of the station's rain windows (`rain` and `rain_levels`).
    pub fn widest_rain_window(&self) -> Duration {
        let levels = self.rain_levels.iter().flat_map(|l| &l.windows);
        self.rain
            .iter()
            .chain(levels)
            .map(|w| w.window)
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

/// The digits of a phone number.
pub fn phone_digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

/// Two numbers (digits only) are the same phone when equal, or equal but for a country code
/// in front of the longer one (`8613800000001` and `13800000001`).
fn same_phone(a: &str, b: &str) -> bool {
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    long == short || (short.len() >= 7 && long.ends_with(short) && long.len() - short.len() <= 3)
}

/// A named person an alert can reach (`[[people]]`).
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub name: String,
    pub phone: Option<String>,
    /// A free label: county, town, village, dike, reservoir...
    pub role: Option<String>,
    /// Who is called when this person does not answer in time.
    pub superior: Option<String>,
    /// User ids on chat platforms, by channel kind (`wecom`, `dingtalk`, `feishu`).
    pub chat_ids: Vec<(String, String)>,
}

/// A patrol team and how to reach it.
#[derive(Debug, Clone)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub token: Option<String>,
    pub members: Vec<Member>,
    pub channels: Vec<Channel>,
    pub escalation: Vec<Escalation>,
    /// Re-notify this often while an alert is open and unacknowledged.
    pub renotify: Option<Duration>,
    /// 叫应 deadline: a page nobody acknowledges this long is unanswered.
    pub respond_within: Option<RespondWithin>,
    pub language: Language,
    /// Receives the daily bulletin on its chat channels (WeCom, DingTalk, Feishu).
    pub bulletin: bool,
}

impl Team {
    /// Whether `presented` is this team's token (constant time).
    pub fn holds_token(&self, presented: &str) -> bool {
        self.token
            .as_deref()
            .is_some_and(|t| same_secret(presented, t))
    }
}

/// The team whose token `presented` is. Every team's token is compared, each in constant
/// time, so the answer's timing says nothing about which team came close.
pub fn team_by_token<'a>(teams: &'a [Team], presented: &str) -> Option<&'a Team> {
    teams.iter().fold(None, |found, t| {
        let matches = t.holds_token(presented);
        found.or(matches.then_some(t))
    })
}

/// A team's 叫应 deadline: one for every alert, or shorter ones from a flood stage up.
#[derive(Debug, Clone, PartialEq)]
pub struct RespondWithin {
    /// For alerts no stage entry covers (`respond_within = "10m"`, or `default`).
    pub default: Option<Duration>,
    /// (stage name, deadline): for stage alerts at or above that stage.
    pub by_stage: Vec<(String, Duration)>,
}

impl RespondWithin {
    /// The deadline for an alert of `rule` at `stage_index` on `station`: the entry of the
    /// most severe stage the alert has reached, else the default. `None`: no deadline.
    pub fn for_alert(&self, station: &Station, rule: &str, stage_index: usize) -> Option<Duration> {
        if rule == "stage" {
            let reached = self
                .by_stage
                .iter()
                .filter_map(|(name, d)| station.stages.position(name).map(|i| (i, *d)))
                .filter(|(i, _)| *i <= stage_index)
                .max_by_key(|(i, _)| *i);
            if let Some((_, d)) = reached {
                return Some(d);
            }
        }
        self.default
    }
}

/// A team member: a person of `[[people]]` by id, or written inline (name and phone).
#[derive(Debug, Clone)]
pub struct Member {
    /// The person's id, for members listed by id.
    pub person: Option<String>,
    pub name: String,
    pub phone: Option<String>,
}

/// If an alert at `min_stage` or above is not acknowledged within `after`, page `team`.
#[derive(Debug, Clone)]
pub struct Escalation {
    pub after: Duration,
    pub team: String,
    /// Index into the station's flood stages; `None` means any alert.
    pub min_stage: Option<String>,
}

/// Message language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Chinese,
    English,
}

/// The kinds of notification channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Webhook,
    Mqtt,
    Wecom,
    Dingtalk,
    Feishu,
    Sms,
    /// Voice-notification calls through an HTTP voice API, one call per phone.
    Voice,
}

impl ChannelKind {
    /// The name used in configuration and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Mqtt => "mqtt",
            ChannelKind::Wecom => "wecom",
            ChannelKind::Dingtalk => "dingtalk",
            ChannelKind::Feishu => "feishu",
            ChannelKind::Sms => "sms",
            ChannelKind::Voice => "voice",
        }
    }
}

/// One way of reaching a team.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Stable identity within the team: the outbox addresses `{team}/{id}`, so reordering or
    /// editing other channels never sends a pending notification somewhere else. Written as
    /// `id`, or derived from the kind and the URL or topic (see [`Channel::derived_id`]).
    pub id: String,
    pub kind: ChannelKind,
    pub url: Option<url::Url>,
    pub secret: Option<String>,
    /// SMS gateway: HTTP method, body template, content type, numbers.
    pub method: String,
    pub body: Option<String>,
    pub content_type: Option<String>,
    pub phones: Vec<String>,
    pub language: Language,
    pub rate_per_minute: Option<u32>,
    /// MQTT channel topic prefix (default `hydro/alerts`).
    pub topic: Option<String>,
    /// MQTT channel: retained station status topic prefix (default `hydro/status`).
    pub status_topic: Option<String>,
    /// Longest one delivery attempt may take.
    pub timeout: Duration,
    /// First retry delay; doubles per failed attempt, at most a minute.
    pub backoff: Duration,
    /// A notification still failing transiently this long after it was queued is `failed`.
    pub give_up_after: Duration,
    /// Extra HTTP headers sent with every request.
    pub headers: Vec<(String, String)>,
    /// The key a callee presses to confirm a call (callbacks to this channel), default "1".
    pub confirm_digit: String,
    /// Callbacks to this channel may carry this key (`?key=`) instead of a signature.
    pub callback_key: Option<String>,
    /// Chat channels: @mention `phones` on pages that need an answer.
    pub mention: bool,
    /// Voice channels: the provider and its account settings.
    pub voice: Option<VoiceSettings>,
}

/// Which voice API a `voice` channel speaks; also names the format of its call-result
/// callbacks (`notify::callback::parse_callback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceProvider {
    /// Aliyun 语音服务 (Dyvmsapi SingleCallByTts), signed ACS3-HMAC-SHA256.
    Aliyun,
    /// Tencent Cloud 语音消息 (VMS SendTtsVoice), signed TC3-HMAC-SHA256.
    Tencent,
    /// An HTTP gateway driven by a body template, like the `sms` channel.
    Template,
}

impl VoiceProvider {
    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            VoiceProvider::Aliyun => "aliyun",
            VoiceProvider::Tencent => "tencent",
            VoiceProvider::Template => "template",
        }
    }
}

/// A voice channel's provider settings.
#[derive(Debug, Clone)]
pub struct VoiceSettings {
    pub provider: VoiceProvider,
    /// AccessKey ID (Aliyun) or SecretId (Tencent); the secret is the channel's `secret`.
    pub key_id: Option<String>,
    /// Aliyun TtsCode or Tencent TemplateId.
    pub template: Option<String>,
    /// Template variables: name → text with placeholders, in written order.
    pub tts_params: Vec<(String, String)>,
    /// Aliyun CalledShowNumber (none: the shared number pool).
    pub caller: Option<String>,
    /// Tencent VoiceSdkAppid.
    pub app_id: Option<String>,
    /// Tencent region.
    pub region: String,
    /// Plays of the message in one call.
    pub play_times: Option<u32>,
    /// Put before numbers written without `+` where the API wants E.164 (Tencent).
    pub country_code: String,
    pub redial: Redial,
}

/// Calls again when a call was not answered: `attempts` calls in all, `spacing` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redial {
    pub attempts: u32,
    pub spacing: Duration,
}

impl Default for Redial {
    /// One call, no redial.
    fn default() -> Self {
        Redial {
            attempts: 1,
            spacing: Duration::from_secs(90),
        }
    }
}

impl Channel {
    /// The identity of a channel written without `id`: `{kind}-{host}-{fingerprint}` (or
    /// `{kind}-{fingerprint}` without a URL), the fingerprint being the first 8 hex digits of
    /// SHA-256 over the kind and the URL (MQTT: the topic prefixes). Robot URLs carry their
    /// access token, so the URL itself never appears, only its host and that digest.
    pub fn derived_id(
        kind: ChannelKind,
        url: Option<&url::Url>,
        topics: &[Option<&str>],
    ) -> String {
        use sha2::{Digest, Sha256};
        let mut digest = Sha256::new();
        digest.update(kind.as_str().as_bytes());
        if let Some(url) = url {
            digest.update(b"\n");
            digest.update(url.as_str().as_bytes());
        }
        for topic in topics {
            digest.update(b"\n");
            digest.update(topic.unwrap_or("").as_bytes());
        }
        let fingerprint = hex::encode(&digest.finalize()[..4]);
        match url.and_then(|u| u.host_str()) {
            Some(host) => format!("{}-{host}-{fingerprint}", kind.as_str()),
            None => format!("{}-{fingerprint}", kind.as_str()),
        }
    }
}

/// Whether `id` may name a channel: 1 to 64 of `[A-Za-z0-9_.:-]` (no `/`, which separates
/// the team from the channel in an outbox destination).
pub fn valid_channel_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn team(id: &str, token: Option<&str>) -> Team {
        Team {
            id: id.into(),
            name: id.into(),
            token: token.map(str::to_string),
            members: Vec::new(),
            channels: Vec::new(),
            escalation: Vec::new(),
            renotify: None,
            respond_within: None,
            language: Language::Chinese,
            bulletin: false,
        }
    }

    #[test]
    fn secrets_match_exactly() {
        assert!(same_secret("east-token", "east-token"));
        assert!(!same_secret("east-token", "east-toke"));
        assert!(!same_secret("east-token ", "east-token"));
        assert!(!same_secret("", "east-token"));
    }

    #[test]
    fn a_token_finds_its_team_and_no_other() {
        let teams = [
            team("none", None),
            team("east", Some("east-token")),
            team("west", Some("west-token")),
        ];
        assert_eq!(
            team_by_token(&teams, "west-token").map(|t| t.id.as_str()),
            Some("west")
        );
        assert_eq!(
            team_by_token(&teams, "east-token").map(|t| t.id.as_str()),
            Some("east")
        );
        assert!(
            team_by_token(&teams, "").is_none(),
            "a team without a token holds no empty one"
        );
        assert!(team_by_token(&teams, "guess").is_none());
    }

    /// `station` looks up by an index built on first use, and still finds what a scan of
    /// `stations` finds once the list changed after that (the fields are public).
    #[test]
    fn a_station_lookup_agrees_with_the_catalogue() {
        let mut settings = load_from_str(
            r#"
[[stations]]
id = "s1"
[[stations]]
id = "s2"
"#,
        )
        .expect("valid");
        assert_eq!(settings.station("s2").map(|s| s.id.as_str()), Some("s2"));
        assert!(settings.station("s3").is_none());
        let mut s3 = settings.stations[0].clone();
        s3.id = "s3".into();
        settings.stations.insert(0, s3);
        for id in ["s1", "s2", "s3"] {
            assert_eq!(settings.station(id).map(|s| s.id.as_str()), Some(id));
        }
        assert!(settings.clone().station("s4").is_none());
    }
}
