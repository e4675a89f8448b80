//! How rumqttd 0.20, the embedded broker, treats hydrowatch's kind of session: fixed client id,
//! clean session off, QoS 1, manual acknowledgements. Findings are in docs/demo.md.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn persistent(port: u16) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new("hydrowatch-session-test", "127.0.0.1", port);
    o.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(5));
    AsyncClient::new(o, 100)
}

async fn publish(port: u16, payloads: &[&str]) {
    let (client, mut el) = AsyncClient::new(
        MqttOptions::new(format!("pub-{port}-{}", payloads[0]), "127.0.0.1", port),
        100,
    );
    for p in payloads {
        client
            .publish(
                "hydro/g/data",
                QoS::AtLeastOnce,
                false,
                p.as_bytes().to_vec(),
            )
            .await
            .unwrap();
    }
    let mut acked = 0;
    while acked < payloads.len() {
        if let Event::Incoming(Packet::PubAck(_)) = el.poll().await.expect("publisher") {
            acked += 1;
        }
    }
}

fn payloads(got: &[rumqttc::Publish]) -> Vec<String> {
    got.iter()
        .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
        .collect()
}

/// Polls until `n` publishes arrive; returns (session_present of the ConnAck, publishes).
async fn receive(el: &mut EventLoop, n: usize) -> (Option<bool>, Vec<rumqttc::Publish>) {
    let mut session = None;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while got.len() < n {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(a))) => session = Some(a.session_present),
                Ok(Event::Incoming(Packet::Publish(p))) => got.push(p),
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    (session, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_session_survives_a_reconnect_with_unacked_and_queued_messages() {
    let port = free_port();
    hydrowatch::broker::start(&format!("127.0.0.1:{port}"), 1 << 20)
        .await
        .expect("broker");

    let (client, mut el) = persistent(port);
    client
        .subscribe("hydro/+/data", QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = el.poll().await.unwrap() {
            break;
        }
    }
    publish(port, &["a", "b"]).await;
    let (_, got) = receive(&mut el, 2).await;
    assert_eq!(payloads(&got), ["a", "b"]);
    client.ack(&got[0]).await.unwrap(); // ack a, not b
                                        // The acknowledgement is on the wire once the event loop reports it sent.
    loop {
        if let Event::Outgoing(rumqttc::Outgoing::PubAck(_)) = el.poll().await.unwrap() {
            break;
        }
    }
    drop(client);
    drop(el);

    publish(port, &["c"]).await; // while hydrowatch is away

    let (client2, mut el2) = persistent(port);
    // Wait for up to 3 to see that `a` does not come back.
    let (session, got) = receive(&mut el2, 3).await;
    assert_eq!(session, Some(true), "rumqttd kept the session");
    // The unacknowledged `b` again (rumqttd 0.20 does not set DUP on it), then `c`,
    // published while the client was away; never the acknowledged `a`.
    assert_eq!(payloads(&got), ["b", "c"]);
    drop(client2);
}
