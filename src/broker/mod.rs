//! The embedded MQTT broker (`[broker] embedded = true`): rumqttd running inside the hydrowatch
//! process, so a small county can point its gauges straight at hydrowatch without installing
//! Mosquitto, and so `hydrowatch demo` needs no outside service.
//!
//! rumqttd runs on its own threads (one for its router, one per listener, each with its own
//! single-threaded runtime); hydrowatch's own MQTT source then connects to it over loopback
//! like any other client, so the ingest path is exactly the one used with an outside broker.
//!
//! Beyond loopback the broker is a perimeter: with `broker.username`/`password` (or `users`)
//! rumqttd refuses every CONNECT without those credentials (it compares passwords in constant
//! time), and `check-config` refuses a listener beyond loopback without them. TLS
//! (`broker.tls_listen` with PEM files) is terminated here, by rustls in a task per
//! connection with a handshake deadline, and the decrypted stream is passed to the plain
//! listener: rumqttd's own TLS runs the handshake inside its accept loop without a deadline,
//! so one client that never finishes its handshake would keep everyone else out.
//!
//! What the embedded broker does *not* give (see docs/demo.md): its sessions and queued
//! messages live in memory only. When hydrowatch stops, the broker stops with it; a gauge's
//! unacknowledged QoS 1 publishes are recovered only because the gauge re-sends them after
//! reconnecting. For sites that need a broker that outlives hydrowatch, run Mosquitto.

pub mod client;

pub use client::{client, SourceError};

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use std::sync::Arc;

use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::config::{BrokerSettings, BrokerUser};

/// How long to wait for the listener to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a client may take over its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most TLS connections (handshaking or open) at once, like rumqttd's own connection limit.
const MAX_TLS_CONNECTIONS: usize = 10_000;

/// Errors starting the embedded broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker.listen `{0}` is not an address like 127.0.0.1:1883")]
    Listen(String),
    #[error("cannot listen on {0} for the embedded broker: {1} (is another broker running? set [broker] listen)")]
    InUse(SocketAddr, std::io::Error),
    #[error("cannot start the embedded broker's thread: {0}")]
    Thread(std::io::Error),
    #[error("the embedded broker stopped before listening on {0}: is the port already in use? (set [broker] listen)")]
    Stopped(SocketAddr),
    #[error("the embedded broker did not listen on {0} within {1:?}")]
    Timeout(SocketAddr, Duration),
    #[error("broker.tls_listen `{0}` is not an address like 0.0.0.0:8883")]
    TlsListen(String),
    #[error("cannot listen on {0} for the embedded broker's TLS: {1}")]
    TlsInUse(SocketAddr, std::io::Error),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// A running embedded broker. It runs until the process exits: rumqttd has no shutdown.
#[derive(Debug)]
pub struct EmbeddedBroker {
    /// The address it listens on.
    pub listen: SocketAddr,
    /// The TLS listener's address, when there is one.
    pub tls_listen: Option<SocketAddr>,
}

/// The rumqttd configuration: one MQTT 3.1.1 listener, limits generous enough for a county's
/// gauges and a backlog flush after an outage, and no persistence. With `users`, a CONNECT
/// must carry one of their usernames and its password.
pub fn config(listen: SocketAddr, max_packet_bytes: usize, users: &[BrokerUser]) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        // hydrowatch's own payload limit is checked in the decoder, where a too large message
        // becomes a dead letter; the broker caps packets at what the MQTT source accepts
        // (`Limits::max_packet_bytes`), so that nothing it delivers can break the connection.
        max_payload_size: max_packet_bytes,
        max_inflight_count: 500,
        auth: (!users.is_empty()).then(|| {
            users
                .iter()
                .map(|u| (u.username.clone(), u.password.clone()))
                .collect()
        }),
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "hydrowatch-v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_000,
            max_outgoing_packet_count: 200,
            // rumqttd keeps each topic filter's messages in a ring of segments and drops the
            // oldest segment when the ring is full: a subscriber that falls further behind
            // than this loses messages. 10 × 100 MiB is far more than a county produces while
            // hydrowatch is busy; memory is only used as segments fill.
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Config::default()
    }
}

/// Starts an open rumqttd on `listen` (no users, no TLS: for loopback) and returns once the
/// port accepts connections.
pub async fn start(listen: &str, max_packet_bytes: usize) -> Result<EmbeddedBroker, BrokerError> {
    let settings = BrokerSettings {
        embedded: true,
        listen: listen.to_string(),
        users: Vec::new(),
        tls: None,
    };
    start_with(&settings, max_packet_bytes).await
}

/// Starts rumqttd as `[broker]` says (listener, users, TLS listener) and returns once it
/// answers MQTT.
pub async fn start_with(
    settings: &BrokerSettings,
    max_packet_bytes: usize,
) -> Result<EmbeddedBroker, BrokerError> {
    let listen = settings.listen.as_str();
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| BrokerError::Listen(listen.to_string()))?;
    // Everything that can be refused is checked before rumqttd starts (it cannot be stopped).
    let tls = match &settings.tls {
        Some(t) => {
            let tls_addr: SocketAddr = t
                .listen
                .parse()
                .map_err(|_| BrokerError::TlsListen(t.listen.clone()))?;
            let acceptor = crate::tls::acceptor(&t.cert_file, &t.key_file)?;
            let listener = tokio::net::TcpListener::bind(tls_addr)
                .await
                .map_err(|e| BrokerError::TlsInUse(tls_addr, e))?;
            Some((listener, acceptor))
        }
        None => None,
    };
    // rumqttd only logs a failed bind from its listener thread; binding first here turns a
    // taken port into a clear error.
    drop(std::net::TcpListener::bind(addr).map_err(|e| BrokerError::InUse(addr, e))?);
    let config = config(addr, max_packet_bytes, &settings.users);
    let login = settings
        .users
        .first()
        .map(|u| (u.username.clone(), u.password.clone()));
    let thread = std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            // Returns only when every listener has stopped (e.g. the port was taken).
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker failed");
            }
        })
        .map_err(BrokerError::Thread)?;

    // Connect to where the listener is reachable: an unspecified address (0.0.0.0) is
    // reachable on loopback.
    let probe = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if thread.is_finished() {
            return Err(BrokerError::Stopped(addr));
        }
        let login = login.clone();
        let connected =
            tokio::task::spawn_blocking(move || mqtt_handshake(probe, login.as_ref()).is_ok())
                .await
                .unwrap_or(false);
        if connected {
            tracing::info!(
                listen = %addr,
                users = settings.users.len(),
                "embedded MQTT broker listening"
            );
            if settings.users.is_empty() {
                tracing::info!(
                    "the embedded broker has no users: it accepts anyone who reaches {addr}"
                );
            }
            let tls_listen = match tls {
                Some((listener, acceptor)) => {
                    let tls_addr = listener.local_addr().ok();
                    tracing::info!(listen = ?tls_addr, "embedded MQTT broker listening for TLS");
                    tokio::spawn(tls_front(listener, acceptor, probe));
                    tls_addr
                }
                None => None,
            };
            return Ok(EmbeddedBroker {
                listen: addr,
                tls_listen,
            });
        }
        if Instant::now() >= deadline {
            return Err(BrokerError::Timeout(addr, START_TIMEOUT));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The TLS listener: each connection gets its own task, a handshake deadline, and then a
/// plain connection to the broker's own listener that carries its bytes both ways.
async fn tls_front(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    broker: SocketAddr,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_TLS_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(connection) => connection,
            Err(e) => {
                // Out of file descriptors, typically: wait instead of spinning.
                tracing::warn!(error = %e, "embedded broker: cannot accept a TLS connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut tls =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "embedded broker: TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "embedded broker: TLS handshake timed out");
                        return;
                    }
                };
            let mut plain = match tokio::net::TcpStream::connect(broker).await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "embedded broker: cannot reach its own listener");
                    return;
                }
            };
            let _ = plain.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
        });
    }
}

/// Connects, sends an MQTT 3.1.1 CONNECT (clean session, empty client id, the login when the
/// broker has users), expects a successful CONNACK and disconnects: the broker is not only
/// listening but answering. (A bare TCP probe makes rumqttd log an error for the connection
/// that sent nothing.)
fn mqtt_handshake(addr: SocketAddr, login: Option<&(String, String)>) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    stream.write_all(&connect_packet(login))?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack)?;
    if connack[0] != 0x20 || connack[3] != 0 {
        return Err(std::io::Error::other(format!(
            "unexpected CONNACK {connack:?}"
        )));
    }
    stream.write_all(&[0xE0, 0])?; // DISCONNECT
    Ok(())
}

/// An MQTT 3.1.1 CONNECT: clean session, keep-alive 30 s, empty client id, and the username
/// and password when given.
fn connect_packet(login: Option<&(String, String)>) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &[u8]) {
        let len = s.len().min(u16::MAX as usize);
        out.extend_from_slice(&(len as u16).to_be_bytes());
        out.extend_from_slice(&s[..len]);
    }
    let mut body = Vec::new();
    string(&mut body, b"MQTT");
    body.push(4); // protocol level 3.1.1
    body.push(if login.is_some() { 0xC2 } else { 0x02 }); // username, password, clean session
    body.extend_from_slice(&30u16.to_be_bytes());
    string(&mut body, b""); // client id
    if let Some((username, password)) = login {
        string(&mut body, username.as_bytes());
        string(&mut body, password.as_bytes());
    }
    let mut packet = vec![0x10];
    let mut remaining = body.len();
    loop {
        let mut byte = (remaining % 128) as u8;
        remaining /= 128;
        if remaining > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if remaining == 0 {
            break;
        }
    }
    packet.extend(body);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_and_accepts_connections() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let listen = format!("127.0.0.1:{port}");
        let broker = start(&listen, 1024 * 1024).await.expect("broker starts");
        assert_eq!(broker.listen.port(), port);
        mqtt_handshake(broker.listen, None).expect("answers MQTT");
    }

    #[tokio::test]
    async fn a_taken_port_is_a_clear_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        match start(&addr.to_string(), 1024).await {
            Err(BrokerError::InUse(a, _)) => assert_eq!(a, addr),
            other => panic!("expected InUse, got {other:?}"),
        }
    }
}
