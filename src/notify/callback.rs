//! What comes back from the phone platforms after a person was paged. Voice APIs report each call's
//! result (answered, a keypress, no answer, busy, failed) to a callback URL, and an SMS
//! gateway forwards replies; [`parse_callback`] turns each provider's documented body into
//! [`Answer`]s. Pure code: the HTTP route that receives callbacks is `api::callouts`, and
//! what an answer acknowledges is decided in `notify::callout`.
//!
//! Formats, as the providers document them:
//! - Aliyun (语音服务 VoiceReport, HTTP batch push): a JSON array of call records with
//!   `callee`, `status_code` (200000 listened to the end, 200001 hung up early, 200002
//!   busy, 200003 not answered, others not connected), `dtmf` (keys pressed), `call_id`,
//!   and times like `2021-04-28 10:03:40` in Beijing time.
//! - Tencent Cloud (语音消息 callbacks): one JSON object holding `voiceprompt_callback`
//!   (`result` 0 answered, 1 not answered, 2 call error), `voicekey_callback` (`keypress`)
//!   or `voice_failure_callback` (`failure_code` and `failure_reason`), each with `mobile`,
//!   `callid` and Unix-second times.
//! - `template` (an SMS gateway's upstream reply): a JSON object, a JSON array of objects,
//!   or a form, whose phone, text, time and id fields are named by [`ReplyFields`].

use serde::{Deserialize, Serialize};

use crate::config::Channel;
use crate::model::Millis;

pub use crate::config::VoiceProvider as Provider;

/// What a provider reports about one call or message to one phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The phone the call went to, or the SMS reply came from.
    pub phone: String,
    pub outcome: CallOutcome,
    /// When it happened (milliseconds since the epoch; the provider's time).
    pub at: Millis,
    /// The provider's or hydrowatch's reference for the call (hydrowatch sends the
    /// `event_id` or `alert_id` as the call's reference where the provider allows one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// How a call or message ended. JSON: `"answered"`, `{"keypress": "1"}`, `"no_answer"`,
/// `"busy"`, `{"failed": "空号"}` (or just `"failed"`), `{"sms_reply": "收到"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "OutcomeJson", into = "OutcomeJson")]
pub enum CallOutcome {
    /// The call was picked up (not yet a confirmation).
    Answered,
    /// The callee pressed a key during the call.
    Keypress(String),
    NoAnswer,
    Busy,
    /// The call did not connect (switched off, no such number...): why, as the provider said.
    Failed(String),
    /// The callee replied to an SMS.
    SmsReply(String),
}

/// [`CallOutcome`] as JSON: a failure may come with its reason or without.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum OutcomeJson {
    Bare(BareOutcome),
    Tagged(TaggedOutcome),
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum BareOutcome {
    Answered,
    NoAnswer,
    Busy,
    Failed,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TaggedOutcome {
    Keypress(String),
    Failed(String),
    SmsReply(String),
}

impl From<OutcomeJson> for CallOutcome {
    fn from(j: OutcomeJson) -> Self {
        match j {
            OutcomeJson::Bare(BareOutcome::Answered) => CallOutcome::Answered,
            OutcomeJson::Bare(BareOutcome::NoAnswer) => CallOutcome::NoAnswer,
            OutcomeJson::Bare(BareOutcome::Busy) => CallOutcome::Busy,
            OutcomeJson::Bare(BareOutcome::Failed) => CallOutcome::Failed(String::new()),
            OutcomeJson::Tagged(TaggedOutcome::Keypress(k)) => CallOutcome::Keypress(k),
            OutcomeJson::Tagged(TaggedOutcome::Failed(why)) => CallOutcome::Failed(why),
            OutcomeJson::Tagged(TaggedOutcome::SmsReply(t)) => CallOutcome::SmsReply(t),
        }
    }
}

impl From<CallOutcome> for OutcomeJson {
    fn from(o: CallOutcome) -> Self {
        match o {
            CallOutcome::Answered => OutcomeJson::Bare(BareOutcome::Answered),
            CallOutcome::NoAnswer => OutcomeJson::Bare(BareOutcome::NoAnswer),
            CallOutcome::Busy => OutcomeJson::Bare(BareOutcome::Busy),
            CallOutcome::Failed(why) if why.is_empty() => OutcomeJson::Bare(BareOutcome::Failed),
            CallOutcome::Failed(why) => OutcomeJson::Tagged(TaggedOutcome::Failed(why)),
            CallOutcome::Keypress(k) => OutcomeJson::Tagged(TaggedOutcome::Keypress(k)),
            CallOutcome::SmsReply(t) => OutcomeJson::Tagged(TaggedOutcome::SmsReply(t)),
        }
    }
}

impl CallOutcome {
    /// The outcome's name in the audit.
    pub fn as_str(&self) -> &'static str {
        match self {
            CallOutcome::Answered => "answered",
            CallOutcome::Keypress(_) => "keypress",
            CallOutcome::NoAnswer => "no_answer",
            CallOutcome::Busy => "busy",
            CallOutcome::Failed(_) => "failed",
            CallOutcome::SmsReply(_) => "sms_reply",
        }
    }

    /// Whether this answer acknowledges the alert: the confirming keypress, or an SMS reply
    /// that confirms: the same digit, or a reply that starts with a word of confirmation
    /// (收到, 确认, 明白, 好的, OK...). Any other text is recorded but does not acknowledge: a
    /// phone's automatic reply ("我正在开车"), "不是我" or an unsubscribe ("TD") must not
    /// stop the calls to the people behind.
    pub fn confirms(&self, confirm_digit: &str) -> bool {
        match self {
            CallOutcome::Keypress(digit) => digit.trim() == confirm_digit,
            CallOutcome::SmsReply(text) => sms_confirms(text, confirm_digit),
            _ => false,
        }
    }

    /// The digit pressed or the text replied, if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            CallOutcome::Keypress(d) => Some(d),
            CallOutcome::SmsReply(t) => Some(t),
            CallOutcome::Failed(why) if !why.is_empty() => Some(why),
            _ => None,
        }
    }
}

/// Why a callback body yields no answers.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("the body is not an answer: {0}")]
    Malformed(String),
}

/// Most answers one callback may carry (providers batch call reports).
pub const MAX_ANSWERS: usize = 1000;

/// The answers in a callback to `channel`. A `voice` channel's callbacks are in its
/// provider's format (see [`super::callback`]), a `template` gateway's in hydrowatch's own
/// JSON or as an SMS gateway's replies; an `sms` channel's are its gateway's upstream
/// replies or hydrowatch's own JSON; any other channel's are hydrowatch's own JSON: one
/// [`Answer`] object or an array of them.
pub fn parse_answers(
    channel: &Channel,
    body: &[u8],
    content_type: Option<&str>,
) -> Result<Vec<Answer>, AnswerError> {
    let answers = match (&channel.voice, channel.kind.as_str()) {
        // A gateway of one's own reports call results in hydrowatch's own JSON, or
        // forwards replies like an SMS gateway.
        (Some(voice), _) if voice.provider == Provider::Template => own_json(body)
            .or_else(|own| parse_reply(body, content_type, &Default::default()).map_err(|_| own))?,
        (Some(voice), _) => parse_callback(voice.provider, body, content_type)
            .map_err(|e| AnswerError::Malformed(e.to_string()))?,
        (None, "sms") => own_json(body)
            .or_else(|own| parse_reply(body, content_type, &Default::default()).map_err(|_| own))?,
        _ => own_json(body)?,
    };
    if answers.len() > MAX_ANSWERS {
        return Err(AnswerError::Malformed(format!(
            "{} answers in one callback; at most {MAX_ANSWERS}",
            answers.len()
        )));
    }
    if let Some(a) = answers.iter().find(|a| a.phone.trim().is_empty()) {
        return Err(AnswerError::Malformed(format!(
            "an answer without a phone ({})",
            a.outcome.as_str()
        )));
    }
    Ok(answers)
}

/// hydrowatch's own answer JSON: one object or an array.
fn own_json(body: &[u8]) -> Result<Vec<Answer>, AnswerError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| AnswerError::Malformed(e.to_string()))?;
    match value {
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<_, _>>()
            .map_err(|e| AnswerError::Malformed(e.to_string())),
        other => Ok(vec![
            serde_json::from_value(other).map_err(|e| AnswerError::Malformed(e.to_string()))?
        ]),
    }
}

/// Replies that confirm an SMS page, compared after trimming spaces and punctuation,
/// case-insensitively, at the start of the reply.
const CONFIRM_WORDS: &[&str] = &[
    "收到",
    "已收到",
    "确认",
    "明白",
    "好的",
    "知道了",
    "ok",
    "yes",
    "received",
];

fn sms_confirms(text: &str, confirm_digit: &str) -> bool {
    let text = text
        .trim_matches(|c: char| {
            c.is_whitespace() || c.is_ascii_punctuation() || "，。！、".contains(c)
        })
        .to_lowercase();
    text == confirm_digit || CONFIRM_WORDS.iter().any(|w| text.starts_with(w))
}

/// Why a callback body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("the callback body is not valid JSON: {0}")]
    NotJson(String),
    #[error("the callback body is not a form or JSON")]
    Unreadable,
    #[error("the callback lacks `{0}`")]
    Missing(&'static str),
    #[error("the callback is not one the provider documents: {0}")]
    UnknownShape(String),
}

/// The call results or replies in a provider's callback body.
pub fn parse_callback(
    kind: Provider,
    body: &[u8],
    content_type: Option<&str>,
) -> Result<Vec<Answer>, CallbackError> {
    match kind {
        Provider::Aliyun => aliyun(body),
        Provider::Tencent => tencent(body),
        Provider::Template => parse_reply(body, content_type, &ReplyFields::default()),
    }
}

fn json(body: &[u8]) -> Result<serde_json::Value, CallbackError> {
    serde_json::from_slice(body).map_err(|e| CallbackError::NotJson(e.to_string()))
}

/// A field as text, whether the provider sent it as a string or a number.
fn text(object: &serde_json::Value, key: &str) -> Option<String> {
    match object.get(key)? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `2021-04-28 10:03:40` in Beijing time (China keeps UTC+8 all year).
fn beijing_time(text: &str) -> Option<Millis> {
    let civil = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", text.trim()).ok()?;
    let zoned = civil
        .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)))
        .ok()?;
    Some(zoned.timestamp().as_millisecond())
}

/// A time as providers and gateways write it: Unix seconds (milliseconds above 10^11),
/// RFC 3339, or Beijing civil time.
fn any_time(text: &str) -> Option<Millis> {
    let text = text.trim();
    if let Ok(n) = text.parse::<i64>() {
        // A time before 1970 or beyond the year 9999 is not a call's: no time at all.
        return match n {
            0..=100_000_000_000 => Some(n * 1000),
            100_000_000_001..=253_402_300_799_999 => Some(n),
            _ => None,
        };
    }
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts.as_millisecond());
    }
    beijing_time(text)
}

/// Aliyun VoiceReport: a JSON array of call records (a single object is accepted too).
fn aliyun(body: &[u8]) -> Result<Vec<Answer>, CallbackError> {
    let value = json(body)?;
    let records = match value {
        serde_json::Value::Array(items) => items,
        object @ serde_json::Value::Object(_) => vec![object],
        other => return Err(CallbackError::UnknownShape(format!("{other:.60}"))),
    };
    records
        .iter()
        .map(|r| {
            let phone = text(r, "callee").ok_or(CallbackError::Missing("callee"))?;
            let code = text(r, "status_code").ok_or(CallbackError::Missing("status_code"))?;
            let keys = text(r, "dtmf");
            let outcome = match (keys, code.as_str()) {
                (Some(keys), _) => CallOutcome::Keypress(keys),
                // Listened to the end, hung up early, key wait timed out, call ended.
                (None, "200000" | "200001" | "200008" | "200100" | "300000") => {
                    CallOutcome::Answered
                }
                (None, "200002" | "200112") => CallOutcome::Busy,
                (None, "200003" | "200113") => CallOutcome::NoAnswer,
                (None, other) => CallOutcome::Failed(match text(r, "status_msg") {
                    Some(msg) => format!("{other} {msg}"),
                    None => other.to_string(),
                }),
            };
            let at = [
                "end_time",
                "b_end_time",
                "b_start_time",
                "start_time",
                "ring_time",
                "originate_time",
            ]
            .iter()
            .find_map(|k| text(r, k).and_then(|t| beijing_time(&t)))
            .unwrap_or_else(crate::model::now_millis);
            Ok(Answer {
                phone,
                outcome,
                at,
                // `out_id` is the OutId hydrowatch sent with the call: the event's id.
                reference: text(r, "out_id").or_else(|| text(r, "call_id")),
            })
        })
        .collect()
}

/// Tencent VMS callbacks: one object (or an array of them) holding one kind of report.
fn tencent(body: &[u8]) -> Result<Vec<Answer>, CallbackError> {
    let value = json(body)?;
    let reports = match value {
        serde_json::Value::Array(items) => items,
        object => vec![object],
    };
    reports.iter().map(tencent_one).collect()
}

fn tencent_one(report: &serde_json::Value) -> Result<Answer, CallbackError> {
    let (kind, r) = [
        "voiceprompt_callback",
        "voicecode_callback",
        "voicekey_callback",
        "voice_failure_callback",
    ]
    .iter()
    .find_map(|k| report.get(*k).map(|r| (*k, r)))
    .ok_or_else(|| CallbackError::UnknownShape(format!("{report:.80}")))?;
    let phone = text(r, "mobile").ok_or(CallbackError::Missing("mobile"))?;
    let outcome = match kind {
        "voicekey_callback" => {
            CallOutcome::Keypress(text(r, "keypress").ok_or(CallbackError::Missing("keypress"))?)
        }
        "voice_failure_callback" => {
            let code = text(r, "failure_code").ok_or(CallbackError::Missing("failure_code"))?;
            match code.as_str() {
                // 通话中, 用户正忙.
                "2" | "10" => CallOutcome::Busy,
                // 无人接听, 无应答.
                "5" | "20" => CallOutcome::NoAnswer,
                _ => CallOutcome::Failed(match text(r, "failure_reason") {
                    Some(reason) => format!("{code} {reason}"),
                    None => code,
                }),
            }
        }
        _ => match text(r, "result")
            .ok_or(CallbackError::Missing("result"))?
            .as_str()
        {
            "0" => CallOutcome::Answered,
            "1" => CallOutcome::NoAnswer,
            other => CallOutcome::Failed(format!("call error (result {other})")),
        },
    };
    let at = ["end_calltime", "accept_time", "start_calltime"]
        .iter()
        .find_map(|k| text(r, k).and_then(|t| any_time(&t)))
        .unwrap_or_else(crate::model::now_millis);
    Ok(Answer {
        phone,
        outcome,
        at,
        reference: text(r, "callid"),
    })
}

/// The names of an SMS gateway's reply fields; each list is tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyFields {
    pub phone: Vec<String>,
    pub text: Vec<String>,
    pub time: Vec<String>,
    pub reference: Vec<String>,
}

impl Default for ReplyFields {
    /// The names common gateways use: `phone`/`mobile`/`from`, `content`/`text`/`message`,
    /// `time`/`reply_time`/`timestamp`, `id`/`msg_id`/`reference`.
    fn default() -> Self {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        ReplyFields {
            phone: names(&["phone", "mobile", "from", "phone_number", "sender"]),
            text: names(&["content", "text", "message", "reply", "body"]),
            time: names(&["time", "reply_time", "timestamp", "send_time"]),
            reference: names(&["id", "msg_id", "message_id", "reference"]),
        }
    }
}

/// An SMS gateway's upstream replies: a form (`application/x-www-form-urlencoded`), a JSON
/// object or a JSON array of objects, fields named by `fields`. A reply without a phone or
/// a text is an error; without a time it is stamped now.
pub fn parse_reply(
    body: &[u8],
    content_type: Option<&str>,
    fields: &ReplyFields,
) -> Result<Vec<Answer>, CallbackError> {
    let is_form = content_type.is_some_and(|c| c.contains("x-www-form-urlencoded"));
    let records: Vec<serde_json::Value> = if is_form {
        let object: serde_json::Map<String, serde_json::Value> = url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
            .collect();
        if object.is_empty() {
            return Err(CallbackError::Unreadable);
        }
        vec![serde_json::Value::Object(object)]
    } else {
        match json(body)? {
            serde_json::Value::Array(items) => items,
            object @ serde_json::Value::Object(_) => vec![object],
            _ => return Err(CallbackError::Unreadable),
        }
    };
    let first = |r: &serde_json::Value, names: &[String]| names.iter().find_map(|n| text(r, n));
    records
        .iter()
        .map(|r| {
            Ok(Answer {
                phone: first(r, &fields.phone).ok_or(CallbackError::Missing("phone"))?,
                outcome: CallOutcome::SmsReply(
                    first(r, &fields.text).ok_or(CallbackError::Missing("text"))?,
                ),
                at: first(r, &fields.time)
                    .and_then(|t| any_time(&t))
                    .unwrap_or_else(crate::model::now_millis),
                reference: first(r, &fields.reference),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> Millis {
        rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn a_template_voice_gateway_reports_in_hydrowatchs_own_json_or_as_replies() {
        let settings = crate::config::load_from_str(
            r#"
[[teams]]
id = "east"
  [[teams.channels]]
  id = "gateway"
  kind = "voice"
  provider = "template"
  url = "http://127.0.0.1:9/call"
  phones = ["13800000001"]
"#,
        )
        .expect("valid");
        let channel = &settings.teams[0].channels[0];
        let body = r#"[{"phone":"13800000001","outcome":"no_answer","at":1000,"reference":"e1"},
                       {"phone":"13800000002","outcome":{"keypress":"1"},"at":2000}]"#;
        let answers =
            parse_answers(channel, body.as_bytes(), Some("application/json")).expect("own JSON");
        assert_eq!(
            answers[0],
            Answer {
                phone: "13800000001".into(),
                outcome: CallOutcome::NoAnswer,
                at: 1000,
                reference: Some("e1".into()),
            }
        );
        assert_eq!(answers[1].outcome, CallOutcome::Keypress("1".into()));
        // A reply forwarded as a form, as an SMS gateway would.
        let answers = parse_answers(
            channel,
            b"phone=13800000001&content=%E6%94%B6%E5%88%B0",
            Some("application/x-www-form-urlencoded"),
        )
        .expect("a reply");
        assert_eq!(answers[0].outcome, CallOutcome::SmsReply("收到".into()));
    }

    #[test]
    fn aliyun_voice_report_as_documented() {
        // Shaped as Aliyun's VoiceReport HTTP batch push: a JSON array, one record per call.
        let body = r#"[
          {"status_code":"200000","callee":"13800000001","ring_time":"2021-04-28 10:02:40",
           "duration":"10","voice_type":"voice","originate_time":"2021-04-28 10:02:34",
           "b_start_time":"2021-04-28 10:02:50","end_time":"2021-04-28 10:03:40",
           "call_id":"122628733198^109422061234","caller":"02000000000",
           "status_msg":"执行完成","out_id":"evt-1","dtmf":"1","toll_type":"LOCAL"},
          {"status_code":"200003","callee":"13800000002","duration":"0","end_time":"",
           "originate_time":"2021-04-28 10:02:34","call_id":"122628733198^109422061235",
           "status_msg":"用户未接听","dtmf":""},
          {"status_code":"200002","callee":"13800000003","originate_time":"2021-04-28 10:02:34",
           "call_id":"c3","status_msg":"用户占线"},
          {"status_code":"200010","callee":"13800000004","originate_time":"2021-04-28 10:02:34",
           "call_id":"c4","status_msg":"关机"},
          {"status_code":"200000","callee":"13800000005","end_time":"2021-04-28 10:03:40",
           "call_id":"c5","status_msg":"执行完成"}
        ]"#;
        let answers = parse_callback(Provider::Aliyun, body.as_bytes(), Some("application/json"))
            .expect("parses");
        assert_eq!(answers.len(), 5);
        assert_eq!(
            answers[0],
            Answer {
                phone: "13800000001".into(),
                outcome: CallOutcome::Keypress("1".into()),
                at: ms("2021-04-28T10:03:40+08:00"),
                reference: Some("evt-1".into()),
            },
            "out_id (the OutId hydrowatch sent: the event) is the reference"
        );
        assert_eq!(answers[1].outcome, CallOutcome::NoAnswer);
        assert_eq!(
            answers[1].reference.as_deref(),
            Some("122628733198^109422061235"),
            "without out_id, the call id"
        );
        assert_eq!(
            answers[1].at,
            ms("2021-04-28T10:02:34+08:00"),
            "empty end_time skipped"
        );
        assert_eq!(answers[2].outcome, CallOutcome::Busy);
        assert_eq!(
            answers[3].outcome,
            CallOutcome::Failed("200010 关机".into())
        );
        assert_eq!(answers[4].outcome, CallOutcome::Answered);
    }

    #[test]
    fn tencent_callbacks_as_documented() {
        let prompt = br#"{"voiceprompt_callback":{"result":"0","accept_time":"1470197211",
            "call_from":"","callid":"xxxxxx","end_calltime":"1470197221","fee":"1",
            "mobile":"13800000001","nationcode":"86","start_calltime":"1470197196"}}"#;
        let got = parse_callback(Provider::Tencent, prompt, Some("application/json")).unwrap();
        assert_eq!(
            got,
            vec![Answer {
                phone: "13800000001".into(),
                outcome: CallOutcome::Answered,
                at: 1_470_197_221_000,
                reference: Some("xxxxxx".into()),
            }]
        );
        let unanswered = br#"{"voiceprompt_callback":{"result":"1","accept_time":"0",
            "callid":"y","end_calltime":"1470197221","mobile":"13800000002","nationcode":"86",
            "start_calltime":"1470197196"}}"#;
        assert_eq!(
            parse_callback(Provider::Tencent, unanswered, None).unwrap()[0].outcome,
            CallOutcome::NoAnswer
        );
        let key = br#"{"voicekey_callback":{"call_from":"","callid":"xxxxxx","keypress":"1",
            "mobile":"13800000001","nationcode":"86"}}"#;
        let got = parse_callback(Provider::Tencent, key, None).unwrap();
        assert_eq!(got[0].outcome, CallOutcome::Keypress("1".into()));
        assert_eq!(got[0].phone, "13800000001");
        let busy = r#"{"voice_failure_callback":{"call_from":"075583763333","callid":"z",
            "failure_code":10,"failure_reason":"用户正忙","mobile":"13800000003","nationcode":"86"}}"#.as_bytes();
        assert_eq!(
            parse_callback(Provider::Tencent, busy, None).unwrap()[0].outcome,
            CallOutcome::Busy
        );
        let empty = r#"{"voice_failure_callback":{"callid":"z","failure_code":8,
            "failure_reason":"空号","mobile":"13800000004","nationcode":"86"}}"#
            .as_bytes();
        assert_eq!(
            parse_callback(Provider::Tencent, empty, None).unwrap()[0].outcome,
            CallOutcome::Failed("8 空号".into())
        );
    }

    #[test]
    fn sms_replies_as_json_or_form_with_configurable_names() {
        let json = br#"{"mobile":"13800000001","content":"1","time":"2021-07-20T08:09:00+08:00","msg_id":"m1"}"#;
        assert_eq!(
            parse_callback(Provider::Template, json, Some("application/json")).unwrap(),
            vec![Answer {
                phone: "13800000001".into(),
                outcome: CallOutcome::SmsReply("1".into()),
                at: ms("2021-07-20T08:09:00+08:00"),
                reference: Some("m1".into()),
            }]
        );
        let form = "from=13800000002&text=%E6%94%B6%E5%88%B0&timestamp=1626739740";
        let got = parse_callback(
            Provider::Template,
            form.as_bytes(),
            Some("application/x-www-form-urlencoded; charset=utf-8"),
        )
        .unwrap();
        assert_eq!(got[0].phone, "13800000002");
        assert_eq!(got[0].outcome, CallOutcome::SmsReply("收到".into()));
        assert_eq!(got[0].at, 1_626_739_740_000);
        let fields = ReplyFields {
            phone: vec!["src".into()],
            text: vec!["msg".into()],
            time: vec!["when".into()],
            reference: vec![],
        };
        let custom = br#"[{"src":"13800000003","msg":"ok","when":"2021-07-20 08:10:00"}]"#;
        let got = parse_reply(custom, None, &fields).unwrap();
        assert_eq!(got[0].phone, "13800000003");
        assert_eq!(got[0].at, ms("2021-07-20T08:10:00+08:00"));
    }

    #[test]
    fn unreadable_callbacks_are_errors_not_answers() {
        assert!(matches!(
            parse_callback(Provider::Aliyun, b"<xml/>", None),
            Err(CallbackError::NotJson(_))
        ));
        assert_eq!(
            parse_callback(Provider::Aliyun, br#"[{"status_code":"200000"}]"#, None),
            Err(CallbackError::Missing("callee"))
        );
        assert!(matches!(
            parse_callback(Provider::Tencent, br#"{"sms_callback":{}}"#, None),
            Err(CallbackError::UnknownShape(_))
        ));
        assert_eq!(
            parse_callback(Provider::Template, br#"{"mobile":"1"}"#, None),
            Err(CallbackError::Missing("text"))
        );
    }
}

#[cfg(test)]
mod confirm_tests {
    use super::CallOutcome;

    #[test]
    fn only_a_confirming_reply_acknowledges() {
        let reply = |t: &str| CallOutcome::SmsReply(t.into()).confirms("1");
        for yes in [
            "1",
            " 1 ",
            "收到",
            "收到，马上到",
            "确认！",
            "OK",
            "ok.",
            "好的",
        ] {
            assert!(reply(yes), "{yes}");
        }
        for no in ["", "我正在开车，稍后回复", "不是我", "TD", "2", "11"] {
            assert!(!reply(no), "{no}");
        }
        assert!(CallOutcome::Keypress("1".into()).confirms("1"));
        assert!(!CallOutcome::Keypress("2".into()).confirms("1"));
    }
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn times_out_of_any_range_are_no_time() {
        assert_eq!(super::any_time("1700000000"), Some(1_700_000_000_000));
        assert_eq!(super::any_time("1700000000123"), Some(1_700_000_000_123));
        assert_eq!(super::any_time("-9223372036854775808"), None);
        assert_eq!(super::any_time("9223372036854775807"), None);
    }
}
