//! Push events → `hub::events::parse`: never panics on any body; a success names 1 to
//! `MAX_CHANGES` non-empty names, sorted and without duplicates, and gives the same answer
//! when wrapped in an SNS notification; an error never quotes the body; matching a change
//! against keys never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssm_injector::hub::events::{Change, MAX_CHANGES, Parsed, parse, same_secret};
use ssm_injector::hub_protocol::Key;

fuzz_target!(|body: &str| {
    let parsed = parse(body);
    match &parsed {
        Ok(Parsed::Changes(changes)) => {
            assert!(
                !changes.is_empty() && changes.len() <= MAX_CHANGES,
                "{body:?}"
            );
            assert!(changes.windows(2).all(|w| w[0] < w[1]), "{changes:?}");
            let keys: Vec<Key> = [
                "name:/app/db",
                "path:/:r",
                "name:/aws/reference/secretsmanager/db",
            ]
            .iter()
            .filter_map(|k| Key::parse(k).ok())
            .collect();
            for c in changes {
                let name = match c {
                    Change::Parameter(n) | Change::Secret(n) => n,
                };
                assert!(!name.is_empty());
                for k in &keys {
                    let _ = c.affects(k);
                }
                let _ = same_secret(name, "db");
            }
        }
        Ok(Parsed::Ignored(why)) => {
            let _ = why.label();
        }
        Err(e) => {
            let shown = e.to_string();
            // Fixed words and sizes only: a body longer than any message never shows up.
            if body.len() > 100 {
                assert!(!shown.contains(body), "{shown}");
            }
        }
    }
    // The same event inside an SNS notification means the same (for bodies that are events,
    // not SNS messages themselves: SNS is unwrapped once).
    let is_sns = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .is_some_and(|v| v.get("Type").is_some());
    if matches!(parsed, Ok(Parsed::Changes(_))) && !is_sns {
        let wrapped = serde_json::json!({"Type": "Notification", "Message": body}).to_string();
        assert_eq!(parse(&wrapped), parsed, "{body:?}");
    }
});
