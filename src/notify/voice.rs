//! Voice-notification calls (语音通知): the request that places one call to one phone, in
//! the format and with the signature each voice API documents, and when to call again.
//!
//! A voice page is one call per phone: the voice APIs take a single called number per
//! request (Aliyun SingleCallByTts, Tencent VMS SendTtsVoice), so the dispatcher sends
//! [`calls`] one by one and remembers which phones already have theirs.
//!
//! Signatures, each checked in the tests against the provider's published worked example:
//! - Aliyun: ACS3-HMAC-SHA256 ("V3"), the scheme Aliyun's current documentation prescribes
//!   for its OpenAPI (it marks the older RPC HMAC-SHA1 scheme as discontinued). RPC style:
//!   the action's parameters travel in the query string, the body is empty.
//! - Tencent Cloud: TC3-HMAC-SHA256 over a JSON body, signing `content-type;host`.
//! - `template`: an HTTP gateway of your own, filled like the `sms` channel's template, and
//!   signed like the webhook (`X-Hydrowatch-Signature`) when the channel has a secret.
//!
//! Pure code: the dispatcher does the I/O.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::channels::{self, Request};
use super::EventPayload;
use crate::config::{Channel, Language, Redial, VoiceProvider, VoiceSettings};
use crate::model::Millis;

type HmacSha256 = Hmac<Sha256>;

/// Aliyun's voice API: the action and its version.
pub const ALIYUN_ACTION: &str = "SingleCallByTts";
pub const ALIYUN_VERSION: &str = "2017-05-25";
/// Tencent Cloud's voice API: service, action and version.
pub const TENCENT_SERVICE: &str = "vms";
pub const TENCENT_ACTION: &str = "SendTtsVoice";
pub const TENCENT_VERSION: &str = "2020-09-02";
/// The content type Tencent's request is signed and sent with.
pub const TENCENT_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// Tencent reads at most 350 characters of a voice message.
const MAX_SPOKEN_CHARS: usize = 300;

/// One call: the phone it rings and the request that places it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub phone: String,
    pub request: Request,
}

/// The calls a voice channel places for an event: one per phone, in order. `now_ms` dates
/// the signatures; `nonce` makes each Aliyun request unique (a fresh one per attempt).
pub fn calls(
    channel: &Channel,
    phones: &[String],
    p: &EventPayload,
    now_ms: Millis,
    nonce: &str,
) -> Vec<Call> {
    let Some(voice) = &channel.voice else {
        return Vec::new();
    };
    let Some(url) = &channel.url else {
        return Vec::new();
    };
    phones
        .iter()
        .enumerate()
        .map(|(i, phone)| {
            let request = match voice.provider {
                VoiceProvider::Aliyun => aliyun(
                    url,
                    channel,
                    voice,
                    phone,
                    p,
                    now_ms,
                    &format!("{nonce}-{i}"),
                ),
                VoiceProvider::Tencent => tencent(url, channel, voice, phone, p, now_ms),
                VoiceProvider::Template => template(url, channel, phone, p),
            };
            Call {
                phone: phone.clone(),
                request,
            }
        })
        .collect()
}

/// The provider's id for a call it accepted, from its answer to the request that placed it:
/// Tencent's `Response.SendStatus.CallId` (its call reports name the call by this `callid`
/// alone), Aliyun's `CallId` (its reports also carry the `OutId` hydrowatch sent). `None`
/// for a gateway of one's own, or an answer without one.
pub fn call_id(provider: VoiceProvider, answer: &[u8]) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_slice(answer).ok()?;
    let id = match provider {
        VoiceProvider::Tencent => answer.pointer("/Response/SendStatus/CallId"),
        VoiceProvider::Aliyun => answer.get("CallId"),
        VoiceProvider::Template => None,
    }?;
    let id = id.as_str()?.trim();
    // An id is a short token; anything else is not one the callbacks will name.
    (!id.is_empty() && id.len() <= MAX_CALL_ID_BYTES).then(|| id.to_string())
}

/// Whether a provider's answers give each call an id (see [`call_id`]) that its call reports
/// name: hydrowatch records those ids, so a report naming an unknown one is a call it did not
/// record.
pub fn records_call_ids(provider: VoiceProvider) -> bool {
    matches!(provider, VoiceProvider::Tencent | VoiceProvider::Aliyun)
}

/// Longest provider call id kept (Tencent's are 36-character UUIDs, Aliyun's ~30 characters).
const MAX_CALL_ID_BYTES: usize = 128;

/// What the call says: state, river and the rule's sentence, without links or times that
/// make no sense spoken.
pub fn spoken_text(p: &EventPayload, language: Language) -> String {
    let text = channels::sms_text(
        &EventPayload {
            ack_url: None,
            ..p.clone()
        },
        language,
    );
    text.chars().take(MAX_SPOKEN_CHARS).collect()
}

/// Fills the placeholders of a voice template text.
fn fill(
    text: &str,
    phone: &str,
    p: &EventPayload,
    spoken: &str,
    escape: &dyn Fn(&str) -> String,
) -> String {
    text.replace("{phone}", &escape(phone))
        .replace("{message}", &escape(spoken))
        .replace("{station}", &escape(&p.station))
        .replace("{station_name}", &escape(&p.station_name))
        .replace("{river}", &escape(p.river.as_deref().unwrap_or("")))
        .replace("{stage}", &escape(&p.stage))
        .replace("{state}", &escape(p.state.as_str()))
        .replace("{value}", &escape(&format!("{:.2}", p.value)))
        .replace("{threshold}", &escape(&format!("{:.2}", p.threshold)))
        .replace("{event_id}", &escape(&p.event_id))
        .replace("{alert_id}", &escape(&p.alert_id))
}

/// The template's variables filled in; `{"message": <spoken text>}` when none are written.
fn tts_params(
    voice: &VoiceSettings,
    phone: &str,
    p: &EventPayload,
    spoken: &str,
) -> Vec<(String, String)> {
    if voice.tts_params.is_empty() {
        return vec![("message".into(), spoken.to_string())];
    }
    voice
        .tts_params
        .iter()
        .map(|(name, text)| {
            (
                name.clone(),
                fill(text, phone, p, spoken, &|s| s.to_string()),
            )
        })
        .collect()
}

/// `host[:port]` as the HTTP client sends it in the Host header.
fn host_header(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 3986 percent-encoding as Aliyun's signatures require: only `A-Z a-z 0-9 - _ . ~`
/// stay as they are; a space is `%20`, never `+`.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A URL path as Aliyun canonicalizes it: each segment percent-encoded, `/` kept.
fn canonical_path(path: &str) -> String {
    let path = if path.is_empty() { "/" } else { path };
    path.split('/')
        .map(|segment| {
            let decoded = urlencoding::decode(segment)
                .map_or_else(|_| segment.to_string(), |d| d.into_owned());
            percent_encode(&decoded)
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Aliyun's canonical query string: parameters sorted by name, names and values
/// percent-encoded, joined with `&`.
pub fn acs3_canonical_query(params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The `Authorization` header of Aliyun's ACS3-HMAC-SHA256 signature.
///
/// `headers` are the signed headers, names in lower case (`host`, `content-type` when a body
/// is sent, and every `x-acs-*`); `payload_sha256` is the hex SHA-256 of the body (also the
/// `x-acs-content-sha256` header). CanonicalRequest = method, canonical URI, canonical query,
/// the headers as `name:value\n` sorted by name, their names joined by `;`, the payload hash,
/// each on its own line; the signature is hex(HMAC-SHA256(secret, "ACS3-HMAC-SHA256\n" +
/// hex(SHA-256(CanonicalRequest)))).
pub fn acs3_authorization(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    headers: &[(String, String)],
    payload_sha256: &str,
    key_id: &str,
    secret: &str,
) -> String {
    let mut headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_sha256}"
    );
    let string_to_sign = format!(
        "ACS3-HMAC-SHA256\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let signature = hex::encode(hmac_sha256(secret.as_bytes(), string_to_sign.as_bytes()));
    format!(
        "ACS3-HMAC-SHA256 Credential={key_id},SignedHeaders={signed_headers},Signature={signature}"
    )
}

/// `2023-10-26T10:22:32Z`: the `x-acs-date` of a moment.
fn iso_utc_seconds(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Aliyun SingleCallByTts for one phone, signed ACS3-HMAC-SHA256.
fn aliyun(
    url: &url::Url,
    channel: &Channel,
    voice: &VoiceSettings,
    phone: &str,
    p: &EventPayload,
    now_ms: Millis,
    nonce: &str,
) -> Request {
    let spoken = spoken_text(p, channel.language);
    let variables: serde_json::Map<String, serde_json::Value> =
        tts_params(voice, phone, p, &spoken)
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
    let mut params: Vec<(String, String)> = vec![
        ("CalledNumber".into(), phone.to_string()),
        ("TtsCode".into(), voice.template.clone().unwrap_or_default()),
        (
            "TtsParam".into(),
            serde_json::Value::Object(variables).to_string(),
        ),
        // Returned in the call report's out_id: the event this call pages for.
        ("OutId".into(), p.event_id.clone()),
    ];
    if let Some(caller) = &voice.caller {
        params.push(("CalledShowNumber".into(), caller.clone()));
    }
    if let Some(times) = voice.play_times {
        params.push(("PlayTimes".into(), times.to_string()));
    }
    aliyun_signed(
        url,
        ALIYUN_ACTION,
        ALIYUN_VERSION,
        &params,
        voice.key_id.as_deref().unwrap_or_default(),
        channel.secret.as_deref().unwrap_or_default(),
        &iso_utc_seconds(now_ms),
        nonce,
    )
}

/// An RPC-style Aliyun request (parameters in the query, empty body), signed ACS3.
#[allow(clippy::too_many_arguments)]
pub fn aliyun_signed(
    url: &url::Url,
    action: &str,
    version: &str,
    params: &[(String, String)],
    key_id: &str,
    secret: &str,
    date: &str,
    nonce: &str,
) -> Request {
    let query = acs3_canonical_query(params);
    let path = canonical_path(url.path());
    let payload_sha256 = sha256_hex(b"");
    let acs_headers: Vec<(String, String)> = vec![
        ("x-acs-action".into(), action.into()),
        ("x-acs-content-sha256".into(), payload_sha256.clone()),
        ("x-acs-date".into(), date.into()),
        ("x-acs-signature-nonce".into(), nonce.into()),
        ("x-acs-version".into(), version.into()),
    ];
    let mut signed = acs_headers.clone();
    signed.push(("host".into(), host_header(url)));
    let authorization = acs3_authorization(
        "POST",
        &path,
        &query,
        &signed,
        &payload_sha256,
        key_id,
        secret,
    );
    let mut headers = acs_headers;
    headers.push(("Authorization".into(), authorization));
    Request {
        method: "POST".into(),
        url: format!("{}://{}{path}?{query}", url.scheme(), host_header(url)),
        headers,
        body: Vec::new(),
    }
}

/// The `Authorization` header of Tencent Cloud's TC3-HMAC-SHA256 signature, signing the
/// `content-type` and `host` headers of a POST.
///
/// CanonicalRequest = `POST`, `/`, an empty query, `content-type:..\nhost:..\n`,
/// `content-type;host`, hex(SHA-256(payload)), each on its own line. StringToSign =
/// `TC3-HMAC-SHA256`, the timestamp, `{UTC date}/{service}/tc3_request`,
/// hex(SHA-256(CanonicalRequest)). The key is derived HMAC by HMAC from "TC3" + secret key
/// through the date, the service and `tc3_request`.
#[allow(clippy::too_many_arguments)]
pub fn tc3_authorization(
    secret_id: &str,
    secret_key: &str,
    service: &str,
    host: &str,
    content_type: &str,
    canonical_uri: &str,
    payload: &[u8],
    timestamp: i64,
) -> String {
    let date = jiff::Timestamp::from_second(timestamp)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%d")
        .to_string();
    let signed_headers = "content-type;host";
    let canonical_request = format!(
        "POST\n{canonical_uri}\n\ncontent-type:{}\nhost:{}\n\n{signed_headers}\n{}",
        content_type.trim().to_ascii_lowercase(),
        host.trim().to_ascii_lowercase(),
        sha256_hex(payload)
    );
    let scope = format!("{date}/{service}/tc3_request");
    let string_to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let secret_date = hmac_sha256(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let secret_service = hmac_sha256(&secret_date, service.as_bytes());
    let secret_signing = hmac_sha256(&secret_service, b"tc3_request");
    let signature = hex::encode(hmac_sha256(&secret_signing, string_to_sign.as_bytes()));
    format!(
        "TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

/// A number as E.164 (`+8613800000001`): written with `+` as it is, else after the
/// channel's country code.
pub fn e164(phone: &str, country_code: &str) -> String {
    let phone = phone.trim();
    if phone.starts_with('+') {
        phone.to_string()
    } else {
        format!("+{country_code}{phone}")
    }
}

/// Tencent VMS SendTtsVoice for one phone, signed TC3-HMAC-SHA256.
fn tencent(
    url: &url::Url,
    channel: &Channel,
    voice: &VoiceSettings,
    phone: &str,
    p: &EventPayload,
    now_ms: Millis,
) -> Request {
    let spoken = spoken_text(p, channel.language);
    let values: Vec<String> = tts_params(voice, phone, p, &spoken)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let mut body = serde_json::json!({
        "TemplateId": voice.template.clone().unwrap_or_default(),
        "TemplateParamSet": values,
        "CalledNumber": e164(phone, &voice.country_code),
        "VoiceSdkAppid": voice.app_id.clone().unwrap_or_default(),
        // Returned in the API's answer: the event this call pages for.
        "SessionContext": p.event_id,
    });
    if let Some(times) = voice.play_times {
        body["PlayTimes"] = serde_json::Value::from(times);
    }
    let body = body.to_string().into_bytes();
    let timestamp = now_ms.div_euclid(1000);
    let host = host_header(url);
    let authorization = tc3_authorization(
        voice.key_id.as_deref().unwrap_or_default(),
        channel.secret.as_deref().unwrap_or_default(),
        TENCENT_SERVICE,
        &host,
        TENCENT_CONTENT_TYPE,
        url.path(),
        &body,
        timestamp,
    );
    Request {
        method: "POST".into(),
        url: url.to_string(),
        headers: vec![
            ("Content-Type".into(), TENCENT_CONTENT_TYPE.into()),
            ("X-TC-Action".into(), TENCENT_ACTION.into()),
            ("X-TC-Version".into(), TENCENT_VERSION.into()),
            ("X-TC-Timestamp".into(), timestamp.to_string()),
            ("X-TC-Region".into(), voice.region.clone()),
            ("Authorization".into(), authorization),
        ],
        body,
    }
}

/// A voice gateway of your own: the channel's body template (default
/// `{"phone":"{phone}","message":"{message}"}`), escaped for its content type, and the URL
/// a template too; HMAC-signed like the webhook when the channel has a secret.
fn template(url: &url::Url, channel: &Channel, phone: &str, p: &EventPayload) -> Request {
    let spoken = spoken_text(p, channel.language);
    let content_type = channel
        .content_type
        .clone()
        .unwrap_or_else(|| "application/json".into());
    let json = content_type.contains("json");
    let escape = |s: &str| -> String {
        if json {
            let quoted = serde_json::Value::String(s.to_string()).to_string();
            quoted[1..quoted.len() - 1].to_string()
        } else {
            urlencoding::encode(s).into_owned()
        }
    };
    let body_template = channel
        .body
        .clone()
        .unwrap_or_else(|| r#"{"phone":"{phone}","message":"{message}"}"#.to_string());
    let body = if channel.method == "GET" && channel.body.is_none() {
        String::new()
    } else {
        fill(&body_template, phone, p, &spoken, &escape)
    };
    let url = fill(
        &url.as_str().replace("%7B", "{").replace("%7D", "}"),
        phone,
        p,
        &spoken,
        &|s: &str| urlencoding::encode(s).into_owned(),
    );
    let mut headers = vec![
        ("Content-Type".to_string(), content_type),
        ("X-Hydrowatch-Event-Id".to_string(), p.event_id.clone()),
    ];
    if let Some(secret) = &channel.secret {
        headers.push((
            "X-Hydrowatch-Signature".into(),
            channels::signature(secret, body.as_bytes()),
        ));
    }
    for (name, value) in &channel.headers {
        headers.push((name.clone(), value.clone()));
    }
    Request {
        method: channel.method.clone(),
        url,
        headers,
        body: body.into_bytes(),
    }
}

/// When to call a phone again after a call's result: `calls_made` calls so far (the first
/// included), the last one's result known at `result_at`. An answered call (or a keypress,
/// or an SMS reply) reached the person and is not repeated; a call nobody answered, a busy
/// line or a failed call is placed again `spacing` later until `attempts` calls were made.
pub fn redial_at(
    redial: &Redial,
    calls_made: u32,
    outcome: &super::callout::CallOutcome,
    result_at: Millis,
) -> Option<Millis> {
    use super::callout::CallOutcome;
    let reached = matches!(
        outcome,
        CallOutcome::Answered | CallOutcome::Keypress(_) | CallOutcome::SmsReply(_)
    );
    if reached || calls_made >= redial.attempts {
        return None;
    }
    Some(result_at.saturating_add(redial.spacing.as_millis() as Millis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::callout::CallOutcome;
    use std::time::Duration;

    #[test]
    fn the_call_id_is_read_from_each_providers_answer() {
        let tencent =
            br#"{"Response":{"SendStatus":{"CallId":"12582bce-403c-11eb-96b8-525400476c37",
            "SessionContext":"e1"},"RequestId":"r1"}}"#;
        assert_eq!(
            call_id(VoiceProvider::Tencent, tencent).as_deref(),
            Some("12582bce-403c-11eb-96b8-525400476c37")
        );
        let aliyun =
            br#"{"RequestId":"r2","CallId":"116012354148^10281378","Code":"OK","Message":"OK"}"#;
        assert_eq!(
            call_id(VoiceProvider::Aliyun, aliyun).as_deref(),
            Some("116012354148^10281378")
        );
        // An error, another provider's shape, a gateway of one's own, no JSON: no id.
        let error =
            br#"{"Response":{"Error":{"Code":"FailedOperation","Message":"x"},"RequestId":"r3"}}"#;
        assert_eq!(call_id(VoiceProvider::Tencent, error), None);
        assert_eq!(call_id(VoiceProvider::Tencent, aliyun), None);
        assert_eq!(call_id(VoiceProvider::Template, aliyun), None);
        assert_eq!(call_id(VoiceProvider::Aliyun, b"OK"), None);
        let huge = format!(r#"{{"CallId":"{}"}}"#, "x".repeat(200));
        assert_eq!(call_id(VoiceProvider::Aliyun, huge.as_bytes()), None);
    }

    /// Aliyun's published V3 example ("V3版本请求体&签名机制"): RunInstances on
    /// ecs.cn-shanghai with two query parameters, an empty body, AccessKey
    /// YourAccessKeyId / YourAccessKeySecret, date 2023-10-26T10:22:32Z, nonce
    /// 3156853299f313e23d1673dc12e1703d. The document's signature is
    /// 06563a9e...3283c0 (its hashed canonical request 7ea06492...b1e259).
    #[test]
    fn aliyun_acs3_reproduces_the_published_example() {
        let url = url::Url::parse("https://ecs.cn-shanghai.aliyuncs.com/").unwrap();
        let params = vec![
            ("RegionId".to_string(), "cn-shanghai".to_string()),
            (
                "ImageId".to_string(),
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd".to_string(),
            ),
        ];
        let request = aliyun_signed(
            &url,
            "RunInstances",
            "2014-05-26",
            &params,
            "YourAccessKeyId",
            "YourAccessKeySecret",
            "2023-10-26T10:22:32Z",
            "3156853299f313e23d1673dc12e1703d",
        );
        let authorization = &request
            .headers
            .iter()
            .find(|(k, _)| k == "Authorization")
            .unwrap()
            .1;
        assert_eq!(
            authorization,
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;\
             x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,\
             Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
        assert_eq!(
            request.url,
            "https://ecs.cn-shanghai.aliyuncs.com/?ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai"
        );
        assert!(request.body.is_empty());
    }

    /// Tencent's published TC3 example ("签名方法 v3"): DescribeInstances on
    /// cvm.tencentcloudapi.com at 1551113065 with the body below and SecretKey
    /// Gu5t9xGARNpq86cd98joQYCN3EXAMPLE; the document's signature is 72e494ea...525168.
    #[test]
    fn tencent_tc3_reproduces_the_published_example() {
        let payload = br#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        let authorization = tc3_authorization(
            "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
            "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            "cvm",
            "cvm.tencentcloudapi.com",
            "application/json; charset=utf-8",
            "/",
            payload,
            1551113065,
        );
        assert_eq!(
            authorization,
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, \
             SignedHeaders=content-type;host, \
             Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    #[test]
    fn percent_encoding_is_rfc3986() {
        assert_eq!(percent_encode("AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(percent_encode("a b*c+d/e"), "a%20b%2Ac%2Bd%2Fe");
        assert_eq!(percent_encode("{\"淠\"}"), "%7B%22%E6%B7%A0%22%7D");
    }

    #[test]
    fn numbers_become_e164_with_the_channel_country_code() {
        assert_eq!(e164("13800000001", "86"), "+8613800000001");
        assert_eq!(e164("+85291234567", "86"), "+85291234567");
    }

    #[test]
    fn unanswered_calls_are_redialled_until_the_attempts_are_spent() {
        let redial = Redial {
            attempts: 3,
            spacing: Duration::from_secs(90),
        };
        assert_eq!(
            redial_at(&redial, 1, &CallOutcome::NoAnswer, 1_000),
            Some(91_000)
        );
        assert_eq!(
            redial_at(&redial, 2, &CallOutcome::Busy, 1_000),
            Some(91_000)
        );
        assert_eq!(redial_at(&redial, 3, &CallOutcome::NoAnswer, 1_000), None);
        assert_eq!(redial_at(&redial, 1, &CallOutcome::Answered, 1_000), None);
        assert_eq!(
            redial_at(&redial, 1, &CallOutcome::Keypress("1".into()), 1_000),
            None
        );
        assert_eq!(
            redial_at(&redial, 1, &CallOutcome::Failed("关机".into()), 1_000),
            Some(91_000)
        );
        assert_eq!(
            redial_at(&Redial::default(), 1, &CallOutcome::NoAnswer, 0),
            None,
            "no redial configured: one call"
        );
    }
}
