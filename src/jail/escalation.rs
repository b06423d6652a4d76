//! Ban-time escalation for repeat offenders (Fail2ban's
//! `bantime.increment`): pure arithmetic, no I/O.

use std::time::Duration;

use crate::config::Increment;
use crate::config::duration::BanTime;

/// The ban time for an address banned `previous` times before (0 for a
/// first offence). `random` in [0, 1) picks the random extra.
///
/// As Fail2ban's `bantime.increment`: a first offence gets the jail's
/// bantime as it is; a repeat offender bantime × factor × 2^previous (never
/// less than bantime), or with `multipliers` bantime × factor ×
/// multipliers[previous] (the last multiplier repeats); never above
/// `maxtime` (unless the base itself is longer); plus up to `rndtime` so
/// that a botnet cannot predict the unban.
pub fn escalate(base: BanTime, inc: Option<&Increment>, previous: u32, random: f64) -> BanTime {
    let (BanTime::For(base), Some(inc)) = (base, inc) else {
        return base;
    };
    if previous == 0 {
        return BanTime::For(base);
    }
    let b = base.as_secs_f64();
    let secs = if inc.multipliers.is_empty() {
        (b * inc.factor * 2f64.powi(previous.min(62) as i32)).max(b)
    } else {
        let i = (previous as usize).min(inc.multipliers.len() - 1);
        b * inc.factor * inc.multipliers[i]
    };
    let secs = secs.min(inc.maxtime.as_secs_f64().max(b));
    let extra = inc.rndtime.as_secs_f64() * random.clamp(0.0, 1.0);
    // At most a century (durations stop near there), but never below the
    // base: a repeat offender is not banned for less than a first one.
    BanTime::For(Duration::from_secs_f64(
        (secs + extra).min(CEILING_SECS.max(b)),
    ))
}

/// The longest escalated ban: 100 years of 365 days.
const CEILING_SECS: f64 = 100.0 * 365.0 * 86_400.0;

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(factor: f64, multipliers: &[f64], maxtime: u64, rnd: u64) -> Increment {
        Increment {
            factor,
            multipliers: multipliers.to_vec(),
            maxtime: Duration::from_secs(maxtime),
            rndtime: Duration::from_secs(rnd),
            overalljails: false,
        }
    }

    fn secs(b: BanTime) -> u64 {
        b.duration().map(|d| d.as_secs()).unwrap_or(u64::MAX)
    }

    #[test]
    fn doubles_per_previous_ban_up_to_maxtime() {
        let base = BanTime::For(Duration::from_secs(600));
        let i = inc(1.0, &[], 3600 * 24, 0);
        let got: Vec<u64> = (0..10)
            .map(|p| secs(escalate(base, Some(&i), p, 0.0)))
            .collect();
        assert_eq!(
            got,
            [
                600, 1200, 2400, 4800, 9600, 19200, 38400, 76800, 86400, 86400
            ]
        );
        let i = inc(3.0, &[], 3600 * 24, 0);
        assert_eq!(secs(escalate(base, Some(&i), 1, 0.0)), 3600);
    }

    #[test]
    fn multipliers_take_precedence_and_the_last_repeats() {
        let base = BanTime::For(Duration::from_secs(60));
        let i = inc(1.0, &[1.0, 5.0, 30.0], 86_400 * 7, 0);
        let got: Vec<u64> = (0..5)
            .map(|p| secs(escalate(base, Some(&i), p, 0.0)))
            .collect();
        assert_eq!(got, [60, 300, 1800, 1800, 1800]);
    }

    #[test]
    fn random_extra_and_edges() {
        let base = BanTime::For(Duration::from_secs(600));
        let i = inc(1.0, &[], 86_400, 100);
        assert_eq!(secs(escalate(base, Some(&i), 1, 0.5)), 1250);
        // A first offence is not escalated, nor randomized (Fail2ban's rule).
        assert_eq!(secs(escalate(base, Some(&i), 0, 0.5)), 600);
        let doubled = inc(2.0, &[], 86_400, 100);
        assert_eq!(secs(escalate(base, Some(&doubled), 0, 0.9)), 600);
        assert_eq!(secs(escalate(base, Some(&doubled), 1, 0.0)), 2400);
        // A factor below 1 never shortens a repeat offender's ban below bantime.
        assert_eq!(
            secs(escalate(base, Some(&inc(0.1, &[], 86_400, 0)), 1, 0.0)),
            600
        );
        assert_eq!(
            escalate(BanTime::Permanent, Some(&i), 5, 0.0),
            BanTime::Permanent
        );
        assert_eq!(escalate(base, None, 5, 0.9), base);
        // Huge counts do not overflow.
        assert_eq!(secs(escalate(base, Some(&i), u32::MAX, 0.0)), 86_400);
        // A base longer than maxtime is not shortened.
        let long = BanTime::For(Duration::from_secs(864_000));
        assert_eq!(secs(escalate(long, Some(&i), 0, 0.0)), 864_000);
    }

    /// Found by tests/properties.rs: a bantime just over 100 × 365 days
    /// (durations go up to 100 × 366) was cut to the century ceiling for
    /// a repeat offender, below what a first offence gets.
    #[test]
    fn a_repeat_offender_never_gets_less_than_a_bantime_over_a_century() {
        let base = BanTime::For(Duration::from_secs(3_153_600_004));
        let i = inc(1.0, &[], 0, 0);
        assert_eq!(secs(escalate(base, Some(&i), 1, 0.0)), 3_153_600_004);
        let m = inc(1.0, &[2.0], 0, 0);
        assert_eq!(secs(escalate(base, Some(&m), 1, 0.0)), 3_153_600_004);
    }
}
