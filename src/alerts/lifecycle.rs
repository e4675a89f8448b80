//! The alert state machine: given the stage a rule wants for a (station, rule) after one
//! observation, open, raise, lower or close that pair's single alert.
//!
//! Rules only say where the level *is* (with their own hysteresis); whether that is news — a
//! first firing, an escalation, a fall back, a pending condition that has not held long enough
//! — is decided here, once, for every rule.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{millis, AckError, Alert, AlertState};
use crate::model::Millis;

/// The stage a rule wants its alert at.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub stage: String,
    pub stage_index: usize,
    pub threshold: f64,
}

/// One change made to an alert: the alert as it now is (its `state` is the transition) and,
/// for a fall back, the stage it left.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub alert: Alert,
    pub left: Option<(String, f64)>,
}

/// Values by station, then rule. Two levels rather than a `(String, String)` key so that the
/// rules can look an alert up with borrowed strings for every reading, without allocating
/// (most readings change nothing).
#[derive(Debug)]
struct ByStationRule<V>(BTreeMap<String, BTreeMap<String, V>>);

impl<V> Default for ByStationRule<V> {
    fn default() -> Self {
        ByStationRule(BTreeMap::new())
    }
}

impl<V> ByStationRule<V> {
    fn get(&self, station: &str, rule: &str) -> Option<&V> {
        self.0.get(station)?.get(rule)
    }

    fn get_mut(&mut self, station: &str, rule: &str) -> Option<&mut V> {
        self.0.get_mut(station)?.get_mut(rule)
    }

    fn insert(&mut self, station: &str, rule: &str, value: V) {
        self.0
            .entry(station.to_string())
            .or_default()
            .insert(rule.to_string(), value);
    }

    fn remove(&mut self, station: &str, rule: &str) -> Option<V> {
        self.0.get_mut(station)?.remove(rule)
    }

    /// Every value, by station then rule.
    fn values(&self) -> impl Iterator<Item = &V> {
        self.0.values().flat_map(BTreeMap::values)
    }

    fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.0.values_mut().flat_map(BTreeMap::values_mut)
    }
}

/// The open alerts, one per (station, rule).
#[derive(Debug, Default)]
pub struct AlertBook {
    open: ByStationRule<Alert>,
    /// Since when (observation time) an escalation has been waiting for `pending`; firing
    /// alerts keep paging at their stage meanwhile, so this is not an alert state of its own.
    raising_since: ByStationRule<Millis>,
}

impl AlertBook {
    /// The open alert of a (station, rule).
    pub fn get(&self, station: &str, rule: &str) -> Option<&Alert> {
        self.open.get(station, rule)
    }

    /// Every open alert, by station then rule.
    pub fn iter(&self) -> impl Iterator<Item = &Alert> {
        self.open.values()
    }

    /// An open alert by id.
    pub fn by_id(&self, alert_id: &str) -> Option<&Alert> {
        self.open.values().find(|a| a.alert_id == alert_id)
    }

    /// Puts back an alert read from the journal; a resolved one is not open and is ignored.
    pub fn restore(&mut self, alert: Alert) {
        if alert.state != AlertState::Resolved {
            let (station, rule) = (alert.station.clone(), alert.rule.clone());
            self.open.insert(&station, &rule, alert);
        }
    }

    /// Records a team's acknowledgement; the alert keeps its lifecycle state.
    pub fn acknowledge(
        &mut self,
        alert_id: &str,
        team: &str,
        now: Millis,
    ) -> Result<Alert, AckError> {
        let alert = self
            .open
            .values_mut()
            .find(|a| a.alert_id == alert_id)
            .ok_or(AckError::NotFound)?;
        if alert.acknowledged_by.is_some() {
            return Err(AckError::AlreadyAcknowledged);
        }
        alert.acknowledged_by = Some(team.to_string());
        alert.acknowledged_at = Some(now);
        Ok(alert.clone())
    }

    /// Moves the (station, rule) alert toward `target` after an observation at `at` whose
    /// value is `value`. Returns the change, if any.
    ///
    /// With `pending` above zero a raise (first firing or escalation) waits until the target
    /// has held that long in observation time; a first firing shows as a `pending` alert
    /// meanwhile, dropped with `resolved` if the condition stops holding. Falling back never
    /// waits: the rules' clear margin already guards against flapping.
    pub fn apply(
        &mut self,
        station: &str,
        rule: &str,
        target: Option<Target>,
        value: f64,
        at: Millis,
        pending: Duration,
    ) -> Option<Transition> {
        let pending = millis(pending);
        let Some(target) = target else {
            self.raising_since.remove(station, rule);
            let mut alert = self.open.remove(station, rule)?;
            alert.state = AlertState::Resolved;
            alert.value = value;
            alert.updated_at = at;
            return Some(Transition { alert, left: None });
        };

        let Some(alert) = self.open.get_mut(station, rule) else {
            let state = if pending > 0 {
                AlertState::Pending
            } else {
                AlertState::Firing
            };
            let alert = Alert {
                alert_id: uuid::Uuid::new_v4().to_string(),
                station: station.to_string(),
                rule: rule.to_string(),
                state,
                stage: target.stage,
                stage_index: target.stage_index,
                value,
                threshold: target.threshold,
                opened_at: at,
                updated_at: at,
                acknowledged_by: None,
                acknowledged_at: None,
            };
            self.open.insert(station, rule, alert.clone());
            return Some(Transition { alert, left: None });
        };

        if alert.state == AlertState::Pending {
            // Follow the level while waiting so that it fires at the stage reached by then.
            set_stage(alert, &target, value);
            if at.saturating_sub(alert.opened_at) < pending {
                return None;
            }
            alert.state = AlertState::Firing;
            alert.updated_at = at;
            return Some(Transition {
                alert: alert.clone(),
                left: None,
            });
        }

        if target.stage_index > alert.stage_index {
            if pending > 0 {
                let since = match self.raising_since.get(station, rule) {
                    Some(since) => *since,
                    None => {
                        self.raising_since.insert(station, rule, at);
                        at
                    }
                };
                if at.saturating_sub(since) < pending {
                    return None;
                }
            }
            self.raising_since.remove(station, rule);
            set_stage(alert, &target, value);
            alert.state = AlertState::Escalated;
            alert.updated_at = at;
            // A more severe stage is new news: it needs a new acknowledgement.
            alert.acknowledged_by = None;
            alert.acknowledged_at = None;
            return Some(Transition {
                alert: alert.clone(),
                left: None,
            });
        }

        self.raising_since.remove(station, rule);
        if target.stage_index < alert.stage_index {
            let left = (alert.stage.clone(), alert.threshold);
            set_stage(alert, &target, value);
            alert.state = AlertState::Deescalated;
            alert.updated_at = at;
            return Some(Transition {
                alert: alert.clone(),
                left: Some(left),
            });
        }
        None
    }
}

fn set_stage(alert: &mut Alert, target: &Target, value: f64) {
    alert.stage.clone_from(&target.stage);
    alert.stage_index = target.stage_index;
    alert.threshold = target.threshold;
    alert.value = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(i: usize) -> Option<Target> {
        let names = ["guard", "warning", "guaranteed"];
        let levels = [57.5, 59.0, 61.0];
        Some(Target {
            stage: names[i].to_string(),
            stage_index: i,
            threshold: levels[i],
        })
    }

    const NO_WAIT: Duration = Duration::ZERO;
    const MIN: Millis = 60_000;

    fn state(t: Option<Transition>) -> Option<(AlertState, String, Millis)> {
        t.map(|t| (t.alert.state, t.alert.stage, t.alert.updated_at))
    }

    #[test]
    fn fires_escalates_deescalates_resolves() {
        let mut book = AlertBook::default();
        let t = book.apply("s", "stage", target(0), 57.6, 1, NO_WAIT);
        assert_eq!(state(t), Some((AlertState::Firing, "guard".into(), 1)));
        assert_eq!(book.apply("s", "stage", target(0), 57.7, 2, NO_WAIT), None);
        let t = book.apply("s", "stage", target(2), 61.2, 3, NO_WAIT);
        assert_eq!(
            state(t),
            Some((AlertState::Escalated, "guaranteed".into(), 3))
        );
        let t = book
            .apply("s", "stage", target(1), 60.0, 4, NO_WAIT)
            .expect("falls back");
        assert_eq!(t.alert.state, AlertState::Deescalated);
        assert_eq!(t.left, Some(("guaranteed".to_string(), 61.0)));
        let t = book.apply("s", "stage", None, 57.0, 5, NO_WAIT);
        assert_eq!(state(t), Some((AlertState::Resolved, "warning".into(), 5)));
        assert!(book.get("s", "stage").is_none());
    }

    #[test]
    fn pending_fires_after_holding_and_drops_when_it_stops() {
        let wait = Duration::from_secs(600);
        let mut book = AlertBook::default();
        let t = book.apply("s", "stage", target(0), 57.6, 0, wait);
        assert_eq!(state(t), Some((AlertState::Pending, "guard".into(), 0)));
        assert_eq!(
            book.apply("s", "stage", target(1), 59.1, 5 * MIN, wait),
            None
        );
        // Exactly `pending` later it fires, at the stage reached meanwhile.
        let t = book.apply("s", "stage", target(1), 59.2, 10 * MIN, wait);
        assert_eq!(
            state(t),
            Some((AlertState::Firing, "warning".into(), 10 * MIN))
        );

        let t = book.apply("s", "other", target(0), 57.6, 0, wait);
        assert_eq!(t.map(|t| t.alert.state), Some(AlertState::Pending));
        let t = book.apply("s", "other", None, 57.0, 5 * MIN, wait);
        assert_eq!(
            state(t),
            Some((AlertState::Resolved, "guard".into(), 5 * MIN))
        );
    }

    #[test]
    fn pending_escalation_waits_and_resets_when_it_stops_holding() {
        let wait = Duration::from_secs(600);
        let mut book = AlertBook::default();
        book.apply("s", "stage", target(0), 57.6, 0, Duration::ZERO);
        assert_eq!(book.apply("s", "stage", target(1), 59.1, MIN, wait), None);
        assert_eq!(
            book.apply("s", "stage", target(0), 58.9, 2 * MIN, wait),
            None
        );
        // The wait starts again.
        assert_eq!(
            book.apply("s", "stage", target(1), 59.1, 3 * MIN, wait),
            None
        );
        assert_eq!(
            book.apply("s", "stage", target(1), 59.1, 12 * MIN, wait),
            None
        );
        let t = book.apply("s", "stage", target(1), 59.1, 13 * MIN, wait);
        assert_eq!(
            state(t),
            Some((AlertState::Escalated, "warning".into(), 13 * MIN))
        );
    }

    #[test]
    fn acknowledge_once_and_escalation_asks_again() {
        let mut book = AlertBook::default();
        let id = book
            .apply("s", "stage", target(0), 57.6, 0, NO_WAIT)
            .expect("fires")
            .alert
            .alert_id;
        assert_eq!(book.acknowledge("nope", "t", 1), Err(AckError::NotFound));
        let a = book.acknowledge(&id, "pihe-east", 5).expect("acknowledged");
        assert_eq!(a.acknowledged_by.as_deref(), Some("pihe-east"));
        assert_eq!(a.acknowledged_at, Some(5));
        assert_eq!(a.state, AlertState::Firing);
        assert_eq!(
            book.acknowledge(&id, "pihe-east", 6),
            Err(AckError::AlreadyAcknowledged)
        );
        let t = book
            .apply("s", "stage", target(1), 59.0, 7, NO_WAIT)
            .expect("escalates");
        assert_eq!(t.alert.acknowledged_by, None);
        assert!(book.acknowledge(&id, "pihe-east", 8).is_ok());
    }
}
