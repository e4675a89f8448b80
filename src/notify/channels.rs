//! The request each kind of channel sends, in the format its receiver documents:
//! hydrowatch's own webhook JSON (HMAC-signed), WeCom, DingTalk (optionally signed URL) and
//! Feishu group robots (markdown), and an SMS gateway driven by a body template.
//!
//! Building a request is pure (a [`Request`] value); sending it is the dispatcher's job.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::EventPayload;
use crate::alerts::AlertState;
use crate::config::{Channel, ChannelKind, Language};

type HmacSha256 = Hmac<Sha256>;

/// An HTTP request ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// `sha256=<hex>` of the body with `secret`: the `X-Hydrowatch-Signature` header.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn state_words(state: AlertState, language: Language) -> &'static str {
    match (language, state) {
        (Language::Chinese, AlertState::Pending) => "待确认",
        (Language::Chinese, AlertState::Firing) => "告警",
        (Language::Chinese, AlertState::Escalated) => "升级",
        (Language::Chinese, AlertState::Deescalated) => "降级",
        (Language::Chinese, AlertState::Resolved) => "解除",
        (Language::Chinese, AlertState::Acknowledged) => "已确认",
        (Language::Chinese, AlertState::Unanswered) => "未应答",
        (Language::English, AlertState::Pending) => "PENDING",
        (Language::English, AlertState::Firing) => "FIRING",
        (Language::English, AlertState::Escalated) => "ESCALATED",
        (Language::English, AlertState::Deescalated) => "DE-ESCALATED",
        (Language::English, AlertState::Resolved) => "RESOLVED",
        (Language::English, AlertState::Acknowledged) => "ACKNOWLEDGED",
        (Language::English, AlertState::Unanswered) => "UNANSWERED",
    }
}

/// What kind of page this is, when it is not a plain lifecycle event.
fn page_words(p: &EventPayload, language: Language) -> Option<String> {
    let minutes = p.unacknowledged_s.map(|s| (s / 60.0).floor() as i64);
    match (language, p.renotify, &p.escalated_to) {
        (Language::Chinese, true, _) => Some("提醒".into()),
        (Language::English, true, _) => Some("REMINDER".into()),
        (Language::Chinese, false, Some(_)) => Some(format!(
            "未确认升级{}",
            minutes.map(|m| format!(" {m} 分钟")).unwrap_or_default()
        )),
        (Language::English, false, Some(_)) => Some(format!(
            "UNACKNOWLEDGED{}",
            minutes.map(|m| format!(" {m} min")).unwrap_or_default()
        )),
        _ => None,
    }
}

/// A title line for chat messages: `[告警] 淠河 横排头`, with `[提醒]` on reminders and
/// `[未确认升级 N 分钟]` on escalation pages.
pub fn title(p: &EventPayload, language: Language) -> String {
    let river = p
        .river
        .as_deref()
        .map(|r| format!(" {r}"))
        .unwrap_or_default();
    let page = page_words(p, language)
        .map(|w| format!("[{w}]"))
        .unwrap_or_default();
    format!(
        "{page}[{}]{} {}",
        state_words(p.state, language),
        river,
        p.station_name
    )
}

/// Who an unanswered page calls (叫应): `王队长 13800000001、赵四 13800000002`.
fn callees(p: &EventPayload) -> Option<String> {
    let call = p.callout.as_ref()?;
    Some(
        call.people
            .iter()
            .map(|c| match &c.phone {
                Some(phone) => format!("{} {phone}", c.name),
                None => c.name.clone(),
            })
            .collect::<Vec<_>>()
            .join("、"),
    )
}

/// The message body as markdown lines: what happened, when, trend, and how to acknowledge.
pub fn markdown(p: &EventPayload, language: Language) -> String {
    let mut lines = vec![format!("**{}**", title(p, language)), p.message.clone()];
    if let Some(people) = callees(p) {
        lines.push(match language {
            Language::Chinese => format!("无人应答，现呼叫：{people}"),
            Language::English => format!("Nobody answered; now calling: {people}"),
        });
    }
    match language {
        Language::Chinese => {
            lines.push(format!("观测时间：{}", p.observed_at));
            if let Some(t) = p.trend_m_per_h {
                lines.push(format!("涨率：{t:+.2} m/h"));
            }
            if let Some(s) = p.time_to_next_stage_s {
                lines.push(format!("预计 {:.1} 小时后到达下一级水位", s / 3600.0));
            }
            if let Some(by) = &p.acknowledged_by {
                lines.push(format!("确认人：{by}"));
            }
            if let Some(from) = &p.escalated_from {
                lines.push(format!("{from} 未在时限内确认，升级通知本队"));
            }
            if p.late {
                lines.push("（补报数据）".into());
            }
            if let Some(url) = &p.ack_url {
                lines.push(format!("[确认告警]({url})"));
            }
        }
        Language::English => {
            lines.push(format!("Observed: {}", p.observed_at));
            if let Some(t) = p.trend_m_per_h {
                lines.push(format!("Trend: {t:+.2} m/h"));
            }
            if let Some(s) = p.time_to_next_stage_s {
                lines.push(format!(
                    "Next stage in about {:.1} h at this rate",
                    s / 3600.0
                ));
            }
            if let Some(by) = &p.acknowledged_by {
                lines.push(format!("Acknowledged by {by}"));
            }
            if let Some(from) = &p.escalated_from {
                lines.push(format!(
                    "Not acknowledged by {from} in time: escalated to you"
                ));
            }
            if p.late {
                lines.push("(late: observed earlier, delivered now)".into());
            }
            if let Some(url) = &p.ack_url {
                lines.push(format!("[Acknowledge]({url})"));
            }
        }
    }
    lines.join("\n\n")
}

fn json_request(url: String, body: &serde_json::Value) -> Request {
    Request {
        method: "POST".into(),
        url,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

/// Builds the HTTP request for `channel`. `now_ms` is used by signed robot modes. Returns
/// `None` for the MQTT channel, which the dispatcher publishes itself.
pub fn request(channel: &Channel, p: &EventPayload, now_ms: i64) -> Option<Request> {
    let mut request = build(channel, p, now_ms)?;
    for (name, value) in &channel.headers {
        request.headers.push((name.clone(), value.clone()));
    }
    Some(request)
}

fn build(channel: &Channel, p: &EventPayload, now_ms: i64) -> Option<Request> {
    let url = channel.url.as_ref()?.to_string();
    let lang = channel.language;
    Some(match channel.kind {
        // The dispatcher publishes MQTT itself; a voice page is one call per phone
        // (`super::voice::calls`).
        ChannelKind::Mqtt | ChannelKind::Voice => return None,
        ChannelKind::Webhook => {
            let body = serde_json::to_vec(p).expect("payload serializes");
            let mut headers = vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                ("X-Hydrowatch-Event-Id".to_string(), p.event_id.clone()),
            ];
            if let Some(secret) = &channel.secret {
                headers.push(("X-Hydrowatch-Signature".into(), signature(secret, &body)));
            }
            Request {
                method: "POST".into(),
                url,
                headers,
                body,
            }
        }
        // WeCom group robot: markdown content of at most 4096 bytes. A WeCom markdown
        // message cannot @mention by phone (only `<@userid>`), so a page that needs an
        // answer goes as text (at most 2048 bytes) with `mentioned_mobile_list`.
        ChannelKind::Wecom => match mentions(channel, p) {
            Some(phones) => json_request(
                url,
                &serde_json::json!({
                    "msgtype": "text",
                    "text": {
                        "content": truncate_bytes(&plain_text(p, lang), 2048),
                        "mentioned_mobile_list": phones,
                    }
                }),
            ),
            None => json_request(
                url,
                &serde_json::json!({
                    "msgtype": "markdown",
                    "markdown": {"content": truncate_bytes(&markdown(p, lang), 4096)}
                }),
            ),
        },
        ChannelKind::Dingtalk => {
            let url = match &channel.secret {
                // DingTalk's signed mode: sign = base64(HmacSHA256(secret, "{timestamp}\n{secret}")).
                Some(secret) => {
                    let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
                        .expect("HMAC takes any key length");
                    mac.update(format!("{now_ms}\n{secret}").as_bytes());
                    let sign = base64::engine::general_purpose::STANDARD
                        .encode(mac.finalize().into_bytes());
                    let sep = if url.contains('?') { '&' } else { '?' };
                    format!(
                        "{url}{sep}timestamp={now_ms}&sign={}",
                        urlencoding::encode(&sign)
                    )
                }
                None => url,
            };
            // DingTalk @mentions a phone listed in `at.atMobiles` only where the text
            // also says `@phone`.
            let mut text = markdown(p, lang);
            let mut body = serde_json::json!({
                "msgtype": "markdown",
                "markdown": {"title": title(p, lang)},
            });
            if let Some(phones) = mentions(channel, p) {
                text.push_str("\n\n");
                text.push_str(
                    &phones
                        .iter()
                        .map(|phone| format!("@{phone}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                );
                body["at"] = serde_json::json!({"atMobiles": phones, "isAtAll": false});
            }
            body["markdown"]["text"] = serde_json::Value::String(text);
            json_request(url, &body)
        }
        ChannelKind::Feishu => {
            let mut body = serde_json::json!({
                "msg_type": "interactive",
                "card": {
                    "header": {"title": {"tag": "plain_text", "content": title(p, lang)}},
                    "elements": [{"tag": "markdown", "content": markdown(p, lang)}]
                }
            });
            if let Some(secret) = &channel.secret {
                // Feishu's signature: base64(HmacSHA256(key = "{timestamp}\n{secret}", message = "")).
                let ts = now_ms / 1000;
                let mac = HmacSha256::new_from_slice(format!("{ts}\n{secret}").as_bytes())
                    .expect("HMAC takes any key length");
                let sign =
                    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
                body["timestamp"] = serde_json::Value::String(ts.to_string());
                body["sign"] = serde_json::Value::String(sign);
            }
            json_request(url, &body)
        }
        ChannelKind::Sms => {
            let text = sms_text(p, lang);
            let json = channel
                .content_type
                .as_deref()
                .is_none_or(|c| c.contains("json"));
            let escape = |s: &str| -> String {
                if json {
                    let quoted = serde_json::Value::String(s.to_string()).to_string();
                    quoted[1..quoted.len() - 1].to_string()
                } else {
                    urlencoding::encode(s).into_owned()
                }
            };
            // An unanswered page calls the step's people, not the channel's fixed list.
            let phones = p.callout_phones().unwrap_or_else(|| channel.phones.clone());
            let fill = |template: &str, escape: &dyn Fn(&str) -> String| -> String {
                template
                    .replace("{phones}", &escape(&phones.join(",")))
                    .replace("{message}", &escape(&text))
                    .replace("{station}", &escape(&p.station))
                    .replace("{station_name}", &escape(&p.station_name))
                    .replace("{state}", &escape(serde_plain_state(p.state)))
                    .replace("{event_id}", &escape(&p.event_id))
                    .replace("{alert_id}", &escape(&p.alert_id))
            };
            let template = channel
                .body
                .clone()
                .unwrap_or_else(|| r#"{"phones":"{phones}","message":"{message}"}"#.to_string());
            let body = if channel.method == "GET" && channel.body.is_none() {
                String::new()
            } else {
                fill(&template, &escape)
            };
            // GET gateways take the message in the query string: the URL is a template too
            // (braces are percent-encoded by URL parsing).
            let url = fill(&url.replace("%7B", "{").replace("%7D", "}"), &|s: &str| {
                urlencoding::encode(s).into_owned()
            });
            let content_type = channel
                .content_type
                .clone()
                .unwrap_or_else(|| "application/json".into());
            Request {
                method: channel.method.clone(),
                url,
                headers: vec![("Content-Type".into(), content_type)],
                body: body.into_bytes(),
            }
        }
    })
}

/// Whether an event asks someone to act: a raise (firing, escalated), a reminder or an
/// escalation page. Those @mention people in chat; lifecycle news (resolved,
/// de-escalated, acknowledged) does not wake anyone.
pub fn needs_answer(p: &EventPayload) -> bool {
    matches!(
        p.state,
        AlertState::Firing | AlertState::Escalated | AlertState::Unanswered
    ) || p.renotify
        || p.escalated_to.is_some()
}

/// The phones a chat message @mentions, on events that need an answer, unless the channel
/// has `mention = false`: the people of a 叫应 step on an `unanswered` event, otherwise the
/// channel's (by default its team members').
fn mentions(channel: &Channel, p: &EventPayload) -> Option<Vec<String>> {
    if !channel.mention || !needs_answer(p) {
        return None;
    }
    let phones = p.callout_phones().unwrap_or_else(|| channel.phones.clone());
    (!phones.is_empty()).then_some(phones)
}

/// The markdown message as plain text, for chat messages that cannot carry markdown.
pub fn plain_text(p: &EventPayload, language: Language) -> String {
    markdown(p, language)
        .replace("**", "")
        .replace("\n\n", "\n")
        .lines()
        .map(|line| match (line.find("]("), line.starts_with('[')) {
            // `[确认告警](url)` → `确认告警: url`
            (Some(i), true) if line.ends_with(')') => {
                format!("{}: {}", &line[1..i], &line[i + 2..line.len() - 1])
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn serde_plain_state(state: AlertState) -> &'static str {
    state.as_str()
}

/// One short text for SMS: state, station, the rule's sentence (value, stage, trend, time
/// to the next stage), observation time and the acknowledgement link.
pub fn sms_text(p: &EventPayload, language: Language) -> String {
    let page = page_words(p, language)
        .map(|w| match language {
            Language::Chinese => format!("【{w}】"),
            Language::English => format!("{w} "),
        })
        .unwrap_or_default();
    let mut text = match language {
        Language::Chinese => format!(
            "{page}【{}】{}{}（{}）",
            state_words(p.state, language),
            p.river
                .as_deref()
                .map(|r| format!("{r} "))
                .unwrap_or_default(),
            p.message,
            p.observed_at
        ),
        Language::English => format!(
            "{page}{}: {} ({})",
            state_words(p.state, language),
            p.message,
            p.observed_at
        ),
    };
    if let Some(url) = &p.ack_url {
        text.push_str(match language {
            Language::Chinese => " 确认：",
            Language::English => " Ack: ",
        });
        text.push_str(url);
    }
    text
}

/// The daily bulletin for a chat robot (WeCom, DingTalk, Feishu): `title` and `markdown`
/// (already in the channel's language). `None` for channels that are not chat robots.
pub fn bulletin_request(
    channel: &Channel,
    title: &str,
    markdown: &str,
    now_ms: i64,
) -> Option<Request> {
    let url = channel.url.as_ref()?.to_string();
    let mut request = match channel.kind {
        ChannelKind::Wecom => json_request(
            url,
            &serde_json::json!({
                "msgtype": "markdown",
                "markdown": {"content": truncate_bytes(markdown, 4096)}
            }),
        ),
        ChannelKind::Dingtalk => json_request(
            match &channel.secret {
                Some(secret) => dingtalk_signed_url(&url, secret, now_ms),
                None => url,
            },
            &serde_json::json!({
                "msgtype": "markdown",
                "markdown": {"title": title, "text": markdown}
            }),
        ),
        ChannelKind::Feishu => {
            let mut body = serde_json::json!({
                "msg_type": "interactive",
                "card": {
                    "header": {"title": {"tag": "plain_text", "content": title}},
                    "elements": [{"tag": "markdown", "content": markdown}]
                }
            });
            if let Some(secret) = &channel.secret {
                let ts = now_ms / 1000;
                let mac = HmacSha256::new_from_slice(format!("{ts}\n{secret}").as_bytes())
                    .expect("HMAC takes any key length");
                let sign =
                    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
                body["timestamp"] = serde_json::Value::String(ts.to_string());
                body["sign"] = serde_json::Value::String(sign);
            }
            json_request(url, &body)
        }
        _ => return None,
    };
    for (name, value) in &channel.headers {
        request.headers.push((name.clone(), value.clone()));
    }
    Some(request)
}

/// A WeCom robot's image message: the PNG as base64 with its MD5 (the robot takes at most
/// 2 MB). `None` for other channels: DingTalk and Feishu robots cannot take an upload, their
/// markdown links to the bulletin's page instead.
pub fn bulletin_image_request(channel: &Channel, png: &[u8], md5_hex: &str) -> Option<Request> {
    if channel.kind != ChannelKind::Wecom {
        return None;
    }
    let url = channel.url.as_ref()?.to_string();
    let mut request = json_request(
        url,
        &serde_json::json!({
            "msgtype": "image",
            "image": {
                "base64": base64::engine::general_purpose::STANDARD.encode(png),
                "md5": md5_hex,
            }
        }),
    );
    for (name, value) in &channel.headers {
        request.headers.push((name.clone(), value.clone()));
    }
    Some(request)
}

/// DingTalk's signed mode: `timestamp` and `sign = base64(HmacSHA256(secret,
/// "{timestamp}\n{secret}"))` appended to the robot's URL.
fn dingtalk_signed_url(url: &str, secret: &str, now_ms: i64) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{now_ms}\n{secret}").as_bytes());
    let sign = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let sep = if url.contains('?') { '&' } else { '?' };
    format!(
        "{url}{sep}timestamp={now_ms}&sign={}",
        urlencoding::encode(&sign)
    )
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
