//! The telemetry centre's TCP loop: RTUs connect, send report frames, and are answered only
//! after what they sent is committed, like an MQTT acknowledgement.
//!
//! The loop knows nothing of the journal: every report and every refusal goes to the
//! `commit` callback (the daemon wires it to the journal writer), and the answer is written
//! only when its future resolves `Ok`. A failed commit gets no answer, so the RTU sends the
//! report again. Refusals are committed as dead letters too, then answered: NAK for damage a
//! resend can repair (CRC, truncated, wrong length, bad packet), the usual answer for content
//! no resend changes (unknown station, bad body), so that an RTU does not retry forever.
//! Keep-alives (2F) are not answered.
//!
//! Each connection has its own bounded buffer and an idle timeout counted from the last
//! complete frame, not the last byte: a client that trickles a byte a minute is dropped as
//! surely as a silent one. At most `max_connections` are served at once; more are closed as
//! soon as they are accepted, so that a flood of connections cannot exhaust file descriptors
//! the journal and the API need.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::frame::{function, Direction, EndMark, Frame, Header};
use super::multipacket::{Assembly, Reassembler};
use super::readings::LevelElement;
use super::reply::{self, ReplyEnd};
use super::stream::{FrameDecoder, DEFAULT_MAX_FRAME};
use super::{decode_report, Report, Sl651Error, StationAddress};
use crate::model::Reading;

/// How a catalogue station is known on the SL 651 link.
#[derive(Debug, Clone, PartialEq)]
pub struct StationLink {
    /// The station id readings are filed under.
    pub id: String,
    /// Which element is the station's level (`sl651_level`).
    pub level: LevelElement,
}

/// What the centre needs to know.
#[derive(Debug, Clone)]
pub struct CenterSettings {
    /// Zone of the RTUs' clocks (frames carry none).
    pub time_zone: TimeZone,
    pub reply_end: ReplyEnd,
    /// A connection that completes no frame for this long is closed.
    pub idle_timeout: Duration,
    pub max_frame: usize,
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
    /// Stations by their five-byte address.
    pub stations: HashMap<StationAddress, StationLink>,
}

impl Default for CenterSettings {
    fn default() -> Self {
        CenterSettings {
            time_zone: TimeZone::get("Asia/Shanghai").unwrap_or(TimeZone::UTC),
            reply_end: ReplyEnd::Eot,
            idle_timeout: Duration::from_secs(600),
            max_frame: DEFAULT_MAX_FRAME,
            max_connections: 20_000,
            stations: HashMap::new(),
        }
    }
}

/// What the centre hands to `commit`.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// A report from a known station, decoded.
    Readings {
        station: String,
        readings: Vec<Reading>,
        /// Every element, for the audit copy.
        report: Report,
        /// The frame (all its packets) as received.
        raw: Vec<u8>,
    },
    /// A refused frame, for the dead letters.
    DeadLetter {
        /// Stable label (`crc`, `unknown_station`, ...).
        cause: &'static str,
        detail: String,
        /// The frame as received, as far as it was delimited (empty when nothing was).
        raw: Vec<u8>,
        /// The station address, when the header could be read.
        station: Option<StationAddress>,
    },
}

impl Delivery {
    /// The frame's bytes as received.
    pub fn raw(&self) -> &[u8] {
        match self {
            Delivery::Readings { raw, .. } | Delivery::DeadLetter { raw, .. } => raw,
        }
    }
}

/// Accepts RTU connections until `shutdown` resolves; then stops accepting and ends the
/// connections (a report not yet answered is sent again by its RTU).
pub async fn serve<C, Fut, E>(
    listener: TcpListener,
    settings: Arc<CenterSettings>,
    commit: C,
    shutdown: impl Future<Output = ()>,
) where
    C: Fn(Delivery) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Display + Send,
{
    let mut connections = JoinSet::new();
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                        // Closing at once tells the RTU to retry later, instead of letting
                        // it wait in a backlog that is never served.
                        metrics::counter!("hydrowatch_sl651_connections_total", "result" => "refused").increment(1);
                        tracing::debug!(%peer, "SL 651 connection refused: max_connections reached");
                        drop(socket);
                        continue;
                    };
                    metrics::counter!("hydrowatch_sl651_connections_total", "result" => "accepted").increment(1);
                    let settings = Arc::clone(&settings);
                    let commit = commit.clone();
                    connections.spawn(async move {
                        let _open = OpenConnection::new();
                        if let Err(e) = connection(socket, &settings, &commit).await {
                            tracing::debug!(%peer, "SL 651 connection ended: {e}");
                        }
                        drop(slot);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!("SL 651 accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

/// Counts an open connection in `hydrowatch_sl651_connections_open` for as long as it lives
/// (also when its task is aborted at shutdown).
struct OpenConnection;

impl OpenConnection {
    fn new() -> OpenConnection {
        metrics::gauge!("hydrowatch_sl651_connections_open").increment(1.0);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!("hydrowatch_sl651_connections_open").decrement(1.0);
    }
}

/// Damage that a resend can repair: answered NAK.
fn resend_helps(e: &Sl651Error) -> bool {
    matches!(
        e,
        Sl651Error::Crc { .. }
            | Sl651Error::Truncated { .. }
            | Sl651Error::BadLength { .. }
            | Sl651Error::BadPacket { .. }
    )
}

fn centre_now(tz: &TimeZone) -> jiff::civil::DateTime {
    jiff::Timestamp::now().to_zoned(tz.clone()).datetime()
}

async fn connection<C, Fut, E>(
    mut socket: TcpStream,
    settings: &CenterSettings,
    commit: &C,
) -> std::io::Result<()>
where
    C: Fn(Delivery) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut decoder = FrameDecoder::new(settings.max_frame);
    let mut reassembler = Reassembler::default();
    // Small: ten thousand idle RTU links must not hold 40 MB of read buffers. A frame
    // longer than this arrives in several reads.
    let mut buf = vec![0u8; 1024];
    // The serial of the transfer's first packet, echoed in answers to later packets.
    let mut serials: HashMap<(StationAddress, u8), u16> = HashMap::new();
    let mut deadline = tokio::time::Instant::now() + settings.idle_timeout;
    loop {
        let n = match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Err(_) => {
                metrics::counter!("hydrowatch_sl651_idle_closed_total").increment(1);
                return Ok(()); // idle: no complete frame for idle_timeout
            }
            Ok(read) => read?,
        };
        if n == 0 {
            if let Some(e) = decoder.finish() {
                rejected(&e);
                let _ = commit(dead_letter(&e, Vec::new())).await;
            }
            return Ok(());
        }
        for item in decoder.push_keeping_refused(&buf[..n]) {
            deadline = tokio::time::Instant::now() + settings.idle_timeout;
            metrics::counter!("hydrowatch_sl651_frames_received_total").increment(1);
            let answer = match item {
                Ok(frame) => {
                    handle_frame(frame, settings, commit, &mut reassembler, &mut serials).await
                }
                Err(refused) => {
                    let e = refused.error;
                    rejected(&e);
                    let committed = commit(dead_letter(&e, refused.raw)).await.is_ok();
                    match e.header() {
                        Some(h)
                            if committed && resend_helps(&e) && h.direction == Direction::Up =>
                        {
                            nak(h, settings)
                        }
                        _ => None,
                    }
                }
            };
            if let Some(bytes) = answer {
                socket.write_all(&bytes).await?;
                let end = bytes_end(&bytes);
                metrics::counter!("hydrowatch_sl651_replies_total", "end" => end).increment(1);
            }
        }
    }
}

/// The end mark of an answer the centre wrote, for metrics.
fn bytes_end(answer: &[u8]) -> &'static str {
    match Frame::parse(answer).map(|f| f.end) {
        Ok(EndMark::Ack) => "ack",
        Ok(EndMark::Nak) => "nak",
        Ok(EndMark::Eot) => "eot",
        Ok(EndMark::Esc) => "esc",
        _ => "other",
    }
}

/// Counts a refused frame by cause.
fn rejected(e: &Sl651Error) {
    metrics::counter!("hydrowatch_sl651_frames_rejected_total", "cause" => e.cause()).increment(1);
}

fn dead_letter(e: &Sl651Error, raw: Vec<u8>) -> Delivery {
    let detail = match e.header() {
        Some(h) => format!("station {} function {:02X}: {e}", h.station, h.function),
        None => e.to_string(),
    };
    let station = match e {
        Sl651Error::UnknownStation { address } => Some(*address),
        _ => e.header().map(|h| h.station),
    };
    Delivery::DeadLetter {
        cause: e.cause(),
        detail,
        raw,
        station,
    }
}

fn nak(h: &Header, settings: &CenterSettings) -> Option<Vec<u8>> {
    reply::answer(h, 0, centre_now(&settings.time_zone), EndMark::Nak).ok()
}

/// What one complete (reassembled) uplink report frame delivers: its readings for a known
/// station, else a dead letter; with the serial number its answer echoes. The same for a
/// frame from a TCP link and one bridged over MQTT.
pub fn deliver(whole: &Frame, settings: &CenterSettings) -> (Delivery, u16) {
    let delivery = match settings.stations.get(&whole.header.station) {
        None => dead_letter(
            &Sl651Error::UnknownStation {
                address: whole.header.station,
            },
            whole.raw.clone(),
        ),
        Some(link) => match decode_report(whole, &link.id, link.level, &settings.time_zone) {
            Ok(decoded) => Delivery::Readings {
                station: link.id.clone(),
                readings: decoded.readings,
                report: decoded.report,
                raw: whole.raw.clone(),
            },
            Err(e) => dead_letter(&e, whole.raw.clone()),
        },
    };
    let serial = match &delivery {
        Delivery::Readings { report, .. } => report.serial,
        Delivery::DeadLetter { .. } => match whole.body.get(..2) {
            Some([a, b]) => u16::from_be_bytes([*a, *b]),
            _ => 0,
        },
    };
    if let Delivery::DeadLetter { cause, .. } = &delivery {
        metrics::counter!("hydrowatch_sl651_frames_rejected_total", "cause" => *cause).increment(1);
    }
    (delivery, serial)
}

/// A frame that is not a report (nor a keep-alive) from an RTU: a dead letter.
pub fn not_a_report(frame: &Frame) -> Delivery {
    let e = Sl651Error::Body(format!(
        "function {:02X} is not a report",
        frame.header.function
    ));
    rejected(&e);
    dead_letter(&e, frame.raw.clone())
}

/// Commits what a frame carries and returns the answer to write, if any.
async fn handle_frame<C, Fut, E>(
    frame: Frame,
    settings: &CenterSettings,
    commit: &C,
    reassembler: &mut Reassembler,
    serials: &mut HashMap<(StationAddress, u8), u16>,
) -> Option<Vec<u8>>
where
    C: Fn(Delivery) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let h = frame.header.clone();
    if h.direction != Direction::Up || h.function == function::KEEP_ALIVE {
        return None;
    }
    let now = centre_now(&settings.time_zone);
    if !function::is_report(h.function) {
        let _ = commit(not_a_report(&frame)).await;
        return None;
    }
    let key = (h.station, h.function);
    if let Some(p) = h.packet {
        if p.number == 1 && frame.body.len() >= 2 {
            serials.insert(key, u16::from_be_bytes([frame.body[0], frame.body[1]]));
        }
    }
    let raw = frame.raw.clone();
    let whole = match reassembler.push(frame) {
        Ok(Assembly::Complete(whole)) => whole,
        Ok(Assembly::Partial { .. }) => {
            // The packet is held; the report is committed when all packets are in.
            let serial = serials.get(&key).copied().unwrap_or(0);
            return reply::answer(&h, serial, now, EndMark::Ack).ok();
        }
        Err(e) => {
            rejected(&e);
            let committed = commit(dead_letter(&e, raw)).await.is_ok();
            return if committed { nak(&h, settings) } else { None };
        }
    };
    serials.remove(&key);
    let end = reply::end_for(whole.end, settings.reply_end)?;
    let (delivery, serial) = deliver(&whole, settings);
    match commit(delivery).await {
        // The send time is the centre's clock when the answer leaves, after the commit.
        Ok(()) => reply::answer(&h, serial, centre_now(&settings.time_zone), end).ok(),
        Err(e) => {
            // No answer: the RTU sends the report again, as a broker redelivers.
            tracing::warn!(station = %h.station, "SL 651 report not committed: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::sync::Semaphore;

    /// Worked example 2 of tests/data/sl651_examples.md.
    const REPORT: &str = "7E7E 00 0081120005 FFFF 32 0020 02 25B9 260701063006
        F1F1 0081120005 50 F0F0 2607010630 2619001848 38121200 03 C648";
    const KEEP_ALIVE: &str = "7E7E 01 0012345678 1234 2F 0008 02 0003 591011155111 03 6BCA";

    fn bytes(hex: &str) -> Vec<u8> {
        let clean: String = hex.split_whitespace().collect();
        super::super::frame::hex_text(clean.as_bytes()).expect("hex")
    }

    fn settings(idle: Duration) -> Arc<CenterSettings> {
        let mut stations = HashMap::new();
        stations.insert(
            "0081120005".parse().expect("address"),
            StationLink {
                id: "rain-5".into(),
                level: LevelElement::Z,
            },
        );
        Arc::new(CenterSettings {
            idle_timeout: idle,
            stations,
            ..CenterSettings::default()
        })
    }

    type Log = Arc<Mutex<Vec<Delivery>>>;

    /// Starts a centre whose commits wait for a permit from the returned semaphore.
    async fn start(idle: Duration) -> (std::net::SocketAddr, Log, Arc<Semaphore>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let log: Log = Arc::default();
        let gate = Arc::new(Semaphore::new(0));
        let (log2, gate2) = (Arc::clone(&log), Arc::clone(&gate));
        let commit = move |d: Delivery| {
            let (log, gate) = (Arc::clone(&log2), Arc::clone(&gate2));
            async move {
                let permit = gate.acquire().await.map_err(|e| e.to_string())?;
                permit.forget();
                log.lock().map_err(|e| e.to_string())?.push(d);
                Ok::<(), String>(())
            }
        };
        tokio::spawn(serve(
            listener,
            settings(idle),
            commit,
            std::future::pending(),
        ));
        (addr, log, gate)
    }

    async fn read_frame(client: &mut TcpStream) -> Frame {
        let mut decoder = FrameDecoder::default();
        let mut buf = [0u8; 512];
        loop {
            let n = client.read(&mut buf).await.expect("read");
            assert!(n > 0, "connection closed before an answer");
            if let Some(r) = decoder.push(&buf[..n]).into_iter().next() {
                return r.expect("answer frame");
            }
        }
    }

    #[tokio::test]
    async fn a_report_is_answered_only_after_its_commit() {
        let (addr, log, gate) = start(Duration::from_secs(5)).await;
        let mut client = TcpStream::connect(addr).await.expect("connect");
        // A keep-alive first: never answered.
        client.write_all(&bytes(KEEP_ALIVE)).await.expect("write");
        client.write_all(&bytes(REPORT)).await.expect("write");
        let mut probe = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(300), client.read(&mut probe)).await;
        assert!(early.is_err(), "answered before the commit resolved");
        assert!(log.lock().expect("log").is_empty());

        gate.add_permits(1);
        let answer = read_frame(&mut client).await;
        assert_eq!(answer.header.function, 0x32);
        assert_eq!(answer.header.direction, Direction::Down);
        assert_eq!(answer.end, EndMark::Eot);
        assert_eq!(&answer.body[..2], &[0x25, 0xB9]);
        let log = log.lock().expect("log");
        match log.as_slice() {
            [Delivery::Readings {
                station, readings, ..
            }] => {
                assert_eq!(station, "rain-5");
                assert_eq!(readings[0].rain_total_mm, Some(184.8));
            }
            other => panic!("unexpected deliveries {other:?}"),
        }
    }

    #[tokio::test]
    async fn bad_crc_is_dead_lettered_and_answered_nak() {
        let (addr, log, gate) = start(Duration::from_secs(5)).await;
        gate.add_permits(10);
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let mut bad = bytes(REPORT);
        let n = bad.len();
        bad[n - 1] ^= 0x55;
        client.write_all(&bad).await.expect("write");
        let answer = read_frame(&mut client).await;
        assert_eq!(answer.end, EndMark::Nak);
        assert!(matches!(
            log.lock().expect("log").as_slice(),
            [Delivery::DeadLetter { cause: "crc", .. }]
        ));
    }

    #[tokio::test]
    async fn an_unknown_station_is_dead_lettered_then_answered() {
        let (addr, log, gate) = start(Duration::from_secs(5)).await;
        gate.add_permits(10);
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let up = "7E7E 01 0012345678 1234 30 002B 02 0003 591011154947 F1F1 0012345678 48
            F0F0 5910111549 2019000005 2619000005 392300000127 38121115 03 20FA";
        client.write_all(&bytes(up)).await.expect("write");
        let answer = read_frame(&mut client).await;
        assert_eq!(answer.end, EndMark::Eot);
        assert!(matches!(
            log.lock().expect("log").as_slice(),
            [Delivery::DeadLetter {
                cause: "unknown_station",
                ..
            }]
        ));
    }

    #[tokio::test]
    async fn a_silent_client_is_dropped_after_the_idle_timeout() {
        let (addr, _log, _gate) = start(Duration::from_millis(200)).await;
        let mut client = TcpStream::connect(addr).await.expect("connect");
        client.write_all(b"\x7E\x7E\x01").await.expect("write");
        let mut buf = [0u8; 16];
        let closed = tokio::time::timeout(Duration::from_secs(3), client.read(&mut buf))
            .await
            .expect("closed within the timeout");
        assert_eq!(closed.ok(), Some(0));
    }

    #[tokio::test]
    async fn many_connections_are_served_at_once() {
        let (addr, log, gate) = start(Duration::from_secs(5)).await;
        gate.add_permits(100);
        let mut clients = Vec::new();
        for _ in 0..8 {
            clients.push(TcpStream::connect(addr).await.expect("connect"));
        }
        for c in &mut clients {
            c.write_all(&bytes(REPORT)).await.expect("write");
        }
        for c in &mut clients {
            assert_eq!(read_frame(c).await.end, EndMark::Eot);
        }
        assert_eq!(log.lock().expect("log").len(), 8);
    }
}
