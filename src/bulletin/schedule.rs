//! Writes each hydrological day's bulletin shortly after the day ends, and sends it to the
//! chat channels of the teams with `bulletin = true`.
//!
//! The journal keeps the written bulletin and one send row per (day, channel), created in
//! the same transaction; a row ends delivered or failed, so a restart neither sends a day's
//! bulletin twice nor forgets one that was not yet delivered. Delivery follows the outbox's
//! failure policy (`notify::outcome`): a refusal fails the row at once, a transient failure
//! is retried with the channel's backoff until its `give_up_after`.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use super::{render, Bulletin};
use crate::config::{ChannelKind, Language, Settings};
use crate::journal::{self, BulletinSendOutcome, JournalError};
use crate::model::{now_millis, Millis};
use crate::notify::channels::{self, Request};
use crate::notify::outcome::{self, Failure};

/// A day's bulletin is written this long after the day ends, so that readings a station
/// sends a little late still count.
pub const WRITE_AFTER: Duration = Duration::from_secs(5 * 60);
/// How often the task looks for a day to write and a bulletin to send.
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// Missed days (hydrowatch down across boundaries) are written this far back.
pub const CATCH_UP_DAYS: usize = 7;
/// The longest wait before writing again after writing failed (a full disk, a broken row).
const MAX_WRITE_BACKOFF: Duration = Duration::from_secs(600);

/// The chat channels that receive the bulletin: `{team}/{channel id}` of every WeCom,
/// DingTalk and Feishu channel of a team with `bulletin = true`.
pub fn destinations(settings: &Settings) -> Vec<String> {
    settings
        .teams
        .iter()
        .filter(|t| t.bulletin)
        .flat_map(|t| {
            t.channels
                .iter()
                .filter(|c| {
                    matches!(
                        c.kind,
                        ChannelKind::Wecom | ChannelKind::Dingtalk | ChannelKind::Feishu
                    )
                })
                .map(move |c| crate::notify::destination(t, c))
        })
        .collect()
}

/// The page's address for people: `http.public_url` (else the listen address) +
/// `/bulletins/{date}`.
pub fn page_url(settings: &Settings, date: &str, lang: Language) -> String {
    let base = settings
        .http
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", settings.http.listen));
    let lang = match lang {
        Language::Chinese => "zh",
        Language::English => "en",
    };
    format!(
        "{}/bulletins/{date}?lang={lang}",
        base.trim_end_matches('/')
    )
}

/// The rain chart's address for a chat service's servers: only with `http.public_url` and no
/// read token (they have none to send).
pub fn public_chart_url(settings: &Settings, date: &str) -> Option<String> {
    let base = settings.http.public_url.as_ref()?;
    if settings.http.read_token.is_some() {
        return None;
    }
    Some(format!(
        "{}/bulletins/{date}/rain.png",
        base.trim_end_matches('/')
    ))
}

/// Writes the oldest bulletin that is due and not written yet, and returns its date: the last
/// day that ended at least [`WRITE_AFTER`] before `now`, and the days since the last bulletin
/// written (hydrowatch was down across a boundary), up to [`CATCH_UP_DAYS`] back. A journal
/// with no bulletin yet starts with the last ended day: a first start does not send a week
/// of bulletins.
pub fn write_due(
    conn: &Connection,
    settings: &Settings,
    now: Millis,
) -> Result<Option<String>, super::BulletinError> {
    let Some(last) = super::last_ended_day(settings, now - WRITE_AFTER.as_millis() as Millis)
    else {
        return Ok(None);
    };
    let mut day = last;
    if let Some(latest) = journal::latest_bulletin_day(conn)?.and_then(|d| d.parse().ok()) {
        for _ in 0..CATCH_UP_DAYS {
            match day.yesterday() {
                Ok(before) if before > latest => day = before,
                _ => break,
            }
        }
    }
    while journal::has_bulletin(conn, &day.to_string())? {
        match day.tomorrow() {
            Ok(next) if next <= last => day = next,
            _ => return Ok(None),
        }
    }
    let date = day.to_string();
    let bulletin = super::load(conn, settings, day, now)?;
    let json = super::to_json(&bulletin);
    let written = journal::store_bulletin(conn, &date, &json, &destinations(settings), now)?;
    Ok(written.then_some(date))
}

/// Runs until cancelled.
pub async fn run(settings: Arc<Settings>, http: reqwest::Client) {
    let conn = match open(&settings).await {
        Some(c) => Arc::new(std::sync::Mutex::new(c)),
        None => return,
    };
    let mut interval = tokio::time::interval(CHECK_EVERY);
    // After a failure to write, wait longer each time (computing a day is not free).
    let mut write_failures = 0_u32;
    let mut next_write = std::time::Instant::now();
    loop {
        interval.tick().await;
        if std::time::Instant::now() >= next_write {
            let (s, c) = (settings.clone(), conn.clone());
            let written = tokio::task::spawn_blocking(move || {
                let conn = c.lock().unwrap_or_else(|p| p.into_inner());
                write_due(&conn, &s, now_millis()).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(format!("the task failed: {e}")));
            match written {
                Ok(written) => {
                    write_failures = 0;
                    if let Some(date) = written {
                        tracing::info!(%date, "daily bulletin written");
                    }
                }
                Err(error) => {
                    write_failures += 1;
                    let wait = CHECK_EVERY
                        .saturating_mul(1 << write_failures.min(12))
                        .min(MAX_WRITE_BACKOFF);
                    next_write = std::time::Instant::now() + wait;
                    tracing::warn!(%error, failures = write_failures, retry_in = ?wait,
                        "daily bulletin: cannot write it");
                }
            }
        }
        deliver_due(&settings, &conn, &http).await;
    }
}

async fn open(settings: &Arc<Settings>) -> Option<Connection> {
    let s = settings.clone();
    match tokio::task::spawn_blocking(move || journal::open(&s.journal.path)).await {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "daily bulletin: cannot open the journal");
            None
        }
        Err(_) => None,
    }
}

type Shared = Arc<std::sync::Mutex<Connection>>;

async fn db<T: Send + 'static>(
    conn: &Shared,
    f: impl FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
) -> Result<T, JournalError> {
    let conn = conn.clone();
    tokio::task::spawn_blocking(move || {
        let guard = conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    })
    .await
    .unwrap_or_else(|e| panic!("bulletin database task failed: {e}"))
}

/// Sends every pending bulletin whose time has come, one attempt each.
async fn deliver_due(settings: &Settings, conn: &Shared, http: &reqwest::Client) {
    let pending = match db(conn, journal::pending_bulletin_sends).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "daily bulletin: cannot read pending sends");
            return;
        }
    };
    let now = now_millis();
    for send in pending.into_iter().filter(|s| s.next_attempt_ms <= now) {
        let day = send.day.clone();
        let json = match db(conn, move |c| journal::bulletin(c, &day)).await {
            Ok(Some(j)) => j,
            _ => continue,
        };
        let attempts = send.attempts + 1;
        let result = match crate::notify::lookup(settings, &send.destination) {
            None => Err(Failure::Refused(format!(
                "channel `{}` is no longer configured",
                send.destination
            ))),
            Some((_, channel)) => match serde_json::from_str::<Bulletin>(&json) {
                Ok(b) => deliver(settings, http, channel, &b).await,
                Err(e) => Err(Failure::Refused(format!("stored bulletin unreadable: {e}"))),
            },
        };
        let now = now_millis();
        let give_up_after = crate::notify::lookup(settings, &send.destination)
            .map_or(Duration::ZERO, |(_, c)| c.give_up_after);
        let backoff = crate::notify::lookup(settings, &send.destination)
            .map_or(Duration::from_secs(1), |(_, c)| c.backoff);
        let (day, dest) = (send.day.clone(), send.destination.clone());
        let recorded = match result {
            Ok(()) => {
                tracing::info!(day = %day, destination = %dest, "daily bulletin delivered");
                db(conn, move |c| {
                    journal::record_bulletin_send(
                        c,
                        &day,
                        &dest,
                        attempts,
                        BulletinSendOutcome::Delivered(now),
                    )
                })
                .await
            }
            Err(failure) => {
                let give_up = send.written_ms + give_up_after.as_millis() as Millis;
                let message = failure.message();
                tracing::warn!(day = %day, destination = %dest, attempts, error = %message,
                    "daily bulletin not delivered");
                let permanent = matches!(failure, Failure::Refused(_)) || now >= give_up;
                let wait = (backoff.as_millis() as Millis)
                    .saturating_mul(1 << (attempts - 1).clamp(0, 16))
                    .min(60_000);
                db(conn, move |c| {
                    let outcome = if permanent {
                        BulletinSendOutcome::Failed(now, &message)
                    } else {
                        BulletinSendOutcome::Retry(now + wait, &message)
                    };
                    journal::record_bulletin_send(c, &day, &dest, attempts, outcome)
                })
                .await
            }
        };
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "daily bulletin: cannot record a send");
        }
    }
}

/// One attempt: the markdown, then (WeCom) the rain chart as an image. The markdown is the
/// bulletin (it links to the page with every chart); the image is sent once, best effort: a
/// refused or failed image is logged, never a reason to post the text again.
async fn deliver(
    settings: &Settings,
    http: &reqwest::Client,
    channel: &crate::config::Channel,
    bulletin: &Bulletin,
) -> Result<(), Failure> {
    let lang = channel.language;
    let link = page_url(settings, &bulletin.date, lang);
    let title = match lang {
        Language::Chinese => format!("水雨情日报 {}", bulletin.date),
        Language::English => format!("Daily bulletin {}", bulletin.date),
    };
    let text = render::markdown_for_chat(bulletin, settings, lang, &link);
    // A DingTalk robot cannot take an uploaded image, only one its servers fetch by URL: the
    // rain chart goes in when they can, i.e. the page is published (`http.public_url`) and
    // reading needs no token.
    let text = match (channel.kind, public_chart_url(settings, &bulletin.date)) {
        (ChannelKind::Dingtalk, Some(chart)) => format!("{text}\n\n![rain]({chart})"),
        _ => text,
    };
    let Some(request) = channels::bulletin_request(channel, &title, &text, now_millis()) else {
        return Err(Failure::Refused("not a chat channel".into()));
    };
    send(http, channel, request).await?;
    if let Some(png) = super::image::rain_png(bulletin) {
        let md5 = super::image::md5_hex(&png);
        if let Some(request) = channels::bulletin_image_request(channel, &png, &md5) {
            if let Err(failure) = send(http, channel, request).await {
                tracing::warn!(date = %bulletin.date, channel = %channel.id, error = %failure.message(),
                    "daily bulletin: the rain chart image was not delivered (the text was)");
            }
        }
    }
    Ok(())
}

async fn send(
    http: &reqwest::Client,
    channel: &crate::config::Channel,
    req: Request,
) -> Result<(), Failure> {
    let (status, body) = crate::notify::dispatch::send(http, channel, req).await?;
    outcome::http_answer(channel.kind, status, &body)
}
