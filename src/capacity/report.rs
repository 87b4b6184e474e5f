//! The capacity model's answer for people and programs: a text table and JSON.

use super::model::Estimate;
use std::fmt::Write as _;
use std::time::Duration;

/// `x` with `decimals` decimals and thousands separators: `4320.0, 2` → `4,320.00`.
pub fn number(x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let text = format!("{:.*}", decimals, x.abs());
    let (int, frac) = match text.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (text.as_str(), None),
    };
    let mut out = String::new();
    if x < 0.0 && text.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        out.push('-');
    }
    for (k, c) in int.chars().enumerate() {
        if k > 0 && (int.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// `seconds` rounded up to whole seconds, as humantime writes it (`500` → `8m 20s`).
pub fn duration_text(seconds: f64) -> String {
    match Duration::try_from_secs_f64(seconds.ceil()) {
        Ok(d) => humantime::format_duration(d).to_string(),
        Err(_) => "never".to_owned(),
    }
}

/// `x` dollars with cents: `4320.0` → `$4,320.00`.
pub(super) fn usd(x: f64) -> String {
    format!("${}", number(x, 2))
}

/// The estimate as a readable table (what `capacity` prints by default).
pub fn text(e: &Estimate) -> String {
    let mut rows: Vec<(String, String)> = vec![
        ("mode".into(), e.mode.as_str().into()),
        (
            "pods × parameters".into(),
            format!(
                "{} × {}",
                number(e.pods as f64, 0),
                number(e.params_per_pod as f64, 0)
            ),
        ),
        ("poll interval".into(), duration_text(e.interval_seconds)),
        ("regions".into(), e.regions.to_string()),
        (
            "calls per poll (one pod)".into(),
            e.calls_per_poll.to_string(),
        ),
    ];
    if let Some(h) = &e.hub {
        rows.extend([
            (
                "hub".into(),
                format!(
                    "{} replicas every {}, {} distinct names",
                    h.hub_replicas,
                    duration_text(h.hub_interval_seconds),
                    number(h.distinct_names as f64, 0)
                ),
            ),
            (
                "hub DescribeParameters/s (not in the quota)".into(),
                number(h.describe_parameters_per_second, 4),
            ),
            (
                "hub DescribeSecret/s (Secrets Manager)".into(),
                number(h.describe_secret_per_second, 4),
            ),
            (
                "calls per rotation (one per watching pod)".into(),
                format!(
                    "{} ({} pods × 1)",
                    number(h.calls_per_rotation, 0),
                    number(h.watchers_per_name, 0),
                ),
            ),
            (
                "rotation fetches/day (at most)".into(),
                number(h.rotation_fetches_per_day, 0),
            ),
            (
                "rotation calls/day (at most)".into(),
                number(h.rotation_calls_per_day, 0),
            ),
            (
                "rotation spread at target".into(),
                h.rotation_spread_seconds
                    .map_or("never".into(), |w| format!("{} s", number(w, 1))),
            ),
            (
                "rotation spread at higher throughput".into(),
                h.rotation_spread_seconds_high_throughput
                    .map_or("never".into(), |w| format!("{} s", number(w, 2))),
            ),
            (
                "calls/s if the hub is away".into(),
                number(h.fallback_calls_per_second, 2),
            ),
        ]);
    }
    rows.extend([
        (
            "steady calls/s in the quota (fleet)".into(),
            number(e.steady_calls_per_second, 2),
        ),
        (
            "busiest region calls/s".into(),
            number(e.busiest_region_calls_per_second, 2),
        ),
        (
            "target calls/s".into(),
            format!(
                "{} ({}% used, {})",
                number(e.target_tps, 2),
                number(e.target_utilisation * 100.0, 1),
                if e.within_target { "within" } else { "OVER" }
            ),
        ),
        (
            "min poll interval for target".into(),
            duration_text(e.min_interval_seconds),
        ),
        (
            "init render calls/day".into(),
            number(e.init_calls_per_day, 0),
        ),
        (
            format!("Parameter Store calls/month ({} days)", e.month_days),
            number(e.parameter_store_calls_per_month, 0),
        ),
        (
            "Secrets Manager calls/month".into(),
            number(e.secrets_manager_calls_per_month, 0),
        ),
        (
            "rotation fetch calls/s (on top of polls)".into(),
            number(e.rotation_calls_per_second, 2),
        ),
        (
            "KMS decrypts per idle poll / per rotated value".into(),
            format!(
                "{} / {}",
                number(e.decrypts_per_idle_poll, 0),
                number(e.decrypts_per_rotated_value, 2)
            ),
        ),
        (
            "KMS decrypts/month".into(),
            number(e.kms_decrypts_per_month, 0),
        ),
    ]);
    for (label, c) in [
        ("standard throughput", &e.standard_throughput),
        ("higher throughput", &e.high_throughput),
    ] {
        rows.push((
            format!("cost/month, {label}"),
            format!(
                "{} (Parameter Store {}, Secrets Manager {}, KMS {}){}",
                usd(c.total_usd),
                usd(c.parameter_store_usd),
                usd(c.secrets_manager_usd),
                usd(c.kms_usd),
                if c.within_quota {
                    ""
                } else {
                    "; OVER its quota: throttled"
                }
            ),
        ));
    }
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        let pad = width - k.chars().count();
        let _ = writeln!(out, "{k}{:pad$}  {v}", "");
    }
    out
}

/// The estimate as pretty JSON with a final newline (what `capacity --format json` prints;
/// the benchmarks read it).
pub fn json(e: &Estimate) -> Result<String, serde_json::Error> {
    let mut t = serde_json::to_string_pretty(e)?;
    t.push('\n');
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::Mode;
    use crate::capacity::fixtures::{close, run};

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(number(4_320.0, 2), "4,320.00");
        assert_eq!(number(864_000_000.0, 0), "864,000,000");
        assert_eq!(number(33.333_333, 2), "33.33");
        assert_eq!(number(0.133_333, 4), "0.1333");
        assert_eq!(number(-1234.5, 1), "-1,234.5");
        assert_eq!(duration_text(500.0), "8m 20s");
        assert_eq!(duration_text(499.2), "8m 20s");
    }

    #[test]
    fn the_text_table_shows_the_headline_figures() {
        let t = text(&run(10_000, 20, Mode::ByName, 600));
        assert!(t.contains("33.33"), "{t}");
        assert!(t.contains("8m 20s"), "{t}");
        let t = text(&run(10_000, 20, Mode::Hub, 600));
        assert!(t.contains("0.0667"), "{t}");
        assert!(t.contains("10,000 (10,000 pods × 1)"), "{t}");
        assert!(t.contains("250.0 s"), "{t}");
    }

    #[test]
    fn the_json_has_the_fields_the_benchmark_reads() {
        let v = serde_json::to_value(run(200, 20, Mode::ByName, 60)).expect("serializes");
        assert_eq!(v["mode"], "by-name");
        assert_eq!(v["calls_per_poll"], 2);
        assert!(close(
            v["steady_calls_per_second"].as_f64().expect("number"),
            200.0 * 2.0 / 60.0
        ));
        assert!(v["hub"].is_null());
    }
}
