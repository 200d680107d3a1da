//! Resilience: crash safety (the provider commits a create and drops the connection before answering,
//! and the operator that sent it is stopped; a fresh operator finds the machine by its UID tag and never
//! creates a second one), and a provider without Jobs (the no-jobs profile).

use std::time::Duration;

use cimi_operator::api::common::{CatalogRef, ProviderRef};
use cimi_operator::api::machine::MachineTemplateSpec;
use cimi_operator::api::{CimiMachine, CimiMachineSpec, PowerState};
use cimi_operator::sim::{FaultKind, FaultRule, Sim, SimConfig};
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::harness::{TestNamespace, TestOperator, client, condition, eventually};
use crate::machine::{provider_list, ready_provider, sim_client};

const T: Duration = Duration::from_secs(60);

#[tokio::test]
async fn commit_then_drop_and_a_new_operator_make_exactly_one_machine() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "crash").await;
    let first = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &first, &ns.name, &sim).await;

    // The create of crash-1 is committed, then the connection drops before any answer.
    sim.set_faults(vec![FaultRule {
        method: Some("POST".into()),
        resource_type: None,
        action: None,
        name: Some("crash-1".into()),
        rate: None,
        times: Some(1),
        kind: FaultKind::CommitThenDrop,
        ..serde_json::from_value(json!({"kind": "commitThenDrop"})).expect("a rule")
    }]);
    let mut m = CimiMachine::new(
        "crash-1",
        CimiMachineSpec {
            provider_ref: ProviderRef { name: provider.clone() },
            name: None,
            description: None,
            properties: None,
            template_ref: None,
            template: Some(MachineTemplateSpec {
                machine_config: Some(CatalogRef::by_name("tiny")),
                machine_image: CatalogRef::by_name("Linux SUSE"),
                ..Default::default()
            }),
            power_state: PowerState::Started,
            volumes: Vec::new(),
            network_interfaces: Vec::new(),
            deletion_policy: Default::default(),
            management_policy: Default::default(),
            import: None,
            timeouts: None,
        },
    );
    m.metadata.labels = Some(first.labels());
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    machines.create(&PostParams::default(), &m).await.expect("create");

    // The provider has the machine; the operator that asked for it goes away.
    eventually("the committed machine on the provider", T, || async {
        (!provider_list(&cimi, "machines").await.is_empty()).then_some(())
    })
    .await;
    assert!(sim.faults().iter().all(|r| r.times == Some(0)), "the fault fired");
    let label = first.label.1.clone();
    drop(first);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A fresh operator adopts it by its UID tag.
    let _second = TestOperator::start_with_label(&ns.name, &label).await;
    let m = eventually("crash-1 Ready", T, || async {
        let m = machines.get("crash-1").await.ok()?;
        let st = m.status.as_ref()?;
        (condition(&st.common.conditions, "Ready").is_some_and(|c| c.0 == "True")).then_some(m)
    })
    .await;
    let on_provider = provider_list(&cimi, "machines").await;
    assert_eq!(on_provider.len(), 1, "exactly one machine: {on_provider:?}");
    assert_eq!(on_provider[0]["properties"]["cimi.dev/uid"], json!(m.metadata.uid.clone().expect("uid")));
    let id = on_provider[0]["id"].as_str().expect("id").to_string();
    assert_eq!(m.status.and_then(|s| s.common.id), Some(id));
}

/// The no-jobs profile: no Jobs at all; the operator converges from the resource states alone.
#[tokio::test]
async fn no_jobs_profile_create_stop_delete() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "nojobs").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig { profile: cimi_operator::sim::Profile::NoJobs, ..SimConfig::default() })
        .await
        .expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let mut m = CimiMachine::new(
        "nj-1",
        CimiMachineSpec {
            provider_ref: ProviderRef { name: provider.clone() },
            name: None,
            description: None,
            properties: None,
            template_ref: None,
            template: Some(MachineTemplateSpec {
                machine_config: Some(CatalogRef::by_name("tiny")),
                machine_image: CatalogRef::by_name("Linux SUSE"),
                ..Default::default()
            }),
            power_state: PowerState::Started,
            volumes: Vec::new(),
            network_interfaces: Vec::new(),
            deletion_policy: Default::default(),
            management_policy: Default::default(),
            import: None,
            timeouts: None,
        },
    );
    m.metadata.labels = Some(op.labels());
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    machines.create(&PostParams::default(), &m).await.expect("create");
    let ready_in = |state: &'static str| {
        let machines = machines.clone();
        async move {
            eventually(&format!("nj-1 {state} and Ready"), T, || async {
                let m = machines.get("nj-1").await.ok()?;
                let st = m.status.as_ref()?;
                (st.common.state.as_deref() == Some(state)
                    && condition(&st.common.conditions, "Ready").is_some_and(|c| c.0 == "True"))
                .then_some(())
            })
            .await
        }
    };
    ready_in("STARTED").await;
    machines
        .patch(
            "nj-1",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"powerState": "Stopped"}})),
        )
        .await
        .expect("stop");
    ready_in("STOPPED").await;
    assert_eq!(provider_list(&cimi, "machines").await.len(), 1);
    machines.delete("nj-1", &Default::default()).await.expect("delete");
    eventually("nj-1 gone", T, || async { machines.get_opt("nj-1").await.ok()?.is_none().then_some(()) }).await;
    assert!(provider_list(&cimi, "machines").await.is_empty());
}
