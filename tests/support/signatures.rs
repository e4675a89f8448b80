//! Provider signatures recomputed from a request as it arrived, following each provider's
//! published algorithm, independently of hydrowatch's code (shared by the voice tests).

#![allow(dead_code)]

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::receiver::Delivery;

type HmacSha256 = Hmac<Sha256>;

pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The query string's parameters in arrival order, percent-decoded.
pub fn query_pairs(d: &Delivery) -> Vec<(String, String)> {
    d.query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                urlencoding::decode(k).unwrap().into_owned(),
                urlencoding::decode(v).unwrap().into_owned(),
            )
        })
        .collect()
}

/// Aliyun ACS3-HMAC-SHA256, as "V3版本请求体&签名机制" describes it, rebuilt from the request
/// as received: the canonical query re-encoded (RFC 3986) and sorted, the `host` and every
/// `x-acs-*` header signed, the SHA-256 of the (empty) body.
pub fn expected_aliyun_authorization(d: &Delivery, key_id: &str, secret: &str) -> String {
    let mut params: Vec<(String, String)> = query_pairs(d)
        .into_iter()
        .map(|(k, v)| {
            (
                urlencoding::encode(&k).into_owned(),
                urlencoding::encode(&v).into_owned(),
            )
        })
        .collect();
    params.sort();
    let query = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers: Vec<(String, String)> = d
        .headers
        .iter()
        .filter(|(k, _)| k == "host" || k.starts_with("x-acs-"))
        .map(|(k, v)| (k.clone(), v.trim().to_string()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let canonical_request = format!(
        "{}\n{}\n{query}\n{canonical_headers}\n{signed}\n{}",
        d.method,
        d.path,
        sha256_hex(&d.body)
    );
    let to_sign = format!(
        "ACS3-HMAC-SHA256\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let signature = hex::encode(hmac_sha256(secret.as_bytes(), to_sign.as_bytes()));
    format!("ACS3-HMAC-SHA256 Credential={key_id},SignedHeaders={signed},Signature={signature}")
}
