//! Pure batching: which names go into which GetParameters call, which returned
//! parameter answers which request, and what to ask next when AWS refuses a call
//! ([`BatchRead`]).

use super::error::Cause;
use crate::spec::names::{ParamRef, SECRETS_MANAGER_PREFIX, parse_param_ref};
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;

/// AWS's limit of names per GetParameters call.
pub const MAX_NAMES_PER_CALL: usize = 10;

/// One GetParameters call: the requests (name or ARN, with selector, without `#field`),
/// all for one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// `None`: the default region. `Some`: the region an ARN names.
    pub region: Option<String>,
    pub requests: Vec<ParamRef>,
}

/// The name a request is matched by. Services answer with the plain name (no selector,
/// sometimes no ARN, and moto drops the Secrets Manager prefix), so two requests with
/// the same match key must never share a call.
pub fn match_key(name: &str) -> &str {
    name.strip_prefix(SECRETS_MANAGER_PREFIX).unwrap_or(name)
}

/// The distinct requests of `refs` (`#field`s of one request are one request, the field
/// dropped), in first-come order.
pub fn distinct_requests<'a>(refs: impl IntoIterator<Item = &'a ParamRef>) -> Vec<ParamRef> {
    let mut unique: Vec<ParamRef> = Vec::new();
    for r in refs {
        let req = ParamRef {
            field: None,
            ..r.clone()
        };
        if !unique.contains(&req) {
            unique.push(req);
        }
    }
    unique
}

/// Removes duplicates (the same request with different `#field`s is one request) and
/// packs the rest into calls of at most 10, grouped by region, such that no call holds
/// two requests with the same match key. Order is stable: first come, first packed.
pub fn plan<'a>(refs: impl IntoIterator<Item = &'a ParamRef>) -> Vec<Batch> {
    let unique = distinct_requests(refs);
    let mut by_region: BTreeMap<Option<String>, Vec<Batch>> = BTreeMap::new();
    for req in unique {
        let region = req.region().map(str::to_owned);
        let batches = by_region.entry(region.clone()).or_default();
        let key = match_key(&req.name).to_owned();
        let slot = batches.iter_mut().find(|b| {
            b.requests.len() < MAX_NAMES_PER_CALL
                && !b.requests.iter().any(|o| match_key(&o.name) == key)
        });
        match slot {
            Some(b) => b.requests.push(req),
            None => batches.push(Batch {
                region,
                requests: vec![req],
            }),
        }
    }
    by_region.into_values().flatten().collect()
}

/// What a service said about one returned parameter, enough to match it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Returned<'a> {
    pub name: &'a str,
    pub arn: Option<&'a str>,
}

/// For each request of a batch, the index of the returned parameter that answers it.
/// `invalid` lists what the service reported as InvalidParameters (as sent); those and
/// requests nothing answers get `None`.
pub fn match_results(
    requests: &[ParamRef],
    returned: &[Returned<'_>],
    invalid: &[String],
) -> Vec<Option<usize>> {
    let returned_keys: Vec<Option<String>> = returned
        .iter()
        .map(|r| {
            let name = if r.name.starts_with("arn:") {
                parse_param_ref(r.name).ok().map(|p| p.name)
            } else {
                Some(r.name.to_owned())
            };
            name.or_else(|| r.arn.and_then(|a| parse_param_ref(a).ok()).map(|p| p.name))
                .map(|n| match_key(&n).to_owned())
        })
        .collect();
    requests
        .iter()
        .map(|req| {
            if invalid.iter().any(|i| *i == req.request()) {
                return None;
            }
            let key = match_key(&req.name);
            returned_keys.iter().position(|k| k.as_deref() == Some(key))
        })
        .collect()
}

/// One request's answer: found, not there (`Ok(None)`: no such parameter, version or
/// label), or failed with a cause.
pub type Answer<T> = Result<Option<T>, Cause>;

/// A call a batch still needs; indices are into the batch's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// GetParameters for these requests (the whole batch first, one name alone after AWS
    /// refused the whole call).
    GetParameters(Range<usize>),
    /// GetParameter for one request: an ARN that GetParameters did not resolve (some
    /// implementations only accept ARNs there).
    GetParameter(usize),
}

/// The reads of one batch, decided from the answers given so far: the I/O code asks
/// [`BatchRead::next_ask`] what to call, hands the answer back and, when nothing is left to
/// ask, takes each request's answer from [`BatchRead::finish`].
///
/// - The whole batch is asked with one GetParameters.
/// - When AWS refuses it for a reason that is not transient (access denied, KMS, a missing
///   Secrets Manager secret), each name is asked alone, so the error names the right one.
///   A transient refusal (throttling, 5xx, network) is every request's answer.
/// - `NotFound` for a call of one name means that name is not there.
/// - An ARN left without a parameter is asked again with GetParameter.
///
/// Calls come in this order: the batch, then the names alone (in request order), then the
/// GetParameter confirmations (in request order); at most `1 + 2n` for `n` requests.
#[derive(Debug, Clone)]
pub struct BatchRead<T> {
    /// Per request: an ARN (may need GetParameter).
    arns: Vec<bool>,
    answers: Vec<Option<Answer<T>>>,
    asks: VecDeque<Ask>,
}

impl<T: Clone> BatchRead<T> {
    /// The reads of `requests` (one batch); the first ask is the whole batch.
    pub fn new(requests: &[ParamRef]) -> BatchRead<T> {
        let n = requests.len();
        BatchRead {
            arns: requests.iter().map(|r| r.arn.is_some()).collect(),
            answers: vec![None; n],
            asks: if n == 0 {
                VecDeque::new()
            } else {
                VecDeque::from([Ask::GetParameters(0..n)])
            },
        }
    }

    /// The next call to make; `None` when every request is answered.
    pub fn next_ask(&mut self) -> Option<Ask> {
        self.asks.pop_front()
    }

    /// The answer to [`Ask::GetParameters`] for `asked`: one answer per request, in order
    /// (a missing one counts as not there), or the call's error.
    pub fn got_parameters(&mut self, asked: Range<usize>, answer: Result<Vec<Option<T>>, Cause>) {
        match answer {
            Ok(found) => {
                let mut found = found.into_iter();
                for i in asked {
                    self.settle(i, Ok(found.next().flatten()));
                }
            }
            Err(Cause::NotFound) if asked.len() == 1 => self.settle(asked.start, Ok(None)),
            Err(cause) if !cause.is_transient() && asked.len() > 1 => {
                self.asks
                    .extend(asked.map(|i| Ask::GetParameters(i..i + 1)));
            }
            Err(cause) => {
                for i in asked {
                    self.settle(i, Err(cause.clone()));
                }
            }
        }
    }

    /// The answer to [`Ask::GetParameter`] for request `index`; `NotFound` means not there.
    pub fn got_parameter(&mut self, index: usize, answer: Answer<T>) {
        let answer = match answer {
            Err(Cause::NotFound) => Ok(None),
            other => other,
        };
        if let Some(slot) = self.answers.get_mut(index) {
            *slot = Some(answer);
        }
    }

    /// Each request's answer, in request order. A request never answered (the asks were not
    /// all made) counts as not there.
    pub fn finish(self) -> Vec<Answer<T>> {
        self.answers
            .into_iter()
            .map(|a| a.unwrap_or(Ok(None)))
            .collect()
    }

    /// Records a GetParameters answer for request `i`; an ARN without a parameter is asked
    /// again with GetParameter.
    fn settle(&mut self, i: usize, answer: Answer<T>) {
        if matches!(answer, Ok(None)) && self.arns.get(i) == Some(&true) {
            self.asks.push_back(Ask::GetParameter(i));
        }
        if let Some(slot) = self.answers.get_mut(i) {
            *slot = Some(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(s: &str) -> ParamRef {
        parse_param_ref(s).unwrap()
    }

    #[test]
    fn names_are_deduplicated_and_packed_ten_per_call() {
        let mut refs: Vec<ParamRef> = (0..25).map(|i| r(&format!("/app/p{i}"))).collect();
        refs.push(r("/app/p3"));
        refs.push(r("/app/p4#field"));
        let batches = plan(&refs);
        assert_eq!(
            batches.iter().map(|b| b.requests.len()).collect::<Vec<_>>(),
            vec![10, 10, 5]
        );
    }

    #[test]
    fn selectors_of_one_name_go_to_different_calls() {
        let refs = [r("/a"), r("/a:1"), r("/a:stable"), r("/b")];
        let batches = plan(&refs);
        assert_eq!(batches.len(), 3);
        for b in &batches {
            let mut keys: Vec<_> = b.requests.iter().map(|q| q.name.clone()).collect();
            keys.dedup();
            assert_eq!(keys.len(), b.requests.len());
        }
    }

    #[test]
    fn arns_in_other_regions_get_their_own_calls() {
        let refs = [
            r("/a"),
            r("arn:aws:ssm:eu-west-1:123456789012:parameter/shared/x"),
        ];
        let batches = plan(&refs);
        assert_eq!(batches.len(), 2);
        assert!(
            batches
                .iter()
                .any(|b| b.region.as_deref() == Some("eu-west-1"))
        );
    }

    #[test]
    fn results_map_back_even_without_selector_or_prefix() {
        let reqs = vec![
            r("/a:2"),
            r("/aws/reference/secretsmanager/s1"),
            r("arn:aws:ssm:us-east-1:123456789012:parameter/shared/x"),
            r("/missing"),
        ];
        let returned = [
            Returned {
                name: "s1",
                arn: None,
            },
            Returned {
                name: "/a",
                arn: None,
            },
            Returned {
                name: "arn:aws:ssm:us-east-1:123456789012:parameter/shared/x",
                arn: None,
            },
        ];
        let m = match_results(&reqs, &returned, &["/missing".to_string()]);
        assert_eq!(m, vec![Some(1), Some(0), Some(2), None]);
    }

    fn arn(name: &str) -> ParamRef {
        r(&format!(
            "arn:aws:ssm:us-east-1:123456789012:parameter{name}"
        ))
    }

    fn denied() -> Cause {
        Cause::AccessDenied {
            code: "AccessDeniedException".into(),
            message: "not allowed".into(),
        }
    }

    fn throttled() -> Cause {
        Cause::Throttled {
            code: "ThrottlingException".into(),
            attempts: 3,
        }
    }

    /// What AWS answers one call with, given as data.
    #[derive(Debug, Clone)]
    enum Reply {
        Many(Result<Vec<Option<u32>>, Cause>),
        One(Answer<u32>),
    }

    /// Runs the reads of `requests` with `replies` given in call order; returns the calls
    /// asked for and the answers.
    fn run(requests: &[ParamRef], replies: Vec<Reply>) -> (Vec<Ask>, Vec<Answer<u32>>) {
        let mut read = BatchRead::new(requests);
        let mut replies = replies.into_iter();
        let mut asked = Vec::new();
        while let Some(ask) = read.next_ask() {
            asked.push(ask.clone());
            match (ask, replies.next()) {
                (Ask::GetParameters(range), Some(Reply::Many(a))) => read.got_parameters(range, a),
                (Ask::GetParameter(i), Some(Reply::One(a))) => read.got_parameter(i, a),
                (ask, reply) => panic!("{ask:?} asked, the script has {reply:?}; asked: {asked:?}"),
            }
        }
        assert_eq!(replies.next().map(|_| ()), None, "a reply was left over");
        (asked, read.finish())
    }

    #[test]
    fn the_calls_and_answers_of_a_batch_follow_what_aws_answers() {
        use Ask::{GetParameter as One, GetParameters as Many};
        use Reply::{Many as M, One as O};
        /// Name, requests, AWS's replies in call order, the calls, the answers.
        type Case = (
            &'static str,
            Vec<ParamRef>,
            Vec<Reply>,
            Vec<Ask>,
            Vec<Answer<u32>>,
        );
        let cases: Vec<Case> = vec![
            (
                "one call answers a batch AWS accepts",
                vec![r("/a"), r("/b")],
                vec![M(Ok(vec![Some(1), None]))],
                vec![Many(0..2)],
                vec![Ok(Some(1)), Ok(None)],
            ),
            (
                "a refused batch is asked name by name, so the error names the right one",
                vec![r("/a"), r("/b"), r("/c")],
                vec![
                    M(Err(denied())),
                    M(Ok(vec![Some(1)])),
                    M(Err(denied())),
                    M(Err(Cause::NotFound)),
                ],
                vec![Many(0..3), Many(0..1), Many(1..2), Many(2..3)],
                vec![Ok(Some(1)), Err(denied()), Ok(None)],
            ),
            (
                "a batch refused as not found is also asked name by name",
                vec![r("/a"), r("/b")],
                vec![
                    M(Err(Cause::NotFound)),
                    M(Err(Cause::NotFound)),
                    M(Ok(vec![Some(2)])),
                ],
                vec![Many(0..2), Many(0..1), Many(1..2)],
                vec![Ok(None), Ok(Some(2))],
            ),
            (
                "a transient refusal is every request's answer, without more calls",
                vec![r("/a"), r("/b")],
                vec![M(Err(throttled()))],
                vec![Many(0..2)],
                vec![Err(throttled()), Err(throttled())],
            ),
            (
                "the refusal of one name is its answer",
                vec![r("/a")],
                vec![M(Err(denied()))],
                vec![Many(0..1)],
                vec![Err(denied())],
            ),
            (
                "not found for one name means it is not there",
                vec![r("/a")],
                vec![M(Err(Cause::NotFound))],
                vec![Many(0..1)],
                vec![Ok(None)],
            ),
            (
                "an ARN left without a parameter is asked again with GetParameter",
                vec![arn("/x"), r("/b"), arn("/y")],
                vec![
                    M(Ok(vec![None, None, None])),
                    O(Ok(Some(3))),
                    O(Err(Cause::NotFound)),
                ],
                vec![Many(0..3), One(0), One(2)],
                vec![Ok(Some(3)), Ok(None), Ok(None)],
            ),
            (
                "ARNs are confirmed after every name was asked alone",
                vec![arn("/x"), r("/b"), arn("/y")],
                vec![
                    M(Err(denied())),
                    M(Ok(vec![None])),
                    M(Ok(vec![Some(2)])),
                    M(Err(Cause::NotFound)),
                    O(Err(denied())),
                    O(Ok(Some(4))),
                ],
                vec![
                    Many(0..3),
                    Many(0..1),
                    Many(1..2),
                    Many(2..3),
                    One(0),
                    One(2),
                ],
                vec![Err(denied()), Ok(Some(2)), Ok(Some(4))],
            ),
            (
                "an empty batch asks nothing",
                vec![],
                vec![],
                vec![],
                vec![],
            ),
        ];
        for (name, requests, replies, want_asked, want_answers) in cases {
            let (asked, answers) = run(&requests, replies);
            assert_eq!(asked, want_asked, "{name}");
            assert_eq!(answers, want_answers, "{name}");
        }
    }

    /// The reads as they were written before [`BatchRead`] (nested calls): the model the
    /// state machine must agree with. `alone[i]` and `one[i]` answer request `i` asked
    /// alone with GetParameters and with GetParameter; returns the answers and the calls.
    fn nested_reads(
        arns: &[bool],
        batch: &Result<Vec<Option<u32>>, Cause>,
        alone: &[Answer<u32>],
        one: &[Answer<u32>],
    ) -> (Vec<Answer<u32>>, usize) {
        let n = arns.len();
        let mut calls = 1;
        let answers: Vec<Answer<u32>> = match batch {
            Ok(found) => found.iter().cloned().map(Ok).collect(),
            Err(Cause::NotFound) if n == 1 => vec![Ok(None)],
            Err(cause) if !cause.is_transient() && n > 1 => alone
                .iter()
                .map(|a| {
                    calls += 1;
                    match a {
                        Err(Cause::NotFound) => Ok(None),
                        other => other.clone(),
                    }
                })
                .collect(),
            Err(cause) => vec![Err(cause.clone()); n],
        };
        let answers = answers
            .into_iter()
            .enumerate()
            .map(|(i, a)| match a {
                Ok(None) if arns[i] => {
                    calls += 1;
                    match &one[i] {
                        Err(Cause::NotFound) => Ok(None),
                        other => other.clone(),
                    }
                }
                other => other,
            })
            .collect();
        (answers, calls)
    }

    fn any_cause() -> impl Strategy<Value = Cause> {
        prop_oneof![
            Just(Cause::NotFound),
            Just(denied()),
            Just(throttled()),
            Just(Cause::Unreachable {
                detail: "connection refused".into()
            }),
            Just(Cause::Kms {
                code: "KMS.DisabledException".into(),
                message: "disabled".into()
            }),
        ]
    }

    fn any_answer() -> impl Strategy<Value = Answer<u32>> {
        prop_oneof![
            proptest::option::of(0u32..5).prop_map(Ok),
            any_cause().prop_map(Err),
        ]
    }

    proptest! {
        #[test]
        fn the_reads_agree_with_the_nested_calls_for_any_answers(
            (arns, batch, alone, one) in (1usize..=10).prop_flat_map(|n| (
                prop::collection::vec(any::<bool>(), n),
                prop_oneof![
                    prop::collection::vec(proptest::option::of(0u32..5), n).prop_map(Ok),
                    any_cause().prop_map(Err),
                ],
                prop::collection::vec(any_answer(), n),
                prop::collection::vec(any_answer(), n),
            ))
        ) {
            let requests: Vec<ParamRef> = arns
                .iter()
                .enumerate()
                .map(|(i, a)| if *a { arn(&format!("/p{i}")) } else { r(&format!("/p{i}")) })
                .collect();
            let mut read = BatchRead::new(&requests);
            let mut asked = 0;
            while let Some(ask) = read.next_ask() {
                asked += 1;
                match ask {
                    Ask::GetParameters(range) if range.len() == arns.len() => {
                        read.got_parameters(range, batch.clone());
                    }
                    Ask::GetParameters(range) => {
                        prop_assert_eq!(range.len(), 1, "names are asked alone");
                        let i = range.start;
                        read.got_parameters(range, alone[i].clone().map(|v| vec![v]));
                    }
                    Ask::GetParameter(i) => {
                        prop_assert!(arns[i], "only ARNs are asked with GetParameter");
                        read.got_parameter(i, one[i].clone());
                    }
                }
            }
            let (want, calls) = nested_reads(&arns, &batch, &alone, &one);
            prop_assert_eq!(read.finish(), want);
            prop_assert_eq!(asked, calls);
            prop_assert!(asked <= 1 + 2 * arns.len());
        }
    }

    proptest! {
        #[test]
        fn every_request_lands_in_exactly_one_call_of_at_most_ten(
            names in prop::collection::vec(("[a-e]{1,2}", proptest::option::of(1u64..4)), 0..60)
        ) {
            let refs: Vec<ParamRef> = names
                .iter()
                .map(|(n, v)| r(&match v { Some(v) => format!("/{n}:{v}"), None => format!("/{n}") }))
                .collect();
            let batches = plan(&refs);
            let mut seen = Vec::new();
            for b in &batches {
                prop_assert!(b.requests.len() <= MAX_NAMES_PER_CALL && !b.requests.is_empty());
                for (i, q) in b.requests.iter().enumerate() {
                    prop_assert!(!b.requests[..i].iter().any(|o| o.name == q.name));
                    prop_assert!(!seen.contains(q));
                    seen.push(q.clone());
                }
            }
            for q in &refs {
                prop_assert!(seen.contains(q));
            }
        }
    }
}
