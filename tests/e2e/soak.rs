//! The chaos soak, short version: on a control plane, cimi-sim and operator processes of its own (it restarts
//! them), a fixed seed, every fault class and process event once, a few dozen objects of every kind, and every
//! invariant of `tests/support/soak/` (no leak, no duplicate, no lie, no event mirrored twice, no canary, no
//! panic, convergence within 5 poll intervals of the last fault). The long version is `cargo bench --bench soak`.

use std::time::Duration;

use crate::soak_harness::faults::Class;
use crate::soak_harness::{SoakConfig, lab::Binaries, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_through_every_fault_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = SoakConfig {
        // 13 classes, one or two per episode: about nine episodes of 6-8 s plus their checks and gaps.
        duration: Duration::from_secs(110),
        objects: 40,
        seed: 20261207,
        poll_seconds: 5,
        shards: 2,
        ops_per_second: 2.0,
        window: (6, 8),
        gap_seconds: 3,
        timeout_seconds: 10,
        dir: dir.path().to_path_buf(),
        binaries: Binaries {
            operator: env!("CARGO_BIN_EXE_cimi-operator").into(),
            sim: env!("CARGO_BIN_EXE_cimi-sim").into(),
        },
        progress: true,
    };
    let report = run(config).await;
    eprintln!("{}", report.render());
    let missing: Vec<&str> = Class::ALL.iter().filter(|c| !report.faults.contains_key(c)).map(|c| c.name()).collect();
    assert!(missing.is_empty(), "fault classes never injected: {missing:?}");
    assert!(report.operations.values().sum::<u64>() > 100, "the churn made too few operations");
    if !report.violations.is_empty() {
        // Keep the logs and the state for a reader.
        let kept = dir.keep();
        panic!("{} invariant violations (logs in {}):\n{}", report.violations.len(), kept.display(), report.render());
    }
}

/// The checker itself, on made-up readings: each invariant it guards is seen broken (a soak that reports zero
/// must be able to report more).
#[test]
fn the_checker_sees_a_leak_a_duplicate_a_lie_and_a_canary() {
    use std::collections::{BTreeMap, BTreeSet};

    use crate::soak_harness::check::{Objects, Provider, Resource, canary_forms, provider_violations};
    use crate::soak_harness::churn::Kind;
    use kube::api::DynamicObject;
    use serde_json::json;

    let object = |kind: Kind, name: &str, uid: &str, id: &str, ready: &str| {
        let mut o = DynamicObject::new(name, &kind.api_resource()).within("soak-a");
        o.metadata.uid = Some(uid.into());
        o.data =
            json!({"status": {"id": id, "conditions": [{"type": "Ready", "status": ready, "reason": "Available"}]}});
        ((kind, "soak-a".to_string(), name.to_string()), o)
    };
    let long_ago = chrono::Utc::now() - chrono::Duration::minutes(10);
    let resource = |collection: &'static str, href: &str, uid: Option<&str>, created| {
        let r = Resource {
            collection,
            href: href.into(),
            uid: uid.map(str::to_string),
            state: Some("STARTED".into()),
            description: None,
            created: Some(created),
        };
        (href.to_string(), r)
    };
    let objects: Objects = [
        object(Kind::Machine, "vm", "u-vm", "h/vm", "True"),
        object(Kind::Machine, "liar", "u-liar", "h/gone", "True"),
        object(Kind::Machine, "honest", "u-honest", "h/gone-too", "False"),
        object(Kind::System, "sys", "u-sys", "h/sys", "True"),
    ]
    .into_iter()
    .collect();
    let now = chrono::Utc::now();
    let provider = Provider {
        resources: [
            resource("machines", "h/vm", Some("u-vm"), long_ago),
            resource("machines", "h/vm-again", Some("u-vm"), long_ago),
            resource("machines", "h/orphan", Some("u-deleted"), long_ago),
            resource("machines", "h/untagged-old", None, long_ago),
            resource("machines", "h/untagged-new", None, now),
            resource("systems", "h/sys", Some("u-sys"), long_ago),
            resource("machines", "h/member", None, long_ago),
        ]
        .into_iter()
        .collect(),
        members: BTreeMap::from([("h/sys".to_string(), vec!["h/member".to_string()])]),
    };
    let violations = provider_violations(&objects, &provider, &[], &BTreeSet::new(), now, false);
    let leaked: BTreeSet<&str> = violations.iter().filter_map(|v| v.leaked.as_deref()).collect();
    assert_eq!(leaked, BTreeSet::from(["h/orphan", "h/untagged-old"]), "a leak names its resource: {violations:#?}");
    let found: Vec<String> = violations.into_iter().map(|v| v.message).collect();
    let has = |what: &str, href: &str| found.iter().any(|v| v.starts_with(what) && v.contains(href));
    assert!(has("duplicate", "h/vm-again"), "{found:#?}");
    assert!(has("leak", "h/orphan"), "{found:#?}");
    assert!(has("leak", "h/untagged-old"), "{found:#?}");
    assert!(has("lie", "h/gone"), "{found:#?}");
    assert!(!has("lie", "h/gone-too"), "an object that is not Ready says so: {found:#?}");
    assert!(!found.iter().any(|v| v.contains("h/member")), "a system's member belongs to it: {found:#?}");
    assert!(!found.iter().any(|v| v.contains("h/untagged-new")), "a capture just made is not a leak yet");
    assert_eq!(found.len(), 4, "{found:#?}");
    let strict: Vec<String> = provider_violations(&objects, &provider, &[], &BTreeSet::new(), now, true)
        .into_iter()
        .map(|v| v.message)
        .collect();
    assert!(strict.iter().any(|v| v.contains("h/untagged-new")), "at the end every resource must belong: {strict:#?}");

    let forms = canary_forms("s3cret", "soak");
    assert!(forms.contains(&"s3cret".to_string()) && forms.contains(&"czNjcmV0".to_string()));
    assert!(forms.contains(&"c29hazpzM2NyZXQ=".to_string()), "the Basic credential form: {forms:?}");
}
