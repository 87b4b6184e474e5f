//! The local endpoint's request line (method, path, query: what a client on loopback sends)
//! → `serve::request::route`, then the spec's rules: any bytes give a read or a refusal
//! with a 4xx status and a one-line message. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssm_injector::serve::request::{Route, route};
use ssm_injector::serve::rules::Rules;
use ssm_injector::spec::names::parse_param_ref;
use ssm_injector::spec::{ParamRequest, PathRequest};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // METHOD PATH?QUERY, as a request line splits it.
    let (method, rest) = text.split_once(' ').unwrap_or(("GET", &text));
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let params = [ParamRequest {
        key: "DB".into(),
        param: parse_param_ref("/app/db").expect("a name"),
        optional: false,
    }];
    let paths = [PathRequest {
        path: "/app/prod/".into(),
        recursive: false,
        optional: false,
    }];
    let rules = Rules::new(&params, &paths, &["/shared/".to_owned()]);
    match route(method, path, query) {
        Err(r) => {
            assert!((400..500).contains(&r.status), "{r:?}");
            assert!(!r.message.is_empty() && !r.message.contains('\n'), "{r:?}");
        }
        Ok(Route::Parameter(read)) => {
            if let Err(r) = rules.parameter(&read) {
                assert_eq!(r.status, 403, "{r:?}");
            }
        }
        Ok(Route::Secret(read)) => {
            if let Err(r) = rules.secret(&read) {
                assert_eq!(r.status, 403, "{r:?}");
            }
        }
        Ok(Route::Ping) => {}
    }
});
