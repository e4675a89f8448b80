//! An in-process HTTP receiver: the far end of a team's webhook or chat channel, an SMS
//! gateway, or an InfluxDB 2 write endpoint. It records every request and answers 2xx (200
//! unless set otherwise), 503 while it is "down", or from a script of replies given at start
//! (an error status, or a hang longer than the client's timeout) before falling back to that.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// How the receiver answers one request of its script.
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    Status(u16),
    /// Answer nothing for this long (longer than the client's timeout).
    Hang(Duration),
}

/// What the chat robots answer on success (WeCom/DingTalk errcode, Feishu code).
const ROBOT_OK: &str = r#"{"errcode":0,"errmsg":"ok","code":0,"msg":"success"}"#;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// When the request arrived.
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// The raw query string ("" without one).
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status answered: 0 when the receiver hung.
    pub answered: u16,
    /// Whether the receiver answered 2xx (a delivery that counts).
    pub accepted: bool,
}

impl Delivery {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} body is not JSON ({e}): {:?}", self.path, self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The query parameters, percent-decoded.
    pub fn query_params(&self) -> HashMap<String, String> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| {
                (
                    k.to_string(),
                    urlencoding::decode(v).expect("utf-8 query").into_owned(),
                )
            })
            .collect()
    }
}

/// A standing answer: requests whose path starts with `path` and whose body contains `body`
/// are answered `status` with `answer` (a robot's JSON, for instance), whatever the script.
#[derive(Clone, Debug)]
struct Rule {
    path: String,
    body: String,
    status: u16,
    answer: String,
}

/// Computes a 200 answer from a request's body (a voice API that names each call it places).
type Responder = Arc<dyn Fn(&[u8]) -> String + Send + Sync>;

#[derive(Clone, Default)]
struct Inner {
    log: Arc<Mutex<Vec<Delivery>>>,
    /// Paths (prefixes) answered 200 with what their responder computes.
    responders: Arc<Mutex<Vec<(String, Responder)>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    rules: Arc<Mutex<Vec<Rule>>>,
    down: Arc<AtomicBool>,
    /// The 2xx status answered while up (0 means 200).
    status: Arc<AtomicU16>,
}

/// The receiver; stops serving when dropped.
pub struct Receiver {
    pub port: u16,
    inner: Inner,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(inner): State<Inner>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    // Every request is logged with what it was answered.
    let record = |answered: u16, accepted: bool| {
        inner.log.lock().unwrap().push(Delivery {
            at,
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().unwrap_or("").to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body: body.to_vec(),
            answered,
            accepted,
        })
    };
    let rule = inner
        .rules
        .lock()
        .unwrap()
        .iter()
        .find(|r| {
            uri.path().starts_with(&r.path) && String::from_utf8_lossy(&body).contains(&r.body)
        })
        .cloned();
    if let Some(rule) = rule {
        record(rule.status, false);
        let status = StatusCode::from_u16(rule.status).unwrap();
        return (status, [("content-type", "application/json")], rule.answer).into_response();
    }
    let responder = inner
        .responders
        .lock()
        .unwrap()
        .iter()
        .find(|(path, _)| uri.path().starts_with(path.as_str()))
        .map(|(_, f)| f.clone());
    if let Some(respond) = responder {
        let answer = respond(&body);
        record(200, true);
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            answer,
        )
            .into_response();
    }
    let scripted = inner.script.lock().unwrap().pop_front();
    let reply = scripted.unwrap_or_else(|| {
        if inner.down.load(Ordering::SeqCst) {
            Reply::Status(503)
        } else {
            match inner.status.load(Ordering::SeqCst) {
                0 => Reply::Status(200),
                code => Reply::Status(code),
            }
        }
    });
    let answered = match reply {
        Reply::Status(code) => code,
        Reply::Hang(_) => 0,
    };
    record(answered, (200..300).contains(&answered));
    match reply {
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            StatusCode::OK.into_response()
        }
        Reply::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap();
            if status == StatusCode::NO_CONTENT {
                status.into_response()
            } else {
                (status, [("content-type", "application/json")], ROBOT_OK).into_response()
            }
        }
    }
}

impl Receiver {
    /// Starts listening on a free port (needs a running tokio runtime).
    pub async fn start() -> Receiver {
        Receiver::scripted(Vec::new()).await
    }

    /// A Mosquitto, a receiver and a hydrowatch (ready) whose configuration is `body`, with
    /// `@RX@` standing for the receiver's URL.
    pub async fn with_hydrowatch(
        body: &str,
    ) -> (
        crate::common::Mosquitto,
        Receiver,
        crate::common::Hydrowatch,
    ) {
        let mqtt = crate::common::Mosquitto::start(false);
        let rx = Receiver::start().await;
        let config = crate::common::HwConfig::new(&mqtt)
            .body(&body.replace("@RX@", &rx.url("")))
            .build();
        let hw = crate::common::Hydrowatch::start_ready(&config, Duration::from_secs(30));
        (mqtt, rx, hw)
    }

    /// Starts a receiver that answers its first requests from `script`, in order.
    pub async fn scripted(script: Vec<Reply>) -> Receiver {
        let inner = Inner {
            script: Arc::new(Mutex::new(script.into())),
            ..Inner::default()
        };
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { port, inner, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// While down, every request is answered 503 (and recorded as not accepted).
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
    }

    /// From now on, answers `status` with the JSON `answer` to every request whose path
    /// starts with `path` and whose body contains `body` (a receiver that refuses one event,
    /// or a chat robot answering an error code). Such requests never count as accepted.
    pub fn refuse(&self, path: &str, body: &str, status: u16, answer: &str) {
        self.inner.rules.lock().unwrap().push(Rule {
            path: path.into(),
            body: body.into(),
            status,
            answer: answer.into(),
        });
    }

    /// From now on, answers every request whose path starts with `path` with 200 and the
    /// JSON `respond` computes from its body (after the rules of [`Receiver::refuse`]).
    pub fn respond_with(
        &self,
        path: &str,
        respond: impl Fn(&[u8]) -> String + Send + Sync + 'static,
    ) {
        self.inner
            .responders
            .lock()
            .unwrap()
            .push((path.into(), Arc::new(respond)));
    }

    /// Forgets every rule set by [`Receiver::refuse`].
    pub fn accept_all(&self) {
        self.inner.rules.lock().unwrap().clear();
    }

    /// The 2xx status to answer with while up.
    pub fn set_status(&self, code: u16) {
        self.inner.status.store(code, Ordering::SeqCst);
    }

    /// Every request so far.
    pub fn all(&self) -> Vec<Delivery> {
        self.inner.log.lock().unwrap().clone()
    }

    /// The requests after the first `n`, for a caller that polls without copying the log.
    pub fn since(&self, n: usize) -> Vec<Delivery> {
        let log = self.inner.log.lock().unwrap();
        log.get(n..).unwrap_or_default().to_vec()
    }

    /// Requests to paths starting with `prefix`, in arrival order.
    pub fn requests(&self, prefix: &str) -> Vec<Delivery> {
        let log = self.inner.log.lock().unwrap();
        log.iter()
            .filter(|d| d.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// The bodies of accepted requests, as JSON, in arrival order.
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.delivered("/")
    }

    /// The bodies (JSON) of the accepted requests to paths starting with `prefix`.
    pub fn delivered(&self, prefix: &str) -> Vec<serde_json::Value> {
        self.requests(prefix)
            .iter()
            .filter(|d| d.accepted)
            .map(Delivery::json)
            .collect()
    }
}
