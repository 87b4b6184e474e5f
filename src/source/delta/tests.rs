use super::*;
use proptest::prelude::*;

fn r(s: &str) -> ParamRef {
    parse_param_ref(s).unwrap()
}

fn path(p: &str) -> PathRequest {
    PathRequest {
        path: p.to_owned(),
        recursive: true,
        optional: false,
    }
}

fn fetched(name: &str, version: i64, value: &str) -> Fetched {
    Fetched {
        name: name.to_owned(),
        version,
        value: Secret::from(value),
        meta: Meta::default(),
    }
}

fn value(a: &Answer<Fetched>) -> Option<(String, i64)> {
    match a {
        Ok(Some(f)) => Some((f.value.expose().to_owned(), f.version)),
        _ => None,
    }
}

fn requests_of(names: &[&str]) -> Vec<ParamRef> {
    requests(names.iter().map(|n| r(n)).collect::<Vec<_>>().iter())
}

/// Runs one poll of `names` and `paths` against `aws` (name → (version, value); a
/// reference's version is its id), fetching what the plan says: (plan, settled).
fn poll(
    held: &mut Held,
    names: &[&str],
    paths: &[PathRequest],
    aws: &BTreeMap<String, (i64, String)>,
) -> (Plan, Settled) {
    let reqs = requests_of(names);
    let c = checks(held, &reqs, paths, true);
    let mut observed = Observed::default();
    for q in c.params.iter().chain(&c.secrets) {
        let v = aws.get(&q.request()).map(|(v, _)| {
            if q.is_secrets_manager() {
                Version::Secret(v.to_string())
            } else {
                Version::Param(*v)
            }
        });
        observed.requests.insert(q.request(), Ok(v));
    }
    for p in &c.paths {
        let names = aws
            .iter()
            .filter(|(n, _)| n.starts_with(&p.path))
            .map(|(n, (v, _))| (n.clone(), *v))
            .collect();
        observed.paths.insert(path_key(p), Ok(names));
    }
    let plan = plan(held, &reqs, paths, &observed);
    let mut got = Got::default();
    for q in &plan.fetch {
        let a = aws.get(&q.request()).map(|(v, x)| fetched(&q.name, *v, x));
        got.requests.insert(q.request(), Ok(a));
    }
    for p in &plan.paths {
        let found = aws
            .iter()
            .filter(|(n, _)| n.starts_with(&p.path))
            .map(|(n, (v, x))| fetched(n, *v, x))
            .collect();
        got.paths.insert(path_key(p), Ok(found));
    }
    let settled = settle(held, &reqs, paths, &observed, got);
    (plan, settled)
}

/// AWS as a test sees it: request or name → (version, value).
type Aws = BTreeMap<String, (i64, String)>;

fn aws(items: &[(&str, i64, &str)]) -> Aws {
    items
        .iter()
        .map(|(n, v, x)| ((*n).to_owned(), (*v, (*x).to_owned())))
        .collect()
}

#[test]
fn nothing_held_means_nothing_checked_and_everything_fetched() {
    let held = Held::default();
    let reqs = requests_of(&["/a", "/a#f", "/b:live"]);
    assert_eq!(reqs.len(), 2, "fields of one request are one request");
    let c = checks(&held, &reqs, &[path("/p/")], true);
    assert_eq!(c, Checks::default());
    let p = plan(&held, &reqs, &[path("/p/")], &Observed::default());
    assert_eq!(p.fetch, reqs);
    assert_eq!(p.paths, vec![path("/p/")]);
}

#[test]
fn an_unchanged_poll_fetches_nothing_and_renders_the_held_values() {
    let mut held = Held::default();
    let state = aws(&[("/a", 1, "a1"), ("/b", 4, "b4"), ("/p/x", 2, "x2")]);
    let (first, _) = poll(&mut held, &["/a", "/b"], &[path("/p/")], &state);
    assert_eq!(first.fetch.len(), 2);
    let (second, settled) = poll(&mut held, &["/a", "/b"], &[path("/p/")], &state);
    assert_eq!(second, Plan::default(), "nothing to decrypt");
    assert_eq!(value(&settled.requests["/b"]), Some(("b4".to_owned(), 4)));
    let under: Vec<_> = settled.paths[0]
        .as_ref()
        .unwrap()
        .iter()
        .map(|f| f.value.expose().to_owned())
        .collect();
    assert_eq!(under, ["x2"]);
}

#[test]
fn table_of_changes_and_what_they_fetch() {
    // (what happened, AWS after it, the requests fetched, the whole paths fetched)
    let before = aws(&[
        ("/a", 1, "a1"),
        ("/b", 1, "b1"),
        ("/p/x", 1, "x1"),
        ("/p/y", 1, "y1"),
    ]);
    let cases: Vec<(&str, Aws, Vec<&str>)> = vec![
        ("nothing", before.clone(), vec![]),
        (
            "a rotated",
            aws(&[
                ("/a", 2, "a2"),
                ("/b", 1, "b1"),
                ("/p/x", 1, "x1"),
                ("/p/y", 1, "y1"),
            ]),
            vec!["/a"],
        ),
        (
            "a name under the path rotated",
            aws(&[
                ("/a", 1, "a1"),
                ("/b", 1, "b1"),
                ("/p/x", 1, "x1"),
                ("/p/y", 5, "y5"),
            ]),
            vec!["/p/y"],
        ),
        (
            "the path gained a name",
            aws(&[
                ("/a", 1, "a1"),
                ("/b", 1, "b1"),
                ("/p/x", 1, "x1"),
                ("/p/y", 1, "y1"),
                ("/p/z", 1, "z1"),
            ]),
            vec!["/p/z"],
        ),
        (
            "the path lost a name, b was deleted",
            aws(&[("/a", 1, "a1"), ("/p/x", 1, "x1")]),
            vec![],
        ),
    ];
    for (what, after, want) in cases {
        let mut held = Held::default();
        poll(&mut held, &["/a", "/b"], &[path("/p/")], &before);
        let (plan, settled) = poll(&mut held, &["/a", "/b"], &[path("/p/")], &after);
        let fetched: Vec<String> = plan.fetch.iter().map(ParamRef::request).collect();
        assert_eq!(fetched, want, "{what}");
        assert!(plan.paths.is_empty(), "{what}");
        // The answers are what a full fetch of `after` would give.
        for n in ["/a", "/b"] {
            let want = after.get(n).map(|(v, x)| (x.clone(), *v));
            assert_eq!(value(&settled.requests[n]), want, "{what}: {n}");
        }
        let under: Vec<(String, i64)> = settled.paths[0]
            .as_ref()
            .unwrap()
            .iter()
            .map(|f| (f.value.expose().to_owned(), f.version))
            .collect();
        let want: Vec<(String, i64)> = after
            .iter()
            .filter(|(n, _)| n.starts_with("/p/"))
            .map(|(_, (v, x))| (x.clone(), *v))
            .collect();
        assert_eq!(under, want, "{what}");
    }
}

#[test]
fn a_moved_label_is_a_new_version_of_its_request() {
    let mut held = Held::default();
    poll(&mut held, &["/a:live"], &[], &aws(&[("/a:live", 1, "one")]));
    let (plan, settled) = poll(&mut held, &["/a:live"], &[], &aws(&[("/a:live", 2, "two")]));
    assert_eq!(plan.fetch, vec![r("/a:live")]);
    assert_eq!(
        value(&settled.requests["/a:live"]),
        Some(("two".to_owned(), 2))
    );
}

#[test]
fn a_secret_is_checked_even_with_nothing_held_and_fetched_once_for_all_its_fields() {
    let held = Held::default();
    let reqs = requests_of(&[
        "/aws/reference/secretsmanager/db#user",
        "/aws/reference/secretsmanager/db#password",
    ]);
    assert_eq!(reqs.len(), 1);
    let c = checks(&held, &reqs, &[], true);
    assert_eq!(c.secrets, reqs);
    // Refused: not checked, so fetched every time.
    assert_eq!(checks(&held, &reqs, &[], false), Checks::default());

    let mut held = Held::default();
    let sm = "/aws/reference/secretsmanager/db";
    poll(&mut held, &[sm], &[], &aws(&[(sm, 7, "s7")]));
    let (plan, _) = poll(&mut held, &[sm], &[], &aws(&[(sm, 7, "s7")]));
    assert!(plan.fetch.is_empty(), "same version id");
    let (plan, settled) = poll(&mut held, &[sm], &[], &aws(&[(sm, 8, "s8")]));
    assert_eq!(plan.fetch, vec![r(sm)]);
    assert_eq!(
        value(&settled.requests[sm]).map(|v| v.0),
        Some("s8".to_owned())
    );
}

#[test]
fn a_rotation_between_the_check_and_the_fetch_is_held_at_the_fetched_version() {
    let mut held = Held::default();
    let reqs = requests_of(&["/a"]);
    poll(&mut held, &["/a"], &[], &aws(&[("/a", 1, "a1")]));
    // The check sees 2; by the fetch it is 3.
    let mut observed = Observed::default();
    observed
        .requests
        .insert("/a".into(), Ok(Some(Version::Param(2))));
    let mut got = Got::default();
    got.requests
        .insert("/a".into(), Ok(Some(fetched("/a", 3, "a3"))));
    settle(&mut held, &reqs, &[], &observed, got);
    // The next poll sees 3: held, nothing fetched.
    let (plan, settled) = poll(&mut held, &["/a"], &[], &aws(&[("/a", 3, "a3")]));
    assert!(plan.fetch.is_empty());
    assert_eq!(value(&settled.requests["/a"]), Some(("a3".to_owned(), 3)));
}

#[test]
fn a_failed_check_fails_the_request_and_keeps_the_held_value_for_the_next_try() {
    let mut held = Held::default();
    let reqs = requests_of(&["/a"]);
    poll(&mut held, &["/a"], &[], &aws(&[("/a", 1, "a1")]));
    let mut observed = Observed::default();
    let down = Cause::Unreachable {
        detail: "down".into(),
    };
    observed.requests.insert("/a".into(), Err(down.clone()));
    assert!(plan(&held, &reqs, &[], &observed).fetch.is_empty());
    let s = settle(&mut held, &reqs, &[], &observed, Got::default());
    assert_eq!(s.requests["/a"].as_ref().unwrap_err(), &down);
    let (plan, _) = poll(&mut held, &["/a"], &[], &aws(&[("/a", 1, "a1")]));
    assert!(plan.fetch.is_empty(), "still held after the outage");
}

#[test]
fn a_new_spec_prunes_what_it_no_longer_asks_for() {
    let mut held = Held::default();
    poll(
        &mut held,
        &["/a", "/b"],
        &[],
        &aws(&[("/a", 1, "a"), ("/b", 1, "b")]),
    );
    assert_eq!(held.len(), 2);
    poll(
        &mut held,
        &["/a"],
        &[],
        &aws(&[("/a", 1, "a"), ("/b", 1, "b")]),
    );
    assert_eq!(held.len(), 1);
}

#[test]
fn a_hub_change_reads_only_the_changed_keys() {
    let mut held = Held::default();
    let p = [path("/p/")];
    let state = aws(&[("/a", 1, "a"), ("/b", 1, "b"), ("/p/x", 1, "x")]);
    poll(&mut held, &["/a", "/b"], &p, &state);
    let reqs = requests_of(&["/a", "/b"]);
    let changed = Changed {
        requests: BTreeSet::from(["/b".to_owned()]),
        paths: BTreeSet::new(),
    };
    let (c, assumed) = changed_only(&held, &reqs, &p, &changed);
    assert_eq!(c, Checks::default(), "nothing to list");
    let plan = plan(&held, &reqs, &p, &assumed);
    assert_eq!(plan.fetch, vec![r("/b")]);
    assert!(plan.paths.is_empty());

    let changed = Changed {
        requests: BTreeSet::new(),
        paths: BTreeSet::from([path_key(&p[0])]),
    };
    let (c, assumed) = changed_only(&held, &reqs, &p, &changed);
    assert_eq!(c.paths, p.to_vec(), "the changed path is listed");
    assert!(c.params.is_empty() && c.secrets.is_empty());
    assert!(plan_is_empty(&held, &reqs, &assumed));
}

fn plan_is_empty(held: &Held, reqs: &[ParamRef], observed: &Observed) -> bool {
    plan(held, reqs, &[], observed) == Plan::default()
}

proptest! {
    /// Whatever happens between two polls, the second poll's answers are exactly those a
    /// full fetch would give, and it fetches exactly the values that changed or are new.
    #[test]
    fn a_delta_poll_answers_like_a_full_fetch(
        before in proptest::collection::btree_map(0usize..8, 1i64..4, 0..8),
        after in proptest::collection::btree_map(0usize..8, 1i64..4, 0..8),
    ) {
        let name = |i: usize| if i < 4 { format!("/n{i}") } else { format!("/p/k{i}") };
        let state = |m: &BTreeMap<usize, i64>| -> BTreeMap<String, (i64, String)> {
            m.iter().map(|(i, v)| (name(*i), (*v, format!("{i}-{v}")))).collect()
        };
        let names = ["/n0", "/n1", "/n2", "/n3"];
        let optional_paths = [PathRequest { optional: true, ..path("/p/") }];
        let mut held = Held::default();
        poll(&mut held, &names, &optional_paths, &state(&before));
        let (plan, settled) = poll(&mut held, &names, &optional_paths, &state(&after));
        for (i, n) in names.iter().enumerate() {
            let want = after.get(&i).map(|v| (format!("{i}-{v}"), *v));
            prop_assert_eq!(value(&settled.requests[*n]), want);
        }
        let under: BTreeMap<String, i64> = settled.paths[0]
            .as_ref()
            .unwrap()
            .iter()
            .map(|f| (f.name.clone(), f.version))
            .collect();
        let want: BTreeMap<String, i64> =
            after.iter().filter(|(i, _)| **i >= 4).map(|(i, v)| (name(*i), *v)).collect();
        prop_assert_eq!(under, want);
        let fetched: BTreeSet<String> = plan.fetch.iter().map(ParamRef::request).collect();
        let changed: BTreeSet<String> = after
            .iter()
            .filter(|(i, v)| before.get(i) != Some(v))
            .map(|(i, _)| name(*i))
            .collect();
        prop_assert_eq!(fetched, changed);
    }
}

#[test]
fn a_references_source_result_gives_the_secrets_facts() {
    let m = secret_meta(
        r#"{"ARN": "arn:aws:secretsmanager:us-east-1:1:secret:app/db-AbCd", "Name": "app/db",
            "CreatedDate": 1575426474.564,
            "VersionIdsToStages": {"v1": ["AWSPREVIOUS"], "v2": ["AWSCURRENT", "blue"]}}"#,
    )
    .unwrap();
    assert_eq!(m.name.as_deref(), Some("app/db"));
    assert_eq!(m.version_id.as_deref(), Some("v2"));
    assert_eq!(m.stages, ["AWSCURRENT", "blue"]);
    assert_eq!(m.created, Some(1575426474.564));
    assert_eq!(secret_meta("not json"), None);
}
