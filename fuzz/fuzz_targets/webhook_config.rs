//! Webhook config YAML → `webhook::config::build`: never panics on any text; a config that
//! builds has a non-empty, trimmed image and a usable default interval.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssm_injector::inject::config::build;

fuzz_target!(|text: &str| {
    if let Ok(config) = build(Some(("fuzz.yaml", text)), None) {
        assert!(!config.image.is_empty());
        assert_eq!(config.image.trim(), config.image);
        let _ = humantime::format_duration(config.default_interval).to_string();
    }
});
