//! Station silence (rule `offline`): a station that stops reporting during a flood is itself
//! an emergency. Judged on the wall clock — when hydrowatch last *received* something from the
//! station — because a backlog of old readings still proves the station is alive.

use std::time::Duration;

use crate::alerts::{millis, Target};
use crate::model::Millis;

/// The target for rule `offline` at wall-clock `now`: firing once nothing has arrived for
/// `offline_after` (inclusive). The threshold and value are in seconds.
pub fn offline_target(
    last_message_at: Millis,
    now: Millis,
    offline_after: Duration,
) -> Option<Target> {
    (now.saturating_sub(last_message_at) >= millis(offline_after)).then(|| Target {
        stage: "offline".into(),
        stage_index: 0,
        threshold: offline_after.as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_silent_for_offline_after() {
        let after = Duration::from_secs(900);
        assert!(offline_target(0, 899_999, after).is_none());
        let t = offline_target(0, 900_000, after).expect("offline");
        assert_eq!((t.stage.as_str(), t.threshold), ("offline", 900.0));
    }
}
