//! An in-process webhook receiver: the far end of a team's webhook channel. It records every
//! request and answers 2xx, or 503 while it is "down".

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the receiver answered 2xx (a delivery that counts).
    pub accepted: bool,
}

impl Delivery {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
struct Inner {
    log: Arc<Mutex<Vec<Delivery>>>,
    down: Arc<AtomicBool>,
    /// The 2xx status answered while up (0 means 200).
    status: Arc<AtomicU16>,
}

/// The receiver; dropped with the test's runtime.
pub struct Receiver {
    pub port: u16,
    inner: Inner,
}

impl Receiver {
    /// Starts listening on a free port (needs a running tokio runtime).
    pub async fn start() -> Receiver {
        let inner = Inner::default();
        async fn handle(
            State(inner): State<Inner>,
            method: axum::http::Method,
            uri: axum::http::Uri,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            let accepted = !inner.down.load(Ordering::SeqCst);
            inner.log.lock().unwrap().push(Delivery {
                method: method.to_string(),
                path: uri.path().to_string(),
                query: uri.query().unwrap_or("").to_string(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect(),
                body: body.to_vec(),
                accepted,
            });
            if accepted {
                match inner.status.load(Ordering::SeqCst) {
                    0 => StatusCode::OK,
                    code => StatusCode::from_u16(code).unwrap(),
                }
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
        let app = Router::new()
            .route("/{*path}", post(handle).put(handle))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { port, inner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// While down, every request is answered 503 (and recorded as not accepted).
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
    }

    /// The 2xx status to answer with while up.
    pub fn set_status(&self, code: u16) {
        self.inner.status.store(code, Ordering::SeqCst);
    }

    /// Every request so far.
    pub fn all(&self) -> Vec<Delivery> {
        self.inner.log.lock().unwrap().clone()
    }

    /// The bodies of accepted requests, as JSON, in arrival order.
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.all()
            .iter()
            .filter(|d| d.accepted)
            .map(Delivery::json)
            .collect()
    }
}
