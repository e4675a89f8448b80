//! The HTTP perimeter: who may read, how a browser proves it without the read token ever
//! travelling in a URL (URLs land in server and proxy logs), and the limits that keep one
//! client from wearing the service down.
//!
//! - A read presents the read token as `Authorization: Bearer`, or the board's session cookie.
//!   The board gets that cookie from `POST /api/v1/session` with the token in the body; it is
//!   `HttpOnly` (no script can read it) and `SameSite=Strict` (no other site can use it), and
//!   its value is an HMAC of the read token, so changing the token ends every session.
//!   `?token=` is accepted only with `http.legacy_query_token = true`.
//! - Every secret is compared in constant time ([`crate::config::same_secret`]).
//! - Failed token checks (acknowledgements answered 401 or 403, logins, wrong bearer tokens on
//!   reads) are counted per client address; past `http.max_failed_auth` within
//!   `http.failed_auth_window` that address gets 429 until the window ends.
//! - At most `http.max_event_streams` event streams are open at once.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Semaphore;

use super::ApiError;
use crate::config::{same_secret, HttpSettings};

/// The board's session cookie.
pub const SESSION_COOKIE: &str = "hydrowatch_session";

/// How long the session cookie lasts in the browser: a duty room's board stays logged in
/// across shifts; changing the read token ends it at once.
const SESSION_MAX_AGE_S: u64 = 30 * 24 * 3600;

/// Most client addresses whose failures are remembered; beyond that the stalest is forgotten.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// The perimeter's state, shared by every handler.
pub struct Guard {
    failures: FailureLimiter,
    /// One permit per open event stream.
    pub event_streams: Arc<Semaphore>,
}

impl Guard {
    /// The limits `[http]` sets.
    pub fn new(http: &HttpSettings) -> Guard {
        Guard {
            failures: FailureLimiter::new(http.max_failed_auth, http.failed_auth_window),
            event_streams: Arc::new(Semaphore::new(http.max_event_streams)),
        }
    }

    /// The 429 answer when `peer` has failed too often lately.
    pub fn limited(&self, peer: IpAddr) -> Option<Response> {
        self.failures
            .blocked_for(peer, Instant::now())
            .map(too_many)
    }

    /// Counts one failed token check from `peer`.
    pub fn failed(&self, peer: IpAddr) {
        self.failures.failed(peer, Instant::now());
    }
}

fn too_many(wait: Duration) -> Response {
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed attempts from this address; wait and try again",
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The client's address, or `0.0.0.0` when the server was started without connection info
/// (then every client shares one budget of failures).
pub fn peer_ip(peer: Option<Extension<ConnectInfo<SocketAddr>>>) -> IpAddr {
    peer.map_or(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        |Extension(ConnectInfo(a))| a.ip(),
    )
}

/// The token in `Authorization: Bearer <token>`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

fn query_token(uri: &Uri) -> Option<String> {
    uri.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(|t| {
                urlencoding::decode(t)
                    .map(|c| c.into_owned())
                    .unwrap_or_default()
            })
    })
}

/// The session cookie's value for this read token: HMAC-SHA256 keyed by the token, so it
/// proves the token was presented without being it, and dies with it.
pub fn session_value(read_token: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(read_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"hydrowatch board session v1");
    hex::encode(mac.finalize().into_bytes())
}

/// The `Set-Cookie` value that starts a board session (`secure` when the board is reached
/// over HTTPS, per `http.public_url`).
pub fn session_cookie(read_token: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={}; Path=/; Max-Age={SESSION_MAX_AGE_S}; HttpOnly; SameSite=Strict{}",
        session_value(read_token),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends a board session.
pub fn expired_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
}

/// What a read request showed of the read token.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadAccess {
    /// The right token or session.
    Granted,
    /// Nothing, or only a stale session cookie: not a guess, not counted.
    Missing,
    /// A token that is not the read token: counts as a failure.
    Wrong,
}

/// Checks a read against `read_token`.
pub fn read_access(
    http: &HttpSettings,
    read_token: &str,
    headers: &HeaderMap,
    uri: &Uri,
) -> ReadAccess {
    let presented = bearer(headers).map(str::to_string).or_else(|| {
        if http.legacy_query_token {
            query_token(uri)
        } else {
            None
        }
    });
    if let Some(token) = presented {
        return if same_secret(&token, read_token) {
            ReadAccess::Granted
        } else {
            ReadAccess::Wrong
        };
    }
    match cookie(headers, SESSION_COOKIE) {
        Some(value) if same_secret(value, &session_value(read_token)) => ReadAccess::Granted,
        _ => ReadAccess::Missing,
    }
}

/// Whether a read presents a token that could be a guess (and so must respect the limiter).
pub fn presents_token(http: &HttpSettings, headers: &HeaderMap, uri: &Uri) -> bool {
    bearer(headers).is_some() || (http.legacy_query_token && query_token(uri).is_some())
}

/// Failures per client address in a fixed window that starts at its first failure.
struct FailureLimiter {
    max: u32,
    window: Duration,
    entries: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Clone, Copy)]
struct Failures {
    since: Instant,
    count: u32,
}

impl FailureLimiter {
    fn new(max: u32, window: Duration) -> FailureLimiter {
        FailureLimiter {
            max: max.max(1),
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// How long `ip` must still wait, when it has used up its failures.
    fn blocked_for(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let f = entries.get(&ip)?;
        let ends = f.since + self.window;
        (f.count >= self.max && now < ends).then(|| ends - now)
    }

    fn failed(&self, ip: IpAddr, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if !entries.contains_key(&ip) && entries.len() >= MAX_TRACKED_ADDRESSES {
            let window = self.window;
            entries.retain(|_, f| now.duration_since(f.since) < window);
            if entries.len() >= MAX_TRACKED_ADDRESSES {
                if let Some(stalest) = entries.iter().min_by_key(|(_, f)| f.since).map(|(k, _)| *k)
                {
                    entries.remove(&stalest);
                }
            }
        }
        let entry = entries.entry(ip).or_insert(Failures {
            since: now,
            count: 0,
        });
        if now.duration_since(entry.since) >= self.window {
            *entry = Failures {
                since: now,
                count: 0,
            };
        }
        entry.count = entry.count.saturating_add(1);
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_limited_after_its_failures_until_the_window_ends() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(limiter.blocked_for(ip, t0), None, "after {i} failures");
            limiter.failed(ip, t0);
        }
        assert!(limiter
            .blocked_for(ip, t0 + Duration::from_secs(59))
            .is_some());
        assert_eq!(limiter.blocked_for(other, t0), None, "per address");
        assert_eq!(limiter.blocked_for(ip, t0 + Duration::from_secs(60)), None);
        limiter.failed(ip, t0 + Duration::from_secs(61));
        assert_eq!(
            limiter.blocked_for(ip, t0 + Duration::from_secs(61)),
            None,
            "a new window"
        );
    }

    #[test]
    fn the_limiter_remembers_a_bounded_number_of_addresses() {
        let limiter = FailureLimiter::new(1, Duration::from_secs(60));
        let now = Instant::now();
        for i in 0..(MAX_TRACKED_ADDRESSES as u32 + 50) {
            limiter.failed(IpAddr::V4(Ipv4Addr::from(i)), now);
        }
        assert_eq!(limiter.tracked(), MAX_TRACKED_ADDRESSES);
    }

    #[test]
    fn the_session_cookie_proves_the_token_without_being_it() {
        let value = session_value("office-read");
        assert!(!value.contains("office-read"));
        assert_eq!(value, session_value("office-read"));
        assert_ne!(value, session_value("office-read2"));
        let set = session_cookie("office-read", false);
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        assert!(!set.contains("Secure"));
        assert!(session_cookie("x", true).ends_with("; Secure"));
    }
}
