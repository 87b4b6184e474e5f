//! The worked tables of docs/capacity.md, generated from the model, and the test that
//! the doc holds them and the headline figures (test-only: nothing of this ships in the
//! binary). When the model changes, the test fails and prints the new tables to paste.

use super::fixtures::run;
use super::model::{Cost, calls_by_name, min_interval};
use super::report::{duration_text, number, usd};
use super::{CapacityError, DEFAULT_TARGET_TPS, Inputs, Mode, estimate};
use std::fmt::Write as _;
use std::time::Duration;

/// The worked tables of `docs/capacity.md`, generated from the model (the test below
/// checks that the doc holds them verbatim).
fn worked_tables() -> Result<String, CapacityError> {
    const PODS: [u64; 3] = [100, 1_000, 10_000];
    const INTERVALS: [(u64, &str); 3] = [(60, "60 s"), (300, "5 m"), (600, "10 m")];
    let mut out = String::new();
    let at = |pods, mode, secs| estimate(&Inputs::new(pods, 20, mode, Duration::from_secs(secs)));

    out.push_str("#### Calls per second, 20 parameters per pod\n\n");
    out.push_str("| pods | interval | by name | by path | hub | by name within 40/s |\n");
    out.push_str("| ---: | ---: | ---: | ---: | ---: | :---: |\n");
    for pods in PODS {
        for (secs, label) in INTERVALS {
            let name = at(pods, Mode::ByName, secs)?;
            let path = at(pods, Mode::ByPath, secs)?;
            let hub = at(pods, Mode::Hub, secs)?;
            let _ = writeln!(
                out,
                "| {} | {label} | {} | {} | {} | {} |",
                number(pods as f64, 0),
                number(name.steady_calls_per_second, 2),
                number(path.steady_calls_per_second, 2),
                number(hub.steady_calls_per_second, 2),
                if name.within_target { "yes" } else { "no" },
            );
        }
    }

    out.push_str("\n#### Smallest poll interval for 40 calls/s, by name, one region\n\n");
    out.push_str("| pods | 10 names | 20 names | 50 names | 100 names |\n");
    out.push_str("| ---: | ---: | ---: | ---: | ---: |\n");
    for pods in PODS {
        let mut row = format!("| {} |", number(pods as f64, 0));
        for names in [10, 20, 50, 100] {
            let d = min_interval(pods, calls_by_name(names, 1), DEFAULT_TARGET_TPS)?;
            let _ = write!(row, " {} |", duration_text(d.as_secs_f64()));
        }
        out.push_str(&row);
        out.push('\n');
    }

    out.push_str("\n#### Per month (30 days), 10,000 pods × 20 SecureStrings\n\n");
    out.push_str("| mode | interval | Parameter Store calls | KMS decrypts | cost, standard throughput | cost, higher throughput | of which Parameter Store |\n");
    out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    let mut rows: Vec<(Mode, u64, &str)> = Vec::new();
    for mode in [Mode::ByName, Mode::ByPath] {
        rows.extend(INTERVALS.iter().map(|&(secs, label)| (mode, secs, label)));
    }
    rows.push((Mode::Hub, 600, "hub 30 s"));
    for (mode, secs, label) in rows {
        let e = at(10_000, mode, secs)?;
        let within = |c: &Cost| {
            if c.within_quota {
                usd(c.total_usd)
            } else {
                format!("over quota ({})", usd(c.total_usd))
            }
        };
        let _ = writeln!(
            out,
            "| {} | {label} | {} | {} | {} | {} | {} |",
            mode.as_str(),
            number(e.parameter_store_calls_per_month, 0),
            number(e.kms_decrypts_per_month, 0),
            within(&e.standard_throughput),
            within(&e.high_throughput),
            usd(e.high_throughput.parameter_store_usd),
        );
    }

    out.push_str("\n#### Hub: spreading the re-fetches of one rotation, 20 names per pod\n\n");
    out.push_str("| pods watching | calls per rotation | spread at 40/s | spread at 10,000/s |\n");
    out.push_str("| ---: | ---: | ---: | ---: |\n");
    for pods in PODS {
        let e = at(pods, Mode::Hub, 600)?;
        if let Some(h) = e.hub {
            let w =
                |x: Option<f64>| x.map_or("never".to_owned(), |s| format!("{} s", number(s, 2)));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                number(h.watchers_per_name, 0),
                number(h.calls_per_rotation, 0),
                w(h.rotation_spread_seconds),
                w(h.rotation_spread_seconds_high_throughput),
            );
        }
    }
    Ok(out)
}

/// docs/capacity.md holds the generated tables verbatim and the headline figures, so
/// the doc cannot drift from the model.
#[test]
fn docs_capacity_md_matches_the_model() {
    let doc = include_str!("../../docs/capacity.md");
    let tables = worked_tables().expect("valid");
    assert!(
        doc.contains(&tables),
        "docs/capacity.md is out of date; paste these tables into it:\n\n{tables}"
    );
    let headline = run(10_000, 20, Mode::ByName, 600);
    let hub = run(10_000, 20, Mode::Hub, 600);
    let h = hub.hub.expect("hub figures");
    for figure in [
        number(h.describe_parameters_per_second, 4),
        number(hub.steady_calls_per_second, 2),
        number(h.rotation_calls_per_day, 0),
        number(hub.kms_decrypts_per_month, 0),
        number(headline.steady_calls_per_second, 2),
        number(run(10_000, 20, Mode::ByName, 60).steady_calls_per_second, 2),
        duration_text(headline.min_interval_seconds),
        usd(4_320.0),
        number(864_000_000.0, 0),
    ] {
        assert!(doc.contains(&figure), "docs/capacity.md lacks {figure}");
    }
}
