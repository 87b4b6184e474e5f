//! The capacity model's arithmetic (pure): checked inputs → AWS calls per second, calls
//! per month and their cost ([`Estimate`]). docs/capacity.md explains each term.

use super::inputs::{CapacityError, Checked, Mode, Prices, check_target_tps, out_of_range};
use serde::Serialize;
use std::time::Duration;

/// Names per GetParameters call and parameters per GetParametersByPath page.
pub const PER_CALL: u64 = 10;
/// Names per DescribeParameters call of the hub (`Name Equals` filter, pages of 50).
pub const DESCRIBE_PER_CALL: u64 = 50;
/// The model's month: 30 days.
pub const MONTH_DAYS: f64 = 30.0;
const DAY_SECONDS: f64 = 86_400.0;
const MONTH_SECONDS: f64 = MONTH_DAYS * DAY_SECONDS;

/// Monthly cost in USD of one throughput setting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Cost {
    pub parameter_store_usd: f64,
    pub secrets_manager_usd: f64,
    pub kms_usd: f64,
    pub total_usd: f64,
    /// The busiest region's calls/s fit this setting's quota.
    pub within_quota: bool,
}

/// Hub-mode figures. The model assumes every name a pod watches is a plain name or a
/// Secrets Manager reference: `name:label` and `name:3` selectors (and ARNs, `/aws/` and
/// `/ssm/` names) are read by the hub with GetParameters, which is in the shared quota, and
/// are not modelled (docs/capacity.md gives the term to add).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HubEstimate {
    pub hub_interval_seconds: f64,
    pub hub_replicas: u64,
    pub distinct_names: u64,
    /// DescribeParameters calls of all replicas, per second (plain names, 50 per call).
    /// Not in the 40 calls/s quota: DescribeParameters has its own throttle, which AWS does
    /// not publish.
    pub describe_parameters_per_second: f64,
    /// DescribeSecret calls for Secrets Manager references (Secrets Manager's quota).
    pub describe_secret_per_second: f64,
    /// Pods watching one parameter (on average).
    pub watchers_per_name: f64,
    /// Calls caused by one rotation of one parameter: every watching pod fetches that
    /// value (and only it), one call each.
    pub calls_per_rotation: f64,
    /// Pod fetches per day caused by rotations (each decrypts the rotated value only). An
    /// upper bound: names rotated within one spread window share a call.
    pub rotation_fetches_per_day: f64,
    /// Calls per day caused by rotations: one per fetch.
    pub rotation_calls_per_day: f64,
    /// Time over which the calls of one rotation must be spread to keep the busiest region
    /// under the target (the hub's own reads use none of it); `None` without a target.
    pub rotation_spread_seconds: Option<f64>,
    /// The same at the higher-throughput quota.
    pub rotation_spread_seconds_high_throughput: Option<f64>,
    /// Calls/s if the hub went away and every pod polled by name at `interval`.
    pub fallback_calls_per_second: f64,
}

/// The model's answer. Rates are Parameter Store calls in the shared quota (GetParameter,
/// GetParameters, GetParametersByPath) unless named otherwise.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub mode: Mode,
    pub pods: u64,
    pub params_per_pod: u64,
    pub interval_seconds: f64,
    pub regions: u64,
    /// One pod's poll (by name: GetParameters calls; by path: pages). Hub mode: one pod's
    /// fallback poll by name, and the calls of one init render.
    pub calls_per_poll: u64,
    /// Pods polling AWS (0 in hub mode): version reads, which never decrypt.
    pub poll_calls_per_second: f64,
    /// The fetches rotations cause: each rotated value fetched (and decrypted) once by
    /// every pod watching it, one call each (an upper bound). By name and by path they
    /// come on top of the polls' `steady_calls_per_second` (which, like the minimum
    /// interval, is the interval-dependent part); with the hub they are all of it.
    pub rotation_calls_per_second: f64,
    /// KMS decrypts of a poll where nothing changed (0: polls read versions only).
    pub decrypts_per_idle_poll: f64,
    /// KMS decrypts per pod when `k` of its values rotate: `k ×` this (1 for
    /// SecureStrings and Secrets Manager references, 0 for Strings; the average).
    pub decrypts_per_rotated_value: f64,
    /// The fleet's steady calls/s against the shared quota, all regions: polls, or (hub)
    /// the daily average of the rotation re-fetches; the hub's DescribeParameters and
    /// DescribeSecret are not in it. Init renders are apart.
    pub steady_calls_per_second: f64,
    /// The same for the busiest region, which is what the per-region quota sees.
    pub busiest_region_calls_per_second: f64,
    pub target_tps: f64,
    /// `busiest_region_calls_per_second / target_tps`.
    pub target_utilisation: f64,
    pub within_target: bool,
    /// Smallest pod poll interval that keeps the busiest region under the target (by
    /// name or by path; hub: the fallback polling by name).
    pub min_interval_seconds: f64,
    pub init_calls_per_day: f64,
    pub month_days: f64,
    /// Every Parameter Store API interaction, which higher throughput charges: the shared
    /// quota's calls plus (hub) the hub's DescribeParameters.
    pub parameter_store_calls_per_month: f64,
    /// GetSecretValue made for references plus the hub's DescribeSecret calls.
    pub secrets_manager_calls_per_month: f64,
    pub kms_decrypts_per_month: f64,
    /// Parameter Store API interactions free; throttled above the standard quota.
    pub standard_throughput: Cost,
    /// Every Parameter Store API interaction charged.
    pub high_throughput: Cost,
    pub hub: Option<HubEstimate>,
}

/// `n` split into `parts` near-equal shares (the first ones one larger).
fn split(n: u64, parts: u64) -> impl Iterator<Item = u64> {
    let (base, extra) = (n / parts, n % parts);
    (0..parts).map(move |i| base + u64::from(i < extra))
}

/// GetParameters calls for `names` spread evenly over `regions`: Σ ⌈names_in_region / 10⌉.
pub fn calls_by_name(names: u64, regions: u64) -> u64 {
    split(names, regions.max(1))
        .map(|n| n.div_ceil(PER_CALL))
        .sum()
}

/// DescribeParameters calls of one hub poll for `names` plain names spread evenly over
/// `regions`: Σ ⌈names_in_region / 50⌉ (one full page each).
pub fn describe_calls(names: u64, regions: u64) -> u64 {
    split(names, regions.max(1))
        .map(|n| n.div_ceil(DESCRIBE_PER_CALL))
        .sum()
}

/// GetParametersByPath pages for `params` spread evenly over `paths`: Σ ⌈n / 10⌉, plus one
/// empty page per path holding an exact multiple of 10 when `extra_empty_page`.
pub fn pages_by_path(params: u64, paths: u64, extra_empty_page: bool) -> u64 {
    split(params, paths.max(1))
        .map(|n| n.div_ceil(PER_CALL) + u64::from(extra_empty_page && n % PER_CALL == 0))
        .sum()
}

/// Smallest poll interval at which `pods` each making `calls_per_poll` calls stay at or
/// under `target_tps`: pods × calls_per_poll / target_tps.
pub fn min_interval(
    pods: u64,
    calls_per_poll: u64,
    target_tps: f64,
) -> Result<Duration, CapacityError> {
    check_target_tps(target_tps)?;
    let seconds = pods as f64 * calls_per_poll as f64 / target_tps;
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| out_of_range("--pods", pods, "a fleet whose interval fits a Duration"))
}

/// Time over which `watchers` fetches of `calls_each` calls must be spread to stay under
/// `budget_tps`: W = watchers × calls_each / budget_tps. `None` when there is no budget.
pub fn rotation_window(watchers: f64, calls_each: f64, budget_tps: f64) -> Option<f64> {
    (budget_tps > 0.0 && budget_tps.is_finite()).then(|| watchers * calls_each / budget_tps)
}

fn cost(
    ps_calls: f64,
    ps_price: f64,
    sm_calls: f64,
    kms: f64,
    prices: &Prices,
    within_quota: bool,
) -> Cost {
    let parameter_store_usd = ps_calls * ps_price / 10_000.0;
    let secrets_manager_usd = sm_calls * prices.secrets_manager_per_10k / 10_000.0;
    let kms_usd = (kms - prices.kms_free_requests).max(0.0) * prices.kms_per_10k / 10_000.0;
    Cost {
        parameter_store_usd,
        secrets_manager_usd,
        kms_usd,
        total_usd: parameter_store_usd + secrets_manager_usd + kms_usd,
        within_quota,
    }
}

/// Runs the model on checked inputs (see [`super::estimate`] for the whole step).
pub fn compute(checked: Checked<'_>) -> Estimate {
    let i = checked.inputs();
    let pods = i.pods as f64;
    let n = i.params_per_pod;
    let s = i.secret_refs as f64;
    let interval = i.interval.as_secs_f64();
    // Busiest region's share of the names, for the per-region quota.
    let busiest_names = n.div_ceil(i.regions);

    let (calls_per_poll, busiest_per_poll) = match i.mode {
        Mode::ByPath => {
            let pages = pages_by_path(n, i.paths, i.extra_empty_page);
            (pages, pages)
        }
        Mode::ByName | Mode::Hub => (
            calls_by_name(n, i.regions),
            busiest_names.div_ceil(PER_CALL),
        ),
    };
    // KMS Decrypts of one pod reading all its values once (Secrets Manager decrypts every
    // reference it serves), and of one value on average.
    let decrypts_per_read = (n as f64 - s) * i.secure_fraction + s;
    let decrypts_per_value = decrypts_per_read / n as f64;
    let init_calls_per_day = i.pod_starts_per_day * calls_per_poll as f64;
    let init_month = |per_read: f64| i.pod_starts_per_day * per_read * MONTH_DAYS;
    // Rotations: each rotated value is fetched (with decryption) once by every pod that
    // watches it, one GetParameters call each (an upper bound: values rotated between the
    // same two polls share a call); nothing else is decrypted after the first render.
    let rotated_values_per_day = i.rotations_per_day * pods * n as f64;
    let rotation_rate = rotated_values_per_day / DAY_SECONDS;
    let rotation_busiest = rotation_rate * busiest_names as f64 / n as f64;
    let rotation_kms_month = rotated_values_per_day * decrypts_per_value * MONTH_DAYS;
    let rotation_sm_month = i.rotations_per_day * pods * s * MONTH_DAYS;
    let min_interval_seconds = pods * busiest_per_poll as f64 / i.target_tps;

    let (poll_rate, steady, busiest, ps_month, sm_month, kms_month, hub) = match i.mode {
        Mode::ByName | Mode::ByPath => {
            // Polls read versions without decrypting: the same calls as before, no KMS.
            let rate = pods * calls_per_poll as f64 / interval;
            let busiest = pods * busiest_per_poll as f64 / interval;
            // Multiply before dividing: 10,000 × 2 × 2,592,000 / 60 is exact.
            let ps = pods * calls_per_poll as f64 * MONTH_SECONDS / interval
                + rotated_values_per_day * MONTH_DAYS
                + init_month(calls_per_poll as f64);
            // A reference's version: one DescribeSecret per poll; its value: one
            // GetSecretValue per rotation.
            let sm = pods * s * MONTH_SECONDS / interval + rotation_sm_month + init_month(s);
            let kms = rotation_kms_month + init_month(decrypts_per_read);
            (rate, rate, busiest, ps, sm, kms, None)
        }
        Mode::Hub => {
            let d = i.distinct_names.unwrap_or(n);
            // Distinct references in the same proportion as in one pod.
            let ds = (d as f64 * s / n as f64).ceil().min(d as f64) as u64;
            let hub_s = i.hub_interval.as_secs_f64();
            let replicas = i.hub_replicas as f64;
            // Each replica reads every plain name with DescribeParameters and every
            // reference with DescribeSecret: neither is in the shared quota, so the whole
            // target is left for the pods' re-fetches.
            let describe_calls = replicas * describe_calls(d - ds, i.regions) as f64;
            let describe_rate = describe_calls / hub_s;
            let describe_secret_rate = replicas * ds as f64 / hub_s;
            let watchers = pods * n as f64 / d as f64;
            // One rotation of one parameter: each watching pod fetches that value.
            let fetches_per_day = i.rotations_per_day * d as f64 * watchers;
            let rotation_calls_per_day = fetches_per_day;
            let ps = describe_calls * MONTH_SECONDS / hub_s
                + rotation_calls_per_day * MONTH_DAYS
                + init_month(calls_per_poll as f64);
            let sm = describe_secret_rate * MONTH_SECONDS + rotation_sm_month + init_month(s);
            let kms = rotation_kms_month + init_month(decrypts_per_read);
            let hub_est = HubEstimate {
                hub_interval_seconds: hub_s,
                hub_replicas: i.hub_replicas,
                distinct_names: d,
                describe_parameters_per_second: describe_rate,
                describe_secret_per_second: describe_secret_rate,
                watchers_per_name: watchers,
                calls_per_rotation: watchers,
                rotation_fetches_per_day: fetches_per_day,
                rotation_calls_per_day,
                rotation_spread_seconds: rotation_window(watchers, 1.0, i.target_tps),
                rotation_spread_seconds_high_throughput: rotation_window(
                    watchers,
                    1.0,
                    i.quotas.high_throughput_tps,
                ),
                fallback_calls_per_second: pods * calls_per_poll as f64 / interval,
            };
            let steady = rotation_calls_per_day / DAY_SECONDS;
            (0.0, steady, rotation_busiest, ps, sm, kms, Some(hub_est))
        }
    };
    let high_quota = match i.mode {
        Mode::ByPath => i.quotas.high_throughput_by_path_tps,
        Mode::ByName | Mode::Hub => i.quotas.high_throughput_tps,
    };
    Estimate {
        mode: i.mode,
        pods: i.pods,
        params_per_pod: n,
        interval_seconds: interval,
        regions: i.regions,
        calls_per_poll,
        poll_calls_per_second: poll_rate,
        rotation_calls_per_second: rotation_rate,
        decrypts_per_idle_poll: 0.0,
        decrypts_per_rotated_value: decrypts_per_value,
        steady_calls_per_second: steady,
        busiest_region_calls_per_second: busiest,
        target_tps: i.target_tps,
        target_utilisation: busiest / i.target_tps,
        within_target: busiest <= i.target_tps,
        min_interval_seconds,
        init_calls_per_day,
        month_days: MONTH_DAYS,
        parameter_store_calls_per_month: ps_month,
        secrets_manager_calls_per_month: sm_month,
        kms_decrypts_per_month: kms_month,
        standard_throughput: cost(
            ps_month,
            0.0,
            sm_month,
            kms_month,
            &i.prices,
            busiest <= i.quotas.standard_tps,
        ),
        high_throughput: cost(
            ps_month,
            i.prices.parameter_store_per_10k,
            sm_month,
            kms_month,
            &i.prices,
            busiest <= high_quota,
        ),
        hub,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::fixtures::{close, run};
    use crate::capacity::inputs::*;
    use crate::capacity::{estimate, text};
    use proptest::prelude::*;

    #[test]
    fn ten_thousand_pods_with_twenty_names_every_ten_minutes_make_33_calls_per_second() {
        let e = run(10_000, 20, Mode::ByName, 600);
        assert_eq!(e.calls_per_poll, 2);
        assert!(close(e.steady_calls_per_second, 100.0 / 3.0));
        assert!(e.within_target);
        assert!(e.standard_throughput.within_quota);
        assert!(close(e.min_interval_seconds, 500.0));
    }

    #[test]
    fn ten_thousand_pods_with_twenty_names_every_minute_make_333_calls_per_second() {
        let e = run(10_000, 20, Mode::ByName, 60);
        assert!(close(e.steady_calls_per_second, 1000.0 / 3.0));
        assert!(!e.within_target);
        assert!(!e.standard_throughput.within_quota);
        assert!(e.high_throughput.within_quota);
    }

    #[test]
    fn higher_throughput_at_333_calls_per_second_costs_4320_dollars_a_month() {
        let mut i = Inputs::new(10_000, 20, Mode::ByName, Duration::from_secs(60));
        i.secure_fraction = 0.0;
        i.rotations_per_day = 0.0;
        let e = estimate(&i).expect("valid");
        assert_eq!(e.parameter_store_calls_per_month, 864_000_000.0);
        assert!(close(e.high_throughput.parameter_store_usd, 4_320.0));
        assert!(close(e.high_throughput.total_usd, 4_320.0));
        assert_eq!(e.standard_throughput.total_usd, 0.0);
    }

    #[test]
    fn idle_polls_decrypt_nothing_and_each_rotated_securestring_is_one_decrypt_per_pod() {
        let mut i = Inputs::new(10_000, 20, Mode::ByName, DEFAULT_INTERVAL);
        i.rotations_per_day = 0.0;
        let idle = estimate(&i).expect("valid");
        assert_eq!(idle.kms_decrypts_per_month, 0.0);
        assert_eq!(idle.decrypts_per_idle_poll, 0.0);
        assert_eq!(idle.decrypts_per_rotated_value, 1.0);
        let e = run(10_000, 20, Mode::ByName, 600);
        // 20 values rotated once a day, each decrypted once by each of 10,000 pods.
        assert_eq!(e.kms_decrypts_per_month, 6_000_000.0);
        assert!(close(
            e.standard_throughput.kms_usd,
            (6_000_000.0 - 20_000.0) * 0.03 / 10_000.0
        ));
        // Each a GetParameters call, on top of the polls: 200,000 a day.
        assert!(close(e.rotation_calls_per_second, 200_000.0 / 86_400.0));
        assert!(close(e.steady_calls_per_second, 100.0 / 3.0));
        // Strings are never decrypted.
        i.secure_fraction = 0.0;
        i.rotations_per_day = 1.0;
        assert_eq!(estimate(&i).expect("valid").kms_decrypts_per_month, 0.0);
    }

    #[test]
    fn a_path_of_25_parameters_takes_3_pages() {
        assert_eq!(pages_by_path(25, 1, false), 3);
        assert_eq!(run(1, 25, Mode::ByPath, 60).calls_per_poll, 3);
    }

    #[test]
    fn an_exact_multiple_of_ten_costs_one_more_page_only_when_asked() {
        assert_eq!(pages_by_path(20, 1, false), 2);
        assert_eq!(pages_by_path(20, 1, true), 3);
        assert_eq!(pages_by_path(25, 1, true), 3);
        // 30 over two paths: 15 + 15, no exact multiple.
        assert_eq!(pages_by_path(30, 2, true), 4);
    }

    #[test]
    fn names_in_several_regions_are_batched_per_region() {
        assert_eq!(calls_by_name(20, 1), 2);
        assert_eq!(calls_by_name(20, 3), 3); // 7 + 7 + 6
        assert_eq!(calls_by_name(21, 2), 3); // 11 + 10
        assert_eq!(calls_by_name(31, 2), 4); // 16 + 15
        assert_eq!(calls_by_name(1, 1), 1);
    }

    #[test]
    fn two_hub_replicas_read_twenty_names_with_one_describe_parameters_each_every_30_seconds() {
        let mut i = Inputs::new(10_000, 20, Mode::Hub, DEFAULT_INTERVAL);
        i.rotations_per_day = 0.0;
        let e = estimate(&i).expect("valid");
        let h = e.hub.expect("hub figures");
        // ⌈20/50⌉ = 1 call per replica, 2 replicas, every 30 s.
        assert!(close(h.describe_parameters_per_second, 2.0 / 30.0));
        // DescribeParameters is not in the shared quota: nothing else calls it.
        assert_eq!(e.steady_calls_per_second, 0.0);
        assert_eq!(e.busiest_region_calls_per_second, 0.0);
        assert_eq!(e.poll_calls_per_second, 0.0);
        // But it is a Parameter Store API interaction: 2 × 2,592,000 / 30 a month.
        assert!(close(e.parameter_store_calls_per_month, 172_800.0));
        assert!(close(e.high_throughput.parameter_store_usd, 0.864));
        // Version reads do not decrypt.
        assert_eq!(e.kms_decrypts_per_month, 0.0);
        assert!(close(h.fallback_calls_per_second, 100.0 / 3.0));
    }

    #[test]
    fn describe_parameters_takes_fifty_names_per_call_and_region() {
        assert_eq!(describe_calls(20, 1), 1);
        assert_eq!(describe_calls(50, 1), 1);
        assert_eq!(describe_calls(51, 1), 2);
        assert_eq!(describe_calls(1_000, 1), 20);
        assert_eq!(describe_calls(60, 2), 2); // 30 + 30
        assert_eq!(describe_calls(101, 2), 3); // 51 + 50: 2 + 1
    }

    #[test]
    fn a_rotation_watched_by_ten_thousand_pods_needs_250_seconds_at_40() {
        assert_eq!(rotation_window(10_000.0, 2.0, 40.0), Some(500.0));
        assert_eq!(rotation_window(10_000.0, 2.0, 10_000.0), Some(2.0));
        assert_eq!(rotation_window(10_000.0, 2.0, 0.0), None);
        let h = run(10_000, 20, Mode::Hub, 600).hub.expect("hub figures");
        // Every watching pod fetches the rotated value: 1 GetParameters each.
        assert!(close(h.calls_per_rotation, 10_000.0));
        // The hub's reads leave the whole 40/s: 10,000 / 40.
        assert!(close(h.rotation_spread_seconds.expect("a target"), 250.0));
        assert!(close(
            h.rotation_spread_seconds_high_throughput.expect("a quota"),
            1.0
        ));
    }

    #[test]
    fn rotations_make_every_watching_pod_fetch_only_the_rotated_value() {
        let e = run(10_000, 20, Mode::Hub, 600);
        let h = e.hub.expect("hub figures");
        // 20 names rotated once a day, each watched by 10,000 pods.
        assert!(close(h.rotation_fetches_per_day, 200_000.0));
        // 1 call per fetch.
        assert!(close(h.rotation_calls_per_day, 200_000.0));
        assert!(close(e.steady_calls_per_second, 200_000.0 / 86_400.0));
        // Each fetch decrypts the rotated SecureString: 200,000 a day for 30 days.
        assert!(close(e.kms_decrypts_per_month, 6_000_000.0));
        // Fetch calls plus DescribeParameters: 6,000,000 + 172,800.
        assert!(close(e.parameter_store_calls_per_month, 6_172_800.0));
        assert!(close(e.standard_throughput.parameter_store_usd, 0.0));
        assert!(close(e.high_throughput.parameter_store_usd, 30.864));
        assert!(close(e.standard_throughput.kms_usd, 17.94));
        assert!(close(e.high_throughput.total_usd, 48.804));
    }

    #[test]
    fn rotation_fetches_hit_every_region_with_that_regions_batches() {
        let mut i = Inputs::new(1_000, 30, Mode::Hub, DEFAULT_INTERVAL);
        i.regions = 3; // 10 names each: 1 call per region per re-fetch
        let e = estimate(&i).expect("valid");
        let h = e.hub.expect("hub figures");
        assert_eq!(e.calls_per_poll, 3);
        // 30 rotations × 1,000 pods = 30,000 fetches a day, 1 call each, a third of
        // them in the busiest region.
        assert!(close(h.rotation_calls_per_day, 30_000.0));
        assert!(close(
            e.busiest_region_calls_per_second,
            10_000.0 / 86_400.0
        ));
        // Spread for the busiest region: 1,000 pods × 1 call / 40.
        assert!(close(h.rotation_spread_seconds.expect("a target"), 25.0));
        // DescribeParameters per region: ⌈10/50⌉ × 3 regions × 2 replicas / 30 s.
        assert!(close(h.describe_parameters_per_second, 6.0 / 30.0));
    }

    #[test]
    fn distinct_names_spread_the_watchers() {
        let mut i = Inputs::new(1_000, 20, Mode::Hub, DEFAULT_INTERVAL);
        i.distinct_names = Some(2_000); // 100 teams of 10 pods, 20 names each
        let e = estimate(&i).expect("valid");
        let h = e.hub.expect("hub figures");
        assert!(close(h.watchers_per_name, 10.0));
        assert!(close(h.calls_per_rotation, 10.0));
        // 2,000 names in 40 DescribeParameters per replica.
        assert!(close(h.describe_parameters_per_second, 2.0 * 40.0 / 30.0));
        // 2,000 rotations a day × 10 watchers × 1 call.
        assert!(close(h.rotation_calls_per_day, 20_000.0));
    }

    #[test]
    fn secret_references_cost_a_describe_secret_per_poll_and_a_fetch_per_rotation() {
        let mut i = Inputs::new(100, 20, Mode::ByName, Duration::from_secs(600));
        i.secret_refs = 5;
        let e = estimate(&i).expect("valid");
        assert_eq!(e.calls_per_poll, 2);
        // One DescribeSecret per reference and poll, one GetSecretValue per rotation:
        // 100 pods × 5 × 30 days.
        assert!(close(
            e.secrets_manager_calls_per_month,
            100.0 * 5.0 * MONTH_SECONDS / 600.0 + 15_000.0
        ));
        i.mode = Mode::Hub;
        let e = estimate(&i).expect("valid");
        let h = e.hub.expect("hub figures");
        // 15 names described (1 call), 5 references with DescribeSecret, per replica.
        assert!(close(h.describe_parameters_per_second, 2.0 / 30.0));
        assert!(close(h.describe_secret_per_second, 2.0 * 5.0 / 30.0));
        // DescribeSecret: 2 × 5 × 2,592,000 / 30 = 864,000 a month; fetches of rotated
        // references: 100 pods × 5 rotations × 30 days = 15,000.
        assert!(close(e.secrets_manager_calls_per_month, 879_000.0));
        // Each fetch decrypts its one value: 100 pods × 20 rotations × 30 days.
        assert!(close(e.kms_decrypts_per_month, 60_000.0));
    }

    #[test]
    fn pod_starts_add_init_renders() {
        let mut i = Inputs::new(10_000, 20, Mode::ByName, DEFAULT_INTERVAL);
        let before = estimate(&i).expect("valid").parameter_store_calls_per_month;
        i.pod_starts_per_day = 10_000.0;
        let e = estimate(&i).expect("valid");
        assert_eq!(e.init_calls_per_day, 20_000.0);
        assert!(close(e.parameter_store_calls_per_month - before, 600_000.0));
    }

    #[test]
    fn min_interval_is_pods_times_calls_over_the_target() {
        assert_eq!(min_interval(10_000, 2, 40.0), Ok(Duration::from_secs(500)));
        assert_eq!(min_interval(10_000, 2, 32.0), Ok(Duration::from_secs(625)));
        assert!(min_interval(1, 1, 0.0).is_err());
    }

    fn inputs() -> impl Strategy<Value = Inputs> {
        (
            1u64..=100_000,
            1u64..=200,
            prop_oneof![Just(Mode::ByName), Just(Mode::ByPath), Just(Mode::Hub)],
            1u64..=86_400,
            1u64..=5,
            0.0f64..=1.0,
        )
            .prop_map(|(pods, params, mode, secs, regions, secure)| Inputs {
                regions: regions.min(params),
                secure_fraction: secure,
                ..Inputs::new(pods, params, mode, Duration::from_secs(secs))
            })
    }

    proptest! {
        #[test]
        fn more_pods_never_mean_fewer_calls(i in inputs(), extra in 1u64..1_000) {
            let a = estimate(&i).expect("valid");
            let b = estimate(&Inputs { pods: i.pods + extra, ..i.clone() }).expect("valid");
            prop_assert!(b.steady_calls_per_second >= a.steady_calls_per_second);
            prop_assert!(b.parameter_store_calls_per_month >= a.parameter_store_calls_per_month);
            prop_assert!(b.high_throughput.total_usd >= a.high_throughput.total_usd);
        }

        #[test]
        fn a_longer_interval_never_means_more_calls(i in inputs(), extra in 1u64..10_000) {
            let a = estimate(&i).expect("valid");
            let b = estimate(&Inputs { interval: i.interval + Duration::from_secs(extra), ..i.clone() }).expect("valid");
            prop_assert!(b.steady_calls_per_second <= a.steady_calls_per_second);
            prop_assert!(b.kms_decrypts_per_month <= a.kms_decrypts_per_month);
            if i.mode != Mode::Hub {
                // Polling rate is exactly inverse in the interval.
                let ratio = a.steady_calls_per_second * a.interval_seconds / (b.steady_calls_per_second * b.interval_seconds);
                prop_assert!((ratio - 1.0).abs() < 1e-9);
            }
        }

        #[test]
        fn any_input_is_an_estimate_or_an_error_never_a_panic(
            pods in any::<u64>(), params in any::<u64>(), secs in any::<u64>(), nanos in any::<u32>(),
            regions in any::<u64>(), paths in any::<u64>(), refs in any::<u64>(),
            f in any::<f64>(), starts in any::<f64>(), distinct in any::<Option<u64>>(),
            replicas in any::<u64>(), rotations in any::<f64>(), target in any::<f64>(),
            mode in prop_oneof![Just(Mode::ByName), Just(Mode::ByPath), Just(Mode::Hub)],
        ) {
            let i = Inputs {
                pods, params_per_pod: params, mode,
                interval: Duration::new(secs, nanos % 1_000_000_000),
                regions, paths, extra_empty_page: pods % 2 == 0, secret_refs: refs,
                secure_fraction: f, pod_starts_per_day: starts, distinct_names: distinct,
                hub_interval: Duration::from_secs(secs % 100), hub_replicas: replicas,
                rotations_per_day: rotations, target_tps: target,
                ..Inputs::default()
            };
            if let Ok(e) = estimate(&i) {
                prop_assert!(e.steady_calls_per_second.is_finite());
                prop_assert!(e.high_throughput.total_usd.is_finite());
                let _ = text(&e);
            }
        }
    }
}
