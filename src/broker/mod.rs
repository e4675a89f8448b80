//! The embedded MQTT broker (`[broker] embedded = true`): rumqttd running inside the hydrowatch
//! process, so a small county can point its gauges straight at hydrowatch without installing
//! Mosquitto, and so `hydrowatch demo` needs no outside service.
//!
//! rumqttd runs on its own threads (one for its router, one per listener, each with its own
//! single-threaded runtime); hydrowatch's own MQTT source then connects to it over loopback
//! like any other client, so the ingest path is exactly the one used with an outside broker.
//!
//! What the embedded broker does *not* give (see docs/demo.md): its sessions and queued
//! messages live in memory only. When hydrowatch stops, the broker stops with it; a gauge's
//! unacknowledged QoS 1 publishes are recovered only because the gauge re-sends them after
//! reconnecting. For sites that need a broker that outlives hydrowatch, run Mosquitto.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};

/// How long to wait for the listener to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

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
}

/// A running embedded broker. It runs until the process exits: rumqttd has no shutdown.
#[derive(Debug)]
pub struct EmbeddedBroker {
    /// The address it listens on.
    pub listen: SocketAddr,
}

/// The rumqttd configuration: one MQTT 3.1.1 listener, limits generous enough for a county's
/// gauges and a backlog flush after an outage, and no persistence.
pub fn config(listen: SocketAddr, max_packet_bytes: usize) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        // hydrowatch's own payload limit is checked in the decoder, where a too large message
        // becomes a dead letter; the broker caps packets at what the MQTT source accepts
        // (`Limits::max_packet_bytes`), so that nothing it delivers can break the connection.
        max_payload_size: max_packet_bytes,
        max_inflight_count: 500,
        auth: None,
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

/// Starts rumqttd on `listen` and returns once the port accepts connections.
pub async fn start(listen: &str, max_packet_bytes: usize) -> Result<EmbeddedBroker, BrokerError> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| BrokerError::Listen(listen.to_string()))?;
    // rumqttd only logs a failed bind from its listener thread; binding first here turns a
    // taken port into a clear error.
    drop(std::net::TcpListener::bind(addr).map_err(|e| BrokerError::InUse(addr, e))?);
    let config = config(addr, max_packet_bytes);
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
        let connected = tokio::task::spawn_blocking(move || mqtt_handshake(probe).is_ok())
            .await
            .unwrap_or(false);
        if connected {
            tracing::info!(listen = %addr, "embedded MQTT broker listening");
            return Ok(EmbeddedBroker { listen: addr });
        }
        if Instant::now() >= deadline {
            return Err(BrokerError::Timeout(addr, START_TIMEOUT));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connects, sends an MQTT 3.1.1 CONNECT (clean session, empty client id), expects a
/// successful CONNACK and disconnects: the broker is not only listening but answering.
/// (A bare TCP probe makes rumqttd log an error for the connection that sent nothing.)
fn mqtt_handshake(addr: SocketAddr) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    #[rustfmt::skip]
    const CONNECT: [u8; 14] = [
        0x10, 12,                       // CONNECT, remaining length
        0, 4, b'M', b'Q', b'T', b'T',   // protocol name
        4,                              // protocol level 3.1.1
        0x02,                           // clean session
        0, 30,                          // keep alive, seconds
        0, 0,                           // empty client id
    ];
    stream.write_all(&CONNECT)?;
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
        mqtt_handshake(broker.listen).expect("answers MQTT");
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
