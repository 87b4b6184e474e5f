//! AdmissionReview bodies → `webhook::admission::answer`: any bytes give either a reason for a
//! 400 (non-empty, one line) or a well-formed `admission.k8s.io/v1` AdmissionReview whose
//! response carries a uid and, when it has a patch, a base64 JSONPatch. Never a panic.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use ssm_injector::inject::InjectConfig;
use ssm_injector::webhook::admission::answer;

fuzz_target!(|data: &[u8]| {
    let config = InjectConfig::default();
    match answer(data, &config) {
        Err(reason) => {
            assert!(!reason.is_empty(), "an empty 400 reason");
            assert!(
                !reason.contains('\n'),
                "a 400 reason of several lines: {reason}"
            );
        }
        Ok((body, _outcome)) => {
            let review: Value = serde_json::from_slice(&body).expect("the answer is JSON");
            assert_eq!(review["apiVersion"], "admission.k8s.io/v1", "{review}");
            assert_eq!(review["kind"], "AdmissionReview", "{review}");
            let response = &review["response"];
            assert!(response["uid"].is_string(), "{review}");
            assert!(response["allowed"].is_boolean(), "{review}");
            if let Some(patch) = response.get("patch") {
                let bytes = STANDARD
                    .decode(patch.as_str().expect("the patch is a string"))
                    .expect("the patch is base64");
                let _: json_patch::Patch =
                    serde_json::from_slice(&bytes).expect("the patch is a JSONPatch");
                assert_eq!(response["patchType"], "JSONPatch");
            }
        }
    }
});
