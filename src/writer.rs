//! The single journal writer: the one place where readings, dead letters, alert changes and
//! notification outbox rows become durable, together, in one transaction per group of messages.
//!
//! Group commit: the writer takes every command waiting in its channel (up to a limit), commits
//! them in one fsync'd transaction, and only then fulfils each message's [`Receipt`]: MQTT
//! messages are acknowledged in arrival order, waiting senders (SL 651) are told the outcome.
//! While one commit is being synced, the next group accumulates, so the cost of an fsync is
//! shared by however many messages arrived meanwhile.
//!
//! The writer decides nothing itself; it orders the decisions of others inside one
//! transaction, because an alert change must commit atomically with the reading that caused
//! it (after `kill -9`, either both are in the journal or neither is, and the broker
//! redelivers the message):
//!
//! - the journal ([`crate::journal`]) stores: readings, dead letters, events, pages, outbox;
//! - the rules ([`crate::rules`]) judge each reading and hold the rules' in-memory state;
//! - the alert lifecycle ([`crate::alerts`]) decides states;
//! - notify ([`crate::notify`]) decides who hears what, who may acknowledge, and when a
//!   reminder or an escalation is due.
//!
//! The path of one reading: `Writer::commit_group` stores it, the engine evaluates it, and
//! `record_event` stores each resulting event and queues its notifications; after the commit
//! `Writer::announce` fulfils the receipts and tells the forwarder, the dispatcher, the API
//! and live subscribers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rusqlite::{params, Connection};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, Notify};

use crate::alerts::{Alert, AlertEvent, AlertState};
use crate::config::Settings;
use crate::journal::{self, JournalError};
use crate::model::{now_millis, AckToken, Cause, Millis, Reading, RefusedPayload, Rejection};
use crate::rules::{AckError, Engine, StationStatus};

/// Most commands committed in one transaction.
const MAX_GROUP: usize = 4096;
/// Most readings committed in one transaction: bounds the memory a group holds.
const MAX_GROUP_READINGS: usize = 20_000;
/// Commands waiting for the writer. The bound is the back-pressure: when the journal falls
/// behind, messages wait at the broker (which keeps them for our session), not in memory.
pub const QUEUE: usize = 512;

/// Work for the writer.
pub enum Command {
    /// One message from a source, already decoded.
    Message(Inbound),
    /// A team acknowledges an alert (API or MQTT); the reply says how it went.
    Acknowledge {
        alert_id: String,
        team: String,
        /// The person who answers (a person id), when the request names one.
        person: Option<String>,
        reply: oneshot::Sender<Result<AlertEvent, AckError>>,
    },
    /// What a provider reported about calls and messages (叫应), arrived on the callback
    /// route of `channel` (`{team}/{channel id}`): recorded in the audit, and a confirming
    /// answer acknowledges the alert for the person whose phone answered.
    Answer {
        channel: String,
        answers: Vec<crate::notify::callout::Answer>,
        reply: oneshot::Sender<Vec<AnswerResult>>,
    },
    /// A voice call the provider accepted, under the id it gave the call (叫应): recorded
    /// here, so that the call's reports, which come later through this same queue, find it.
    RecordCall(crate::notify::callout_log::PlacedCall),
    /// Wall-clock tick: offline detection and escalation timers.
    Tick {
        /// False during the start-up grace period, when every station still looks silent
        /// because the broker has not yet delivered what it queued for us.
        check_offline: bool,
    },
}

impl Command {
    /// How many readings the command carries.
    fn readings(&self) -> usize {
        match self {
            Command::Message(Inbound {
                decoded: Decoded::Readings(r),
                ..
            }) => r.len(),
            _ => 0,
        }
    }
}

/// The dispatcher hands each placed call to the writer through its queue, waiting at most
/// `wait` for room in it.
impl crate::notify::dispatch::CallRecorder for mpsc::Sender<Command> {
    fn record(
        &self,
        call: crate::notify::callout_log::PlacedCall,
        wait: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            self.send_timeout(Command::RecordCall(call), wait)
                .await
                .map_err(|e| match e {
                    mpsc::error::SendTimeoutError::Timeout(_) => {
                        format!("the journal writer's queue stayed full for {wait:?}")
                    }
                    mpsc::error::SendTimeoutError::Closed(_) => {
                        "the journal writer has stopped".to_string()
                    }
                })
        })
    }
}

/// What became of one answer on the callback route.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerResult {
    pub phone: String,
    /// The person the phone belongs to, if known.
    pub person: Option<String>,
    pub outcome: &'static str,
    /// The alerts this answer acknowledged.
    pub acknowledged: Vec<String>,
}

/// A message as the source received it.
pub struct Inbound {
    pub topic: String,
    pub received_at: Millis,
    pub decoded: Decoded,
    /// Fulfilled once the message is committed (none for in-process sources).
    pub receipt: Option<Receipt>,
    /// The message as received, kept in the journal for audit (SL 651 frames).
    pub frame: Option<Vec<u8>>,
}

/// How a source learns that its message is durable. The writer fulfils each receipt after
/// the commit that holds the message, without knowing who sent it.
pub enum Receipt {
    /// An MQTT publish: acknowledged to the broker by the event-loop task, in arrival order.
    Mqtt(AckToken),
    /// A waiting sender (an SL 651 connection, which answers its RTU only then). Dropped
    /// unfulfilled when the message cannot be committed at all.
    Committed(oneshot::Sender<Outcome>),
}

/// What a commit did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its readings (or acknowledgement) are in the journal.
    Stored,
    /// It is in the journal's dead letters.
    DeadLettered,
}

/// The decoder's verdict on a message.
pub enum Decoded {
    Readings(Vec<Reading>),
    Rejected {
        rejection: Rejection,
        /// What the dead letter keeps of the payload (secrets already redacted).
        payload: RefusedPayload,
    },
    /// An app acknowledged an alert over MQTT (token already checked).
    Acknowledge {
        alert_id: String,
        team: String,
    },
}

/// What happened, for live subscribers (server-sent events, the board).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Live {
    Reading(Reading),
    Alert(Box<AlertEvent>),
}

/// State the API reads without touching the database: kept current by the writer after
/// each commit.
#[derive(Default)]
pub struct Shared {
    pub statuses: RwLock<HashMap<String, StationStatus>>,
    pub open_alerts: RwLock<Vec<Alert>>,
    /// The journal cannot be written (disk full, I/O error): ingestion waits, `/readyz` says
    /// so, and the writer retries until it can commit again.
    pub journal_paused: AtomicBool,
}

/// Where the writer tells others that something was committed.
pub struct Hooks {
    /// Committed MQTT messages, in arrival order, for the acknowledging task.
    pub acks: Option<mpsc::UnboundedSender<Vec<AckToken>>>,
    pub live: broadcast::Sender<Live>,
    /// Wakes the InfluxDB forwarder.
    pub forwarder: Arc<Notify>,
    /// Wakes the notification dispatcher.
    pub dispatcher: Arc<Notify>,
}

/// The rules' in-memory state, exactly as the journal's committed content implies: rebuilt
/// from the journal at start and again whenever a commit fails, so that a transaction that
/// was rolled back leaves no trace in memory either.
struct RuleState {
    engine: Engine,
    /// The last snapshot stored per station, to store only changes.
    snapshots: HashMap<String, serde_json::Value>,
    next_seq: i64,
    /// The journal's record of open alerts, as the tick last read it.
    timers: TimerRecords,
}

impl RuleState {
    /// Rebuilds the rules' state from what the journal holds.
    fn load(conn: &Connection, settings: &Settings) -> Result<RuleState, JournalError> {
        let mut engine =
            Engine::new(&settings.rules, &settings.stations).with_zones(&settings.zones);
        // The widest rain window (rain levels and zones included), and at least back to the
        // start of the previous hydrological day (at most 48 h before a station's latest
        // reading), so that today's and yesterday's rain totals are whole after a restart.
        let span = settings
            .widest_rain_window()
            .max(Duration::from_secs(48 * 3600))
            + Duration::from_secs(3600);
        journal::for_each_recent(conn, span.as_millis() as i64, |reading| {
            engine.warm(&reading)
        })?;
        for alert in journal::open_alerts(conn)? {
            engine.restore_alert(alert);
        }
        let mut snapshots = HashMap::new();
        for (station, last_seen, snapshot) in journal::station_states(conn)? {
            if let Some(ms) = last_seen {
                engine.restore_last_seen(&station, ms);
            }
            if let Some(json) = snapshot {
                let value: serde_json::Value = serde_json::from_str(&json)?;
                engine.restore_snapshot(&station, value.clone());
                snapshots.insert(station, value);
            }
        }
        Ok(RuleState {
            engine,
            snapshots,
            next_seq: journal::max_reading_seq(conn)? + 1,
            timers: TimerRecords::default(),
        })
    }
}

/// The writer and everything it owns.
pub struct Writer {
    conn: Connection,
    state: RuleState,
    /// The in-memory state may be ahead of the journal (a commit failed): reload first.
    stale: bool,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    hooks: Hooks,
    log_limiter: LogLimiter,
    /// When the write-ahead log's size was last looked at.
    wal_checked: std::time::Instant,
}

/// Where an acknowledgement's outcome is sent.
pub type AckReply = oneshot::Sender<Result<AlertEvent, AckError>>;

/// Outcome of one commit, published after it is durable.
#[derive(Default)]
struct Effects {
    /// One per `Command::Acknowledge`, in order.
    ack_results: Vec<Result<AlertEvent, AckError>>,
    /// One per `Command::Answer`, in order.
    answer_results: Vec<Vec<AnswerResult>>,
    live: Vec<Live>,
    touched: HashSet<String>,
    readings: u64,
    /// Messages whose readings were committed (the rest of the books: dead letters).
    messages_stored: u64,
    /// (cause, topic, detail) of each dead letter, for metrics and the rate-limited log.
    dead_letters: Vec<(&'static str, String, String)>,
    outbox_rows: u64,
    /// The state of each alert event recorded, for metrics.
    events: Vec<&'static str>,
}

/// How often the writer looks at the size of the write-ahead log.
const WAL_CHECK_EVERY: Duration = Duration::from_secs(2);
/// The longest the writer waits for readers to leave the write-ahead log before it truncates
/// it; a reader that takes longer (a backup, a long query) only postpones the truncation.
const WAL_CHECKPOINT_WAIT: Duration = Duration::from_millis(250);
/// Slowest retry of a failing commit.
const MAX_RETRY: Duration = Duration::from_secs(5);
/// A group that fails this often for a reason that is not transient is committed one
/// command at a time, so that one poison command cannot hold back the rest.
const ISOLATE_AFTER: u32 = 3;

impl Writer {
    /// Opens the journal and rebuilds the rules' state from it.
    pub fn open(
        settings: Arc<Settings>,
        shared: Arc<Shared>,
        hooks: Hooks,
    ) -> Result<Writer, JournalError> {
        let conn = journal::open(&settings.journal.path)?;
        let state = RuleState::load(&conn, &settings)?;
        let writer = Writer {
            conn,
            state,
            stale: false,
            settings,
            shared,
            hooks,
            log_limiter: LogLimiter::default(),
            wal_checked: std::time::Instant::now(),
        };
        writer.publish_state(None, true);
        Ok(writer)
    }

    /// Commits commands until the channel closes. A journal that cannot be written pauses
    /// the writer (and, through the bounded channel, ingestion) until it can be again.
    pub fn run(mut self, mut rx: mpsc::Receiver<Command>) -> Result<(), JournalError> {
        while let Some(first) = rx.blocking_recv() {
            let mut readings = first.readings();
            let mut group = Vec::with_capacity(64);
            group.push(first);
            while group.len() < MAX_GROUP && readings < MAX_GROUP_READINGS {
                match rx.try_recv() {
                    Ok(c) => {
                        readings += c.readings();
                        group.push(c);
                    }
                    Err(_) => break,
                }
            }
            self.commit(group);
            self.bound_wal();
        }
        Ok(())
    }

    /// Keeps the write-ahead log under `journal.max_wal_bytes`: looked at every two seconds
    /// of writing, truncated when it is larger.
    fn bound_wal(&mut self) {
        if self.wal_checked.elapsed() < WAL_CHECK_EVERY {
            return;
        }
        self.wal_checked = std::time::Instant::now();
        let path = &self.settings.journal.path;
        let before = journal::wal_bytes(path);
        metrics::gauge!("hydrowatch_journal_wal_bytes").set(before as f64);
        if before <= self.settings.journal.max_wal_bytes {
            return;
        }
        match journal::truncate_wal(&self.conn, WAL_CHECKPOINT_WAIT) {
            Ok(true) => {
                tracing::debug!(before, "write-ahead log checkpointed and truncated");
                metrics::gauge!("hydrowatch_journal_wal_bytes")
                    .set(journal::wal_bytes(path) as f64);
            }
            Ok(false) | Err(_) if !self.log_limiter.allow("wal", now_millis()) => {}
            Ok(false) => tracing::warn!(
                wal_bytes = before,
                "the write-ahead log is over journal.max_wal_bytes and readers kept it busy; \
                 trying again (logged at most once a minute)"
            ),
            Err(e) => tracing::warn!(error = %e, wal_bytes = before,
                "cannot checkpoint the write-ahead log; trying again (logged at most once a minute)"),
        }
    }

    /// Commits one group, however long that takes: a write error (disk full, I/O error)
    /// rolls the transaction back, brings the rules' state back to what was committed, and
    /// tries the same group again with backoff. Nothing is acknowledged meanwhile, so
    /// nothing is lost, and nothing is evaluated twice. A group that keeps failing for a
    /// reason that is not transient is split ([`Writer::isolate`]).
    pub fn commit(&mut self, group: Vec<Command>) {
        if let Err(group) = self.commit_retrying(group, true) {
            self.isolate(group);
        }
    }

    /// Tries `group` until it commits. With `may_isolate`, gives the group back after
    /// [`ISOLATE_AFTER`] consecutive failures that are not transient; otherwise waits for
    /// the journal as long as it takes.
    fn commit_retrying(
        &mut self,
        group: Vec<Command>,
        may_isolate: bool,
    ) -> Result<(), Vec<Command>> {
        let mut failures = 0_u32;
        let mut poisoned = 0_u32;
        loop {
            let attempt = match self.reload_if_stale() {
                Ok(()) => self.commit_group(&group),
                Err(e) => Err(e),
            };
            match attempt {
                Ok(fx) => {
                    if failures > 0 {
                        tracing::info!(failures, "journal writable again; ingestion resumes");
                    }
                    self.announce(group, fx);
                    return Ok(());
                }
                Err(e) => {
                    failures += 1;
                    poisoned = match journal::is_transient(&e) {
                        true => 0,
                        false => poisoned + 1,
                    };
                    self.stale = true;
                    self.shared.journal_paused.store(true, Ordering::SeqCst);
                    metrics::counter!("hydrowatch_journal_write_errors_total").increment(1);
                    if self.log_limiter.allow("journal_write", now_millis()) {
                        tracing::error!(error = %e, failures,
                            "cannot write the journal; ingestion paused, retrying (logged at most once a minute)");
                    }
                    if may_isolate && poisoned >= ISOLATE_AFTER {
                        return Err(group);
                    }
                    let wait = Duration::from_millis(100)
                        .saturating_mul(1 << failures.min(10))
                        .min(MAX_RETRY);
                    std::thread::sleep(wait);
                }
            }
        }
    }

    /// Commits a group that keeps failing one command at a time, so that one poison message
    /// cannot hold back the rest: a message that cannot be stored alone becomes a dead
    /// letter (cause `unstorable`); an acknowledgement or tick that cannot is dropped (the API
    /// answers 503; the next tick comes in seconds), and so is a placed call's record, logged
    /// with its call id (the phone rang already; its reports then find no call). When the journal cannot even be read
    /// back, or refuses the dead letter too, the fault is the journal's, not the message's:
    /// the writer waits for it, acknowledging nothing.
    fn isolate(&mut self, group: Vec<Command>) {
        tracing::warn!(
            commands = group.len(),
            "a group keeps failing; committing its commands one at a time"
        );
        for command in group {
            let outcome = self
                .reload_if_stale()
                .and_then(|()| self.commit_group(std::slice::from_ref(&command)));
            let error = match outcome {
                Ok(fx) => {
                    self.announce(vec![command], fx);
                    continue;
                }
                Err(e) => e,
            };
            self.stale = true;
            let readable = self.reload_if_stale().is_ok();
            match command {
                Command::Message(inbound)
                    if readable && !journal::is_transient(&error) && !inbound.is_dead_letter() =>
                {
                    let letter = Command::Message(inbound.unstorable(&error));
                    let _ = self.commit_retrying(vec![letter], false);
                }
                Command::Message(inbound) => {
                    let _ = self.commit_retrying(vec![Command::Message(inbound)], false);
                }
                Command::RecordCall(call) => tracing::error!(error = %error,
                    call_id = %call.call_id, alert_id = %call.alert_id,
                    "placed call not recorded: the journal refuses it; its keypress will not find its alert by call id"),
                _ => tracing::error!(error = %error, "command dropped: the journal refuses it"),
            }
        }
    }

    fn reload_if_stale(&mut self) -> Result<(), JournalError> {
        if self.stale {
            self.state = RuleState::load(&self.conn, &self.settings)?;
            self.stale = false;
        }
        Ok(())
    }

    /// Writes one group of commands in one `BEGIN IMMEDIATE` transaction. Nothing outside
    /// the rules' state changes until it commits; the caller announces the effects.
    fn commit_group(&mut self, group: &[Command]) -> Result<Effects, JournalError> {
        // Readings are copied for live subscribers (board, SSE) only when there are some.
        let live = self.hooks.live.receiver_count() > 0;
        let tx = journal::immediate(&self.conn)?;
        let mut step = Step::new(&tx, &self.settings, &mut self.state, now_millis(), live)?;
        for command in group {
            step.apply(command)?;
        }
        let fx = step.finish()?;
        tx.commit()?;
        Ok(fx)
    }

    /// After a commit: fulfils the group's receipts (MQTT acknowledgements in order), answers
    /// its acknowledgement requests, wakes the forwarder and dispatcher, refreshes the API's
    /// view and tells live subscribers.
    fn announce(&mut self, group: Vec<Command>, fx: Effects) {
        // A commit went through: the journal takes writes (again).
        self.shared.journal_paused.store(false, Ordering::SeqCst);
        metrics::counter!("hydrowatch_readings_stored_total").increment(fx.readings);
        metrics::counter!("hydrowatch_messages_stored_total").increment(fx.messages_stored);
        for state in &fx.events {
            metrics::counter!("hydrowatch_alert_events_total", "state" => *state).increment(1);
        }
        let now = now_millis();
        for (cause, topic, detail) in &fx.dead_letters {
            metrics::counter!("hydrowatch_dead_letters_total", "cause" => *cause).increment(1);
            if self.log_limiter.allow(cause, now) {
                tracing::warn!(%topic, cause, %detail,
                    "message dead-lettered (further ones of this cause are counted, logged at most once a minute)");
            }
        }
        let mut acks = Vec::new();
        let mut results = fx.ack_results.into_iter();
        let mut answers = fx.answer_results.into_iter();
        for command in group {
            match command {
                Command::Message(inbound) => {
                    let outcome = match inbound.is_dead_letter() {
                        true => Outcome::DeadLettered,
                        false => Outcome::Stored,
                    };
                    match inbound.receipt {
                        Some(Receipt::Mqtt(token)) => acks.push(token),
                        Some(Receipt::Committed(sender)) => {
                            let _ = sender.send(outcome);
                        }
                        None => {}
                    }
                }
                Command::Acknowledge { reply, .. } => {
                    if let Some(result) = results.next() {
                        let _ = reply.send(result);
                    }
                }
                Command::Answer { reply, .. } => {
                    if let Some(result) = answers.next() {
                        let _ = reply.send(result);
                    }
                }
                Command::RecordCall(_) | Command::Tick { .. } => {}
            }
        }
        if let Some(hook) = &self.hooks.acks {
            if !acks.is_empty() {
                let _ = hook.send(acks);
            }
        }
        let alerts_changed = !fx.events.is_empty();
        if fx.readings > 0 || alerts_changed {
            self.hooks.forwarder.notify_one();
        }
        if fx.outbox_rows > 0 {
            self.hooks.dispatcher.notify_one();
        }
        if !fx.touched.is_empty() || alerts_changed {
            self.publish_state(Some(&fx.touched), alerts_changed);
        }
        for item in fx.live {
            let _ = self.hooks.live.send(item);
        }
    }

    /// Refreshes the API's view of station status and open alerts.
    /// `touched`: the stations whose status may have changed (all of them when `None`);
    /// `alerts`: whether the open alerts may have changed.
    fn publish_state(&self, touched: Option<&HashSet<String>>, alerts: bool) {
        let engine = &self.state.engine;
        if let Ok(mut statuses) = self.shared.statuses.write() {
            let mut refresh = |id: &String| {
                if let Some(status) = engine.status(id) {
                    statuses.insert(id.clone(), status);
                }
            };
            match touched {
                Some(ids) => ids.iter().for_each(&mut refresh),
                None => self.settings.stations.iter().for_each(|s| refresh(&s.id)),
            }
        }
        if alerts {
            if let Ok(mut open) = self.shared.open_alerts.write() {
                *open = engine.open_alerts().cloned().collect();
            }
            metrics::gauge!("hydrowatch_alerts_open").set(engine.open_alerts().count() as f64);
        }
    }
}

/// One transaction's work, command by command: what the journal stores and which events the
/// rules, the lifecycle and notify make of it. Nothing here outlives a failed commit but the
/// rules' state, which the writer then reloads.
struct Step<'c> {
    tx: &'c Connection,
    insert: rusqlite::CachedStatement<'c>,
    settings: &'c Settings,
    state: &'c mut RuleState,
    now: Millis,
    live: bool,
    fx: Effects,
    newest_dead_letter: Option<i64>,
}

impl<'c> Step<'c> {
    fn new(
        tx: &'c Connection,
        settings: &'c Settings,
        state: &'c mut RuleState,
        now: Millis,
        live: bool,
    ) -> Result<Step<'c>, JournalError> {
        Ok(Step {
            insert: tx.prepare_cached(journal::INSERT_READING)?,
            tx,
            settings,
            state,
            now,
            live,
            fx: Effects::default(),
            newest_dead_letter: None,
        })
    }

    fn apply(&mut self, command: &Command) -> Result<(), JournalError> {
        match command {
            Command::Message(inbound) => {
                if let Some(frame) = &inbound.frame {
                    journal::insert_frame(self.tx, inbound.received_at, &inbound.topic, frame)?;
                }
                match &inbound.decoded {
                    Decoded::Readings(readings) => self.store_readings(inbound, readings),
                    Decoded::Rejected { rejection, payload } => {
                        self.store_dead_letter(inbound, rejection, payload)
                    }
                    Decoded::Acknowledge { alert_id, team } => {
                        // Stored as the alert's event (or, when it changes nothing, as the
                        // log line below): counted with the stored messages, so that
                        // received = stored + dead-lettered holds for the ack topic too.
                        self.fx.messages_stored += 1;
                        if let Err(e) = self.acknowledge(alert_id, team, None)? {
                            tracing::info!(%alert_id, %team, error = %e, "MQTT acknowledgement not applied");
                        }
                        Ok(())
                    }
                }
            }
            Command::Acknowledge {
                alert_id,
                team,
                person,
                ..
            } => {
                let result = self.acknowledge(alert_id, team, person.as_deref())?;
                self.fx.ack_results.push(result);
                Ok(())
            }
            Command::Answer {
                channel, answers, ..
            } => {
                let mut results = Vec::with_capacity(answers.len());
                for answer in answers {
                    results.push(self.answer(channel, answer)?);
                }
                self.fx.answer_results.push(results);
                Ok(())
            }
            Command::RecordCall(call) => crate::notify::callout_log::record_call(self.tx, call),
            Command::Tick { check_offline } => self.tick(*check_offline),
        }
    }

    /// Stores each reading (its quality judged first), evaluates it, records the events.
    fn store_readings(
        &mut self,
        inbound: &Inbound,
        readings: &[Reading],
    ) -> Result<(), JournalError> {
        self.fx.messages_stored += 1;
        for original in readings {
            let mut reading = original.clone();
            self.state.engine.prepare(&mut reading);
            journal::insert_reading(
                &mut self.insert,
                &reading,
                self.state.next_seq,
                inbound.received_at,
            )?;
            self.state.next_seq += 1;
            self.fx.readings += 1;
            let events = self.state.engine.evaluate(&reading, self.now);
            if !self.fx.touched.contains(&reading.station) {
                self.fx.touched.insert(reading.station.clone());
            }
            if self.live {
                self.fx.live.push(Live::Reading(reading));
            }
            for event in events {
                self.record(&event)?;
            }
        }
        Ok(())
    }

    fn store_dead_letter(
        &mut self,
        inbound: &Inbound,
        rejection: &Rejection,
        payload: &RefusedPayload,
    ) -> Result<(), JournalError> {
        let cause = rejection.cause.as_str();
        self.newest_dead_letter = Some(journal::insert_dead_letter(
            self.tx,
            inbound.received_at,
            &inbound.topic,
            payload,
            cause,
            &rejection.detail,
        )?);
        self.fx
            .dead_letters
            .push((cause, inbound.topic.clone(), rejection.detail.clone()));
        Ok(())
    }

    /// A team (and, when known, the person who answered) acknowledges an alert, if notify
    /// says it may; the event is recorded, and the acknowledgement is in the callout audit.
    fn acknowledge(
        &mut self,
        alert_id: &str,
        team: &str,
        person: Option<&str>,
    ) -> Result<Result<AlertEvent, AckError>, JournalError> {
        let mut result = acknowledge(
            self.tx,
            &mut self.state.engine,
            self.settings,
            alert_id,
            team,
            self.now,
        )?;
        if let Ok(event) = &mut result {
            event.acknowledged_person = person.map(str::to_string);
            self.record(event)?;
            crate::notify::redial::cancel(self.tx, alert_id, self.now)?;
            crate::notify::callout_log::log_acknowledgement(
                self.tx,
                self.settings,
                event,
                team,
                person,
                self.now,
            )?;
        }
        Ok(result)
    }

    /// One provider answer: into the audit, and a confirming one acknowledges every alert
    /// it answers for (the one its reference names, else each open alert that called the
    /// person) on behalf of the person whose phone it is.
    fn answer(
        &mut self,
        channel: &str,
        answer: &crate::notify::callout::Answer,
    ) -> Result<AnswerResult, JournalError> {
        use crate::notify::callout_log;
        let person = self
            .settings
            .person_by_phone(&answer.phone)
            .map(|p| p.id.clone());
        let confirm_digit = crate::notify::lookup(self.settings, channel)
            .map_or("1", |(_, c)| c.confirm_digit.as_str());
        let calls_recorded = crate::notify::lookup(self.settings, channel)
            .and_then(|(_, c)| c.voice.as_ref())
            .is_some_and(|v| crate::notify::voice::records_call_ids(v.provider));
        let open: Vec<Alert> = self.state.engine.open_alerts().cloned().collect();
        let targets = callout_log::answer_targets(
            self.tx,
            self.settings,
            &open,
            person.as_deref(),
            answer.reference.as_deref(),
            calls_recorded,
        )?;
        for (alert_id, team) in &targets {
            callout_log::log_answer(
                self.tx,
                alert_id,
                team,
                channel,
                person.as_deref(),
                answer,
                self.now,
            )?;
        }
        if targets.is_empty() {
            callout_log::log_answer(
                self.tx,
                "",
                "",
                channel,
                person.as_deref(),
                answer,
                self.now,
            )?;
        }
        let mut acknowledged = Vec::new();
        if answer.outcome.confirms(confirm_digit) {
            for (alert_id, team) in &targets {
                match self.acknowledge(alert_id, team, person.as_deref())? {
                    Ok(_) => acknowledged.push(alert_id.clone()),
                    Err(e) => tracing::info!(%alert_id, %team, error = %e,
                        "an answer confirmed an alert that takes no acknowledgement now"),
                }
            }
        }
        if targets.is_empty() {
            tracing::info!(%channel, phone = %answer.phone, outcome = answer.outcome.as_str(),
                "an answer for no open alert that called this phone");
        } else if acknowledged.is_empty() {
            // Nobody was reached: the channel may call that phone again (notify decides).
            let redials = crate::notify::redial::after_answer(
                self.tx,
                self.settings,
                channel,
                answer,
                &targets,
                &open,
                self.now,
            )?;
            self.fx.outbox_rows += redials.len() as u64;
        }
        Ok(AnswerResult {
            phone: answer.phone.clone(),
            person,
            outcome: answer.outcome.as_str(),
            acknowledged,
        })
    }

    /// The wall clock: stations gone silent, windows moved on, reminders and escalations due.
    fn tick(&mut self, check_offline: bool) -> Result<(), JournalError> {
        if check_offline {
            for event in self.state.engine.tick(self.now) {
                self.fx.touched.insert(event.station.clone());
                self.record(&event)?;
            }
        }
        let RuleState { engine, timers, .. } = &mut *self.state;
        timers.keep_open(engine);
        for event in due_pages(self.tx, engine, timers, self.settings, self.now)? {
            self.record(&event)?;
        }
        let RuleState { engine, timers, .. } = &mut *self.state;
        for (event, step) in due_callouts(self.tx, engine, timers, self.settings, self.now)? {
            tracing::warn!(alert_id = %event.alert_id, station = %event.station, team = %step.team,
                step = step.step, "page not answered in time; calling again");
            self.record(&event)?;
            crate::notify::callout_log::record_step(self.tx, &event.alert_id, &step, self.now)?;
            self.state.timers.forget(&event.alert_id);
        }
        Ok(())
    }

    fn record(&mut self, event: &AlertEvent) -> Result<(), JournalError> {
        // The alert's events and pages change: the tick reads them again.
        self.state.timers.forget(&event.alert_id);
        record_event(
            self.tx,
            &self.state.engine,
            self.settings,
            event,
            self.now,
            &mut self.fx,
        )
    }

    /// The station state the group changed, the dead-letter cap; what to announce.
    fn finish(self) -> Result<Effects, JournalError> {
        save_station_state(self.tx, self.state, &self.fx.touched)?;
        if let Some(newest) = self.newest_dead_letter {
            journal::cap_dead_letters(self.tx, newest, self.settings.limits.max_dead_letters)?;
        }
        Ok(self.fx)
    }
}

impl Inbound {
    fn is_dead_letter(&self) -> bool {
        matches!(self.decoded, Decoded::Rejected { .. })
    }

    /// This message as a dead letter: the journal refused to store it.
    fn unstorable(self, error: &JournalError) -> Inbound {
        let text = match &self.decoded {
            Decoded::Readings(r) => serde_json::to_vec(r).unwrap_or_default(),
            Decoded::Acknowledge { alert_id, team } => {
                format!("acknowledgement of {alert_id} by {team}").into_bytes()
            }
            Decoded::Rejected { .. } => Vec::new(),
        };
        Inbound {
            decoded: Decoded::Rejected {
                rejection: Rejection {
                    cause: Cause::Unstorable,
                    detail: format!("the journal refused this message: {error}"),
                },
                payload: RefusedPayload::of(&text),
            },
            ..self
        }
    }
}

/// Stores each touched station's wall-clock last message and, when it changed, the rules'
/// snapshot (dry-spell state) that a restart restores.
fn save_station_state(
    tx: &Connection,
    state: &mut RuleState,
    touched: &HashSet<String>,
) -> Result<(), JournalError> {
    for station in touched {
        // When the station was last heard, not when something about it happened (an offline
        // alert touches the station too).
        let Some(last_seen) = state.engine.last_message_at(station) else {
            continue;
        };
        let snapshot = state.engine.snapshot(station);
        let changed = snapshot.as_ref() != state.snapshots.get(station);
        let json = match (&snapshot, changed) {
            (Some(v), true) => Some(v.to_string()),
            _ => None,
        };
        tx.prepare_cached(
            "INSERT INTO station_state (station, last_seen_ms, snapshot) VALUES (?1, ?2, ?3)
             ON CONFLICT (station) DO UPDATE SET last_seen_ms = excluded.last_seen_ms,
               snapshot = coalesce(excluded.snapshot, snapshot)",
        )?
        .execute(params![station, last_seen, json])?;
        if let (Some(v), true) = (snapshot, changed) {
            state.snapshots.insert(station.clone(), v);
        }
    }
    Ok(())
}

/// Writes an event, the alert it changes, and one outbox row per destination.
fn record_event(
    tx: &Connection,
    engine: &Engine,
    settings: &Settings,
    event: &AlertEvent,
    now: Millis,
    fx: &mut Effects,
) -> Result<(), JournalError> {
    let (alert, open) = match engine.alert(&event.alert_id) {
        Some(a) => (a.clone(), true),
        None => (closed_alert(tx, event)?, false),
    };
    let event_seq = journal::record_event(tx, event, &alert, open, now)?;
    // Who hears about it is notify's decision; the journal keeps the pages and the outbox.
    let paged = journal::paged_teams(tx, &event.alert_id)?;
    let teams = crate::notify::route_teams(settings, event, &paged);
    for team in &teams {
        journal::record_page(tx, &event.alert_id, team, now)?;
        crate::notify::callout_log::log_page(tx, settings, event, team, now)?;
    }
    let teams: Vec<&str> = teams.iter().map(String::as_str).collect();
    let destinations = crate::notify::destinations_for(settings, event, &teams);
    fx.outbox_rows += journal::queue_notifications(tx, event_seq, &destinations, now)? as u64;
    fx.events.push(event.state.as_str());
    fx.live.push(Live::Alert(Box::new(event.clone())));
    Ok(())
}

/// A team acknowledges an open alert, if it is one of the teams paged for it.
fn acknowledge(
    tx: &Connection,
    engine: &mut Engine,
    settings: &Settings,
    alert_id: &str,
    team: &str,
    now: Millis,
) -> Result<Result<AlertEvent, AckError>, JournalError> {
    let Some(alert) = engine.alert(alert_id) else {
        return Ok(Err(AckError::NotFound));
    };
    let paged = journal::paged_teams(tx, alert_id)?;
    if !crate::notify::may_acknowledge(settings, alert, &paged, team) {
        return Ok(Err(AckError::NotResponsible(team.to_string())));
    }
    Ok(engine.acknowledge(alert_id, team, now))
}

/// The journal's record of each open alert that its timers read (who was paged, what its
/// events say, the callout steps taken), kept between ticks: a tick with nothing due then
/// reads nothing from the journal. Every write to an alert's events, pages or steps goes
/// through the writer, which forgets that alert's record in the same step, so the next tick
/// reads it again inside its transaction; a failed commit rebuilds [`RuleState`] and with it
/// an empty set of records. A record is read on the first tick that needs it, so the first
/// tick after a start reads every open alert, and fires what came due meanwhile.
#[derive(Default)]
struct TimerRecords {
    by_alert: HashMap<String, TimerRecord>,
}

/// One open alert's record, as [`due_pages`] and [`due_callouts`] use it.
struct TimerRecord {
    paged: Vec<journal::Paged>,
    history: crate::notify::escalation::History,
    steps: Vec<crate::notify::callout::Step>,
}

impl TimerRecords {
    /// The record of an open alert, read from the journal if it is not held.
    fn get(&mut self, tx: &Connection, alert_id: &str) -> Result<&TimerRecord, JournalError> {
        if !self.by_alert.contains_key(alert_id) {
            let paged = journal::alert_pages(tx, alert_id)?;
            let record = TimerRecord {
                paged,
                history: crate::notify::escalation::History::of(&journal::alert_events(
                    tx, alert_id,
                )?),
                steps: crate::notify::callout_log::steps(tx, alert_id)?,
            };
            self.by_alert.insert(alert_id.to_string(), record);
        }
        Ok(&self.by_alert[alert_id])
    }

    /// The alert's events, pages or steps changed.
    fn forget(&mut self, alert_id: &str) {
        self.by_alert.remove(alert_id);
    }

    /// Drops the records of alerts that closed.
    fn keep_open(&mut self, engine: &Engine) {
        let open: HashSet<&str> = engine.open_alerts().map(|a| a.alert_id.as_str()).collect();
        self.by_alert.retain(|id, _| open.contains(id.as_str()));
    }
}

/// The re-notifications and escalations due at `now`: the journal's record of each open
/// alert (who was paged, its events) handed to `notify::escalation`, which decides.
fn due_pages(
    tx: &Connection,
    engine: &Engine,
    timers: &mut TimerRecords,
    settings: &Settings,
    now: Millis,
) -> Result<Vec<AlertEvent>, JournalError> {
    if !crate::notify::escalation::any_timers(settings) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for alert in engine.open_alerts() {
        if alert.acknowledged_by.is_some() || alert.state == AlertState::Pending {
            continue;
        }
        let record = timers.get(tx, &alert.alert_id)?;
        if record.paged.is_empty() {
            continue;
        }
        out.extend(crate::notify::escalation::pages_after(
            settings,
            alert,
            &record.paged,
            &record.history,
            now,
        ));
    }
    Ok(out)
}

/// The callout steps due at `now` (叫应): for each open alert, the journal's steps and pages
/// handed to `notify::callout`, which decides; each as its `unanswered` event.
fn due_callouts(
    tx: &Connection,
    engine: &Engine,
    timers: &mut TimerRecords,
    settings: &Settings,
    now: Millis,
) -> Result<Vec<(AlertEvent, crate::notify::callout::DueStep)>, JournalError> {
    use crate::notify::callout;
    if !settings.teams.iter().any(|t| t.respond_within.is_some()) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for alert in engine.open_alerts() {
        if alert.acknowledged_by.is_some() || alert.state == AlertState::Pending {
            continue;
        }
        let record = timers.get(tx, &alert.alert_id)?;
        if record.paged.is_empty() {
            continue;
        }
        let since = record.history.unacknowledged_since;
        let paged: Vec<(String, Millis)> = record
            .paged
            .iter()
            .map(|p| (p.team.clone(), p.paged_ms))
            .collect();
        let due = callout::due(settings, alert, &paged, since, &record.steps, now);
        // The latest lifecycle event that is not an acknowledgement.
        let Some(latest) = &record.history.latest else {
            continue;
        };
        for step in due {
            out.push((callout::event(latest, &step, now), step));
        }
    }
    Ok(out)
}

/// The final form of an alert that the engine no longer holds (it resolved).
fn closed_alert(tx: &Connection, event: &AlertEvent) -> Result<Alert, JournalError> {
    let stored = journal::alert(tx, &event.alert_id)?;
    let mut alert = stored.unwrap_or_else(|| Alert {
        alert_id: event.alert_id.clone(),
        station: event.station.clone(),
        rule: event.rule.clone(),
        state: event.state,
        stage: event.stage.clone(),
        stage_index: event.stage_index,
        value: event.value,
        threshold: event.threshold,
        opened_at: event.observed_at,
        updated_at: event.observed_at,
        acknowledged_by: None,
        acknowledged_at: None,
    });
    alert.state = AlertState::Resolved;
    alert.value = event.value;
    alert.updated_at = event.observed_at;
    Ok(alert)
}

/// Logs a cause at most once a minute; the rest are counted in metrics.
#[derive(Default)]
struct LogLimiter {
    last: HashMap<&'static str, Millis>,
}

impl LogLimiter {
    fn allow(&mut self, cause: &'static str, now: Millis) -> bool {
        match self.last.get(cause) {
            Some(t) if now - t < 60_000 => false,
            _ => {
                self.last.insert(cause, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::PageReason;

    const CONFIG: &str = r#"
[mqtt]
url = "mqtt://127.0.0.1:1"
client_id = "test"

[journal]
path = "@DIR@/journal.db"

[http]
listen = "127.0.0.1:0"

[rules]
pending = "0s"

[[teams]]
id = "east"
token = "east-token"
renotify = "1s"
  [[teams.channels]]
  kind = "webhook"
  url = "http://127.0.0.1:1/hook"

[[stations]]
id = "s1"
team = "east"
stages = { guard = 1.0, warning = 2.0 }
"#;

    fn writer(dir: &std::path::Path) -> Writer {
        let text = CONFIG.replace("@DIR@", &dir.display().to_string());
        let settings = crate::config::load_from_str(&text).expect("valid configuration");
        let hooks = Hooks {
            acks: None,
            live: broadcast::channel(4).0,
            forwarder: Arc::new(Notify::new()),
            dispatcher: Arc::new(Notify::new()),
        };
        Writer::open(Arc::new(settings), Arc::new(Shared::default()), hooks).expect("journal")
    }

    fn reading(level: f64) -> Command {
        let mut reading = Reading::empty("s1", now_millis());
        reading.level_m = Some(level);
        Command::Message(Inbound {
            topic: "hydro/s1/data".into(),
            received_at: now_millis(),
            decoded: Decoded::Readings(vec![reading]),
            receipt: None,
            frame: None,
        })
    }

    fn tick() -> Command {
        Command::Tick {
            check_offline: false,
        }
    }

    fn reminders(conn: &Connection) -> usize {
        let events = journal::alert_events(conn, &open_alert(conn)).expect("events");
        events
            .iter()
            .filter(|e| e.page.as_ref().map(|p| p.reason) == Some(PageReason::Renotify))
            .count()
    }

    fn open_alert(conn: &Connection) -> String {
        journal::open_alerts(conn).expect("alerts")[0]
            .alert_id
            .clone()
    }

    fn placed_call(call_id: &str) -> crate::notify::callout_log::PlacedCall {
        crate::notify::callout_log::PlacedCall {
            call_id: call_id.into(),
            event_id: "e1".into(),
            alert_id: "a1".into(),
            phone: "13800000001".into(),
            destination: "east/tencent".into(),
            placed_ms: now_millis(),
        }
    }

    fn count(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    }

    /// A placed call is written in the writer's group transaction, with the rest of it.
    #[test]
    fn a_placed_call_is_recorded_in_the_group() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut w = writer(dir.path());
        let call = placed_call("call-1");
        w.commit(vec![reading(0.5), Command::RecordCall(call.clone())]);
        let probe = journal::open(&dir.path().join("journal.db")).expect("journal");
        let stored = crate::notify::callout_log::placed_call(&probe, "call-1").expect("read");
        assert_eq!(stored, Some(call));
        assert_eq!(count(&probe, "readings"), 1);
    }

    /// A placed call the journal refuses for good is dropped when the writer commits its
    /// group one command at a time: the rest of the group is stored, and the call is neither
    /// retried forever nor turned into a dead letter.
    #[test]
    fn a_placed_call_the_journal_refuses_is_dropped_not_dead_lettered() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut w = writer(dir.path());
        let probe = journal::open(&dir.path().join("journal.db")).expect("journal");
        probe
            .execute_batch("DROP TABLE voice_calls")
            .expect("table dropped");
        w.commit(vec![
            Command::RecordCall(placed_call("call-1")),
            reading(0.5),
        ]);
        assert_eq!(
            count(&probe, "readings"),
            1,
            "the reading behind it is stored"
        );
        assert_eq!(count(&probe, "dead_letters"), 0, "no dead letter");
    }

    /// The dispatcher waits for room in the writer's queue at most as long as it is told.
    #[tokio::test]
    async fn handing_a_call_to_a_full_queue_gives_up_after_the_wait() {
        use crate::notify::dispatch::CallRecorder;
        let (tx, mut rx) = mpsc::channel::<Command>(1);
        tx.record(placed_call("call-1"), Duration::from_millis(50))
            .await
            .expect("room for one");
        let started = std::time::Instant::now();
        let refused = tx
            .record(placed_call("call-2"), Duration::from_millis(50))
            .await
            .expect_err("the queue is full");
        assert!(started.elapsed() < Duration::from_secs(2), "{refused}");
        assert!(refused.contains("queue stayed full"), "{refused}");
        assert!(matches!(rx.recv().await, Some(Command::RecordCall(c)) if c.call_id == "call-1"));
        drop(rx);
        let refused = tx
            .record(placed_call("call-3"), Duration::from_millis(50))
            .await
            .expect_err("the writer is gone");
        assert!(refused.contains("stopped"), "{refused}");
    }

    /// The tick reads an open alert's pages, events and steps from the journal once, then
    /// again only after the writer changed them. Shown by taking the alert's pages out of
    /// the journal behind the writer's back: a tick that read them would find nobody to
    /// remind.
    #[test]
    fn a_tick_reads_an_alerts_record_only_after_the_writer_changed_it() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut w = writer(dir.path());
        w.commit(vec![reading(2.5)]);
        w.commit(vec![tick()]);
        let probe = journal::open(&dir.path().join("journal.db")).expect("journal");
        let alert_id = open_alert(&probe);
        assert_eq!(reminders(&probe), 0, "nothing is due within a second");

        probe
            .execute("DELETE FROM alert_pages WHERE alert_id = ?1", [&alert_id])
            .expect("pages deleted");
        std::thread::sleep(Duration::from_millis(1100));
        w.commit(vec![tick()]);
        assert_eq!(
            reminders(&probe),
            1,
            "the reminder comes from the record the first tick read"
        );

        // The reminder changed the alert's record (its page was written again, just now):
        // the next tick reads it afresh, and finds the page too recent to remind again.
        probe
            .execute("DELETE FROM alert_pages WHERE alert_id = ?1", [&alert_id])
            .expect("pages deleted");
        w.commit(vec![tick()]);
        std::thread::sleep(Duration::from_millis(1100));
        w.commit(vec![tick()]);
        assert_eq!(
            reminders(&probe),
            1,
            "after the reminder the record was read again, without the pages taken out"
        );
    }
}
