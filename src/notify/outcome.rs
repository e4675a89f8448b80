//! What a receiver's answer means for the outbox: delivered, refused for good, or worth
//! another try.
//!
//! Why it matters: a receiver that refuses one event (a malformed template, a chat robot whose
//! keyword or signature does not match) would otherwise be retried forever, and in per-channel
//! order every later event, a guaranteed-stage page included, would wait behind it. A refusal
//! that no retry can cure is therefore `failed` at once; everything else (network, timeouts,
//! 5xx, 408, 429, a robot's rate limit, an answer we do not know) is retried with backoff until
//! the channel's `give_up_after`. Pure code: the dispatcher does the I/O.

use crate::config::{ChannelKind, VoiceProvider};

/// Why one delivery attempt did not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The receiver will refuse this notification however often it is sent: fail it now.
    #[error("refused: {0}")]
    Refused(String),
    /// Worth another try later (network, timeout, overload, rate limit, unknown answer).
    #[error("{0}")]
    Transient(String),
}

impl Failure {
    /// True when retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Failure::Refused(_))
    }

    /// The message kept in the outbox's `last_error`.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// An HTTP answer other than 2xx: a 4xx is the receiver saying "not this request", except
/// 408 (it timed out reading) and 429 (slow down), which a later try can pass.
pub fn http_status(status: u16) -> Failure {
    let text = format!("receiver answered HTTP {status}");
    if (400..500).contains(&status) && status != 408 && status != 429 {
        Failure::Refused(text)
    } else {
        Failure::Transient(text)
    }
}

/// Robot error codes that a retry cures: the platforms' rate limits and "system busy".
/// Sources: WeCom's global error codes (45009 api freq out of limit, 45033 concurrent calls,
/// -1 system busy); DingTalk's custom robot (130101 send too fast: 20 a minute, -1 busy);
/// Feishu's custom bot (11232 frequency limited, 9499 answered both for "too many request"
/// and some bad requests, so it is retried; 2200 internal error).
const RETRIABLE: &[(ChannelKind, i64)] = &[
    (ChannelKind::Wecom, -1),
    (ChannelKind::Wecom, 45009),
    (ChannelKind::Wecom, 45033),
    (ChannelKind::Dingtalk, -1),
    (ChannelKind::Dingtalk, 130101),
    (ChannelKind::Feishu, 9499),
    (ChannelKind::Feishu, 11232),
    (ChannelKind::Feishu, 2200),
];

/// Robot error codes that mean the channel is misconfigured: no retry will pass until someone
/// fixes the robot or hydrowatch's configuration.
/// WeCom: 93000 invalid webhook URL (key), 93004 robot removed/disabled, 93008 robot not in
/// the chat, 40008 invalid message type, 40058 invalid parameter, 44004 empty content, 45002
/// content too long. DingTalk: 310000 keyword/signature/IP/timestamp check failed, 300001 and
/// 300005 access token does not exist, 400013 group dissolved, 40035 invalid parameter.
/// Feishu: 19001 invalid parameter, 19021 signature mismatch (or clock off by an hour),
/// 19022 IP not allowed, 19024 keyword not found.
const MISCONFIGURED: &[(ChannelKind, i64)] = &[
    (ChannelKind::Wecom, 93000),
    (ChannelKind::Wecom, 93004),
    (ChannelKind::Wecom, 93008),
    (ChannelKind::Wecom, 40008),
    (ChannelKind::Wecom, 40058),
    (ChannelKind::Wecom, 44004),
    (ChannelKind::Wecom, 45002),
    (ChannelKind::Dingtalk, 310000),
    (ChannelKind::Dingtalk, 300001),
    (ChannelKind::Dingtalk, 300005),
    (ChannelKind::Dingtalk, 400013),
    (ChannelKind::Dingtalk, 40035),
    (ChannelKind::Feishu, 19001),
    (ChannelKind::Feishu, 19021),
    (ChannelKind::Feishu, 19022),
    (ChannelKind::Feishu, 19024),
];

/// The error code a chat robot put in its answer: WeCom and DingTalk `errcode`, Feishu `code`
/// (or the older `StatusCode`). `None` for other kinds, bodies that are not JSON, or no code.
pub fn robot_code(kind: ChannelKind, body: &[u8]) -> Option<i64> {
    let keys: &[&str] = match kind {
        ChannelKind::Wecom | ChannelKind::Dingtalk => &["errcode"],
        ChannelKind::Feishu => &["code", "StatusCode"],
        _ => return None,
    };
    let answer = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    keys.iter()
        .find_map(|k| answer.get(*k).and_then(serde_json::Value::as_i64))
}

/// A robot's non-zero error code: misconfigurations are refused for good; rate limits and
/// codes we do not know are retried (an unknown code may well be the platform's next
/// throttle, and giving up on a flood page by guessing would be worse than retrying).
pub fn robot_error(kind: ChannelKind, code: i64, body: &[u8]) -> Failure {
    let text = format!(
        "{} robot answered error {code}: {}",
        kind.as_str(),
        String::from_utf8_lossy(&body[..body.len().min(512)])
    );
    if MISCONFIGURED.contains(&(kind, code)) && !RETRIABLE.contains(&(kind, code)) {
        Failure::Refused(text)
    } else {
        Failure::Transient(text)
    }
}

/// The verdict on a complete HTTP answer. Chat robots answer 200 with an error code inside,
/// and some (Feishu) answer a rate limit as HTTP 400 with its code in the body: for robots the
/// code, when there is one, decides; otherwise the status does.
pub fn http_answer(kind: ChannelKind, status: u16, body: &[u8]) -> Result<(), Failure> {
    match robot_code(kind, body) {
        Some(0) if (200..300).contains(&status) => Ok(()),
        Some(code) if code != 0 => Err(robot_error(kind, code, body)),
        _ if (200..300).contains(&status) => Ok(()),
        _ => Err(http_status(status)),
    }
}

/// Aliyun voice API codes a retry cures: its throttles (1 call a minute, 5 an hour, 20 a
/// day per number), its system and gateway errors, a nonce seen twice (the next attempt
/// has a new one), and "account abnormal", which Aliyun says may pass on a later call.
const ALIYUN_RETRIABLE: &[&str] = &[
    "isv.BUSINESS_LIMIT_CONTROL",
    "isp.SYSTEM_ERROR",
    "isp.GATEWAY_ERROR",
    "isp.UNKNOWN",
    "isv.ACCOUNT_ABNORMAL",
    "InternalError",
    "ServiceUnavailable",
    "SignatureNonceUsed",
];

/// Aliyun voice API codes that mean hydrowatch's or the account's configuration is wrong:
/// the template, its variables, the numbers, the key, permissions, the subscription.
const ALIYUN_MISCONFIGURED: &[&str] = &[
    "isv.OUT_OF_SERVICE",
    "isv.PRODUCT_UN_SUBSCRIPT",
    "isv.PRODUCT_UNSUBSCRIBE",
    "isv.TTS_TEMPLATE_ILLEGAL",
    "isv.TEMPLATE_ILLEGAL",
    "isv.TEMPLATE_MISSING_PARAMETERS",
    "isv.TEMPLATE_PARAMS_ILLEGAL",
    "isv.BLACK_KEY_CONTROL_LIMIT",
    "isv.INVALID_PARAMETERS",
    "isv.PARAM_LENGTH_LIMIT",
    "isv.PARAM_NOT_SUPPORT_URL",
    "isv.MOBILE_NUMBER_ILLEGAL",
    "isv.DISPLAY_NUMBER_ILLEGAL",
    "isv.ACCOUNT_NOT_EXISTS",
    "isv.AMOUNT_NOT_ENOUGH",
    "isv.BILLID_NOT_EXIST",
    "isp.RAM_PERMISSION_DENY",
    "InvalidParameters",
    "MissingParameter",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidAccessKeyId.NotFound",
    "InvalidAccessKeyId.Inactive",
    "Forbidden.RAM",
    "InvalidAction.NotFound",
    "InvalidVersion",
];

/// Tencent Cloud error codes (or code prefixes) a retry cures: rate limits, internal and
/// upstream errors, and a signature expired by clock skew (the next attempt is re-signed).
const TENCENT_RETRIABLE: &[&str] = &[
    "RequestLimitExceeded",
    "LimitExceeded",
    "InternalError",
    "ResourceUnavailable",
    "FailedOperation.AccessUpstreamTimeout",
    "AuthFailure.SignatureExpire",
];

/// Tencent Cloud error codes (or prefixes) that mean a misconfiguration: credentials,
/// signature, permissions, parameters, the template, the number, the balance.
const TENCENT_MISCONFIGURED: &[&str] = &[
    "AuthFailure",
    "UnauthorizedOperation",
    "InvalidParameter",
    "MissingParameter",
    "UnknownParameter",
    "InvalidAction",
    "UnsupportedOperation",
    "FailedOperation.ContainSensitiveWord",
    "FailedOperation.FailResolvePacket",
    "FailedOperation.InsufficientBalanceInVoicePackage",
    "FailedOperation.InvalidJsonParameters",
    "FailedOperation.InvalidParameters",
    "FailedOperation.JsonParseFail",
    "FailedOperation.PhoneNumberUnappliedOrExpired",
    "FailedOperation.TemplateIncorrectOrUnapproved",
];

/// The error code in a voice API's answer: Aliyun's `Code` (`"OK"` on success), Tencent's
/// `Response.Error.Code` (absent on success).
pub fn voice_code(provider: VoiceProvider, body: &[u8]) -> Option<String> {
    let answer = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    let code = match provider {
        VoiceProvider::Aliyun => answer.get("Code"),
        VoiceProvider::Tencent => answer.pointer("/Response/Error/Code"),
        VoiceProvider::Template => None,
    }?;
    code.as_str().map(str::to_string)
}

/// The verdict on a voice API's answer to one call. Aliyun answers its business errors
/// (throttling included) with HTTP 400 and a `Code`; Tencent answers every error with HTTP
/// Whether a voice API refused a call because of its limit on calls to that one number
/// (Aliyun `isv.BUSINESS_LIMIT_CONTROL`: a few calls a minute, an hour, a day to a number;
/// Tencent `LimitExceeded.PhoneNumber...`). Calling that number again in a minute only adds to
/// the count, and the other phones of the page must not wait behind it: the call counts as
/// refused for that number, and the 叫应 chain goes on to the next people at its deadline.
pub fn voice_number_limited(provider: VoiceProvider, body: &[u8]) -> bool {
    match (provider, voice_code(provider, body).as_deref()) {
        (VoiceProvider::Aliyun, Some("isv.BUSINESS_LIMIT_CONTROL")) => true,
        (VoiceProvider::Tencent, Some(code)) => code.starts_with("LimitExceeded.PhoneNumber"),
        _ => false,
    }
}

/// 200 and `Response.Error`: the code decides when there is one, an unknown code is
/// retried (as for chat robots), and without one the HTTP status decides.
pub fn voice_answer(provider: VoiceProvider, status: u16, body: &[u8]) -> Result<(), Failure> {
    let code = voice_code(provider, body);
    let (retriable, misconfigured) = match provider {
        VoiceProvider::Aliyun => (ALIYUN_RETRIABLE, ALIYUN_MISCONFIGURED),
        VoiceProvider::Tencent => (TENCENT_RETRIABLE, TENCENT_MISCONFIGURED),
        VoiceProvider::Template => (&[][..], &[][..]),
    };
    let matches = |list: &[&str], code: &str| {
        list.iter()
            .any(|c| code == *c || code.starts_with(&format!("{c}.")))
    };
    match code.as_deref() {
        Some("OK") if (200..300).contains(&status) => Ok(()),
        Some(code) if !(provider == VoiceProvider::Aliyun && code == "OK") => {
            let text = format!(
                "{} voice API answered HTTP {status}, error {code}: {}",
                provider.as_str(),
                String::from_utf8_lossy(&body[..body.len().min(512)])
            );
            if matches(misconfigured, code) && !matches(retriable, code) {
                Err(Failure::Refused(text))
            } else {
                Err(Failure::Transient(text))
            }
        }
        _ if (200..300).contains(&status) => Ok(()),
        _ => Err(http_status(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permanent(r: Result<(), Failure>) -> bool {
        r.expect_err("a failure").is_permanent()
    }

    #[test]
    fn client_errors_are_final_except_timeout_and_rate_limit() {
        for status in [400, 401, 403, 404, 410, 413, 422] {
            assert!(http_status(status).is_permanent(), "{status}");
        }
        for status in [408, 429, 500, 502, 503, 504, 302] {
            assert!(!http_status(status).is_permanent(), "{status}");
        }
    }

    #[test]
    fn webhook_and_sms_are_judged_by_status_alone() {
        assert!(http_answer(ChannelKind::Webhook, 200, br#"{"errcode":1}"#).is_ok());
        assert!(http_answer(ChannelKind::Webhook, 204, b"").is_ok());
        // An SMS gateway's template or number error is a 4xx.
        assert!(permanent(http_answer(
            ChannelKind::Sms,
            400,
            b"bad template"
        )));
        assert!(!permanent(http_answer(ChannelKind::Sms, 503, b"")));
    }

    #[test]
    fn robot_misconfigurations_fail_and_rate_limits_retry() {
        let dingtalk = |body: &[u8]| http_answer(ChannelKind::Dingtalk, 200, body);
        assert!(dingtalk(br#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
        assert!(!permanent(dingtalk(
            br#"{"errcode":130101,"errmsg":"send too fast"}"#
        )));
        assert!(permanent(dingtalk(
            br#"{"errcode":310000,"errmsg":"keywords not in content"}"#
        )));
        let wecom = |body: &[u8]| http_answer(ChannelKind::Wecom, 200, body);
        assert!(permanent(wecom(
            br#"{"errcode":93000,"errmsg":"invalid webhook url"}"#
        )));
        assert!(!permanent(wecom(
            br#"{"errcode":45009,"errmsg":"api freq out of limit"}"#
        )));
        let feishu = |status, body: &[u8]| http_answer(ChannelKind::Feishu, status, body);
        assert!(feishu(200, br#"{"code":0,"msg":"success"}"#).is_ok());
        assert!(permanent(feishu(
            200,
            br#"{"code":19021,"msg":"sign match fail"}"#
        )));
        assert!(permanent(feishu(
            200,
            br#"{"StatusCode":19024,"msg":"Key Words Not Found"}"#
        )));
        // A rate limit in an HTTP 400 is still a rate limit.
        assert!(!permanent(feishu(
            400,
            br#"{"code":11232,"msg":"frequency limited"}"#
        )));
        assert!(!permanent(feishu(
            200,
            br#"{"code":9499,"msg":"too many request"}"#
        )));
    }

    #[test]
    fn unknown_robot_codes_and_unreadable_answers_are_retried() {
        assert!(!permanent(http_answer(
            ChannelKind::Wecom,
            200,
            br#"{"errcode":12345}"#
        )));
        // Not JSON: the HTTP status decides.
        assert!(http_answer(ChannelKind::Feishu, 200, b"ok").is_ok());
        assert!(permanent(http_answer(ChannelKind::Feishu, 404, b"<html>")));
    }

    #[test]
    fn voice_api_codes_decide_over_the_status() {
        let aliyun = |status, body: &[u8]| voice_answer(VoiceProvider::Aliyun, status, body);
        assert!(aliyun(
            200,
            br#"{"Code":"OK","Message":"OK","CallId":"1^2","RequestId":"r"}"#
        )
        .is_ok());
        // Aliyun's throttle comes as HTTP 400: retried, not failed.
        assert!(!permanent(aliyun(
            400,
            r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"触发流控"}"#.as_bytes()
        )));
        assert!(permanent(aliyun(
            400,
            r#"{"Code":"isv.TTS_TEMPLATE_ILLEGAL","Message":"TTS模板不合法"}"#.as_bytes()
        )));
        assert!(permanent(aliyun(
            400,
            br#"{"Code":"SignatureDoesNotMatch","Message":"..."}"#
        )));
        assert!(!permanent(aliyun(400, br#"{"Code":"isv.SOMETHING_NEW"}"#)));
        assert!(!permanent(aliyun(503, b"<html>")));
        assert!(permanent(aliyun(404, b"not found")));

        let tencent = |body: &[u8]| voice_answer(VoiceProvider::Tencent, 200, body);
        assert!(tencent(
            br#"{"Response":{"SendStatus":{"CallId":"c","SessionContext":"e"},"RequestId":"r"}}"#
        )
        .is_ok());
        assert!(permanent(tencent(
            br#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"m"},"RequestId":"r"}}"#
        )));
        assert!(permanent(tencent(
            br#"{"Response":{"Error":{"Code":"FailedOperation.TemplateIncorrectOrUnapproved","Message":"m"}}}"#
        )));
        assert!(!permanent(tencent(
            br#"{"Response":{"Error":{"Code":"AuthFailure.SignatureExpire","Message":"m"}}}"#
        )));
        assert!(!permanent(tencent(
            br#"{"Response":{"Error":{"Code":"LimitExceeded.PhoneNumberThirtySecondLimit"}}}"#
        )));
        assert!(!permanent(tencent(
            br#"{"Response":{"Error":{"Code":"InternalError.Timeout"}}}"#
        )));

        let template = |status, body: &[u8]| voice_answer(VoiceProvider::Template, status, body);
        assert!(template(200, br#"{"Code":"whatever"}"#).is_ok());
        assert!(permanent(template(422, b"bad number")));
        assert!(!permanent(template(429, b"")));
    }
}
