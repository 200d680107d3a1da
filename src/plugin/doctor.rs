//! `kubectl cimi doctor PROVIDER|URL`: probes a CIMI endpoint as the operator would use it and prints a
//! compatibility report: what works, what the operator will do differently, what will not work, and what
//! could not be probed without changing anything on the provider.
//!
//! The doctor only reads, and speaks CIMI only: the CloudEntryPoint and the hrefs it gives, with query
//! parameters (never a simulator's own API). Every request goes through [`CimiClient`] (its transport gives
//! the raw answers the deviation checks need), so the client's origin pinning and read bounds apply.
//! Credentials come from a CimiProvider's Secret, from `--credentials-file`, or from the environment
//! (`CIMI_USERNAME` and `CIMI_PASSWORD`, or `CIMI_TOKEN`), never from the command line.
//!
//! Each finding has a stable id (the e2e tests and scripts match on them): the entry point and
//! authentication (`entry-point`, `authentication`), formats (`format-json`, `format-xml`), collections
//! (`machines`, `machine-templates`, `volumes`, `networks`, `systems`, `credentials`, `jobs`, `meters`,
//! `event-logs`, `resource-metadata`), queries (`filter`, `property-filter`, `select`, `orderby`) and one per
//! deviation of the CIMI reference's section 7 (`dev-...`; its "no Jobs at all" is the `jobs` finding).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use url::Url;

use super::cli::DoctorArgs;
use super::error::PluginError;
use super::kubeconn::Kube;
use super::output::{Cell, Printer, Style, Table};
use crate::cimi::error::redact_url;
use crate::cimi::model::action_uri;
use crate::cimi::query::Query;
use crate::cimi::transport::{Request, Response};
use crate::cimi::{Auth, CimiClient, CimiError, ClientConfig, Discovery, Format};
use crate::controller::resource::reads::entries;

/// What a finding means for the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// Works as the operator expects.
    Ok,
    /// Works, but the operator does it differently.
    Adapted,
    /// A feature that will not work with this endpoint.
    Unsupported,
    /// The operator cannot use the endpoint at all.
    Fatal,
    /// Could not be seen without changing something on the provider.
    NotProbed,
}

/// One finding of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// A stable id, such as `jobs` or `dev-paging-ignored`.
    pub id: String,
    /// What it means.
    pub verdict: Verdict,
    /// What was seen.
    pub detail: String,
    /// What the operator does about it, or what will not work.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub operator: String,
}

impl Finding {
    fn new(id: &str, verdict: Verdict, detail: impl Into<String>, operator: impl Into<String>) -> Self {
        Finding { id: id.to_string(), verdict, detail: detail.into(), operator: operator.into() }
    }
}

/// The whole report.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The CloudEntryPoint URL (without user info).
    pub endpoint: String,
    /// The CimiProvider, when probed through one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Every finding, in probing order.
    pub findings: Vec<Finding>,
    /// True when no finding is fatal.
    pub usable: bool,
}

impl Report {
    /// The finding with this id.
    pub fn finding(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.id == id)
    }

    fn push(&mut self, f: Finding) {
        self.findings.push(f);
    }

    fn count(&self, verdict: Verdict) -> usize {
        self.findings.iter().filter(|f| f.verdict == verdict).count()
    }
}

/// Whether the doctor's argument is a URL rather than a CimiProvider name.
pub fn is_url(target: &str) -> bool {
    target.starts_with("http://") || target.starts_with("https://")
}

/// Credentials from a YAML or JSON file (`username`/`password` or `token`).
pub fn auth_from_file(path: &Path) -> Result<Auth, PluginError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| PluginError::Usage(format!("cannot read the credentials file {}: {e}", path.display())))?;
    let map: BTreeMap<String, String> = serde_yaml::from_str(&text)
        .map_err(|e| PluginError::Usage(format!("{} is not a YAML or JSON map of strings: {e}", path.display())))?;
    let data = map.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    super::connect::auth_from_data(&data, &path.display().to_string()).map_err(|e| PluginError::Usage(e.to_string()))
}

/// Credentials from the environment: `CIMI_USERNAME` and `CIMI_PASSWORD`, or `CIMI_TOKEN`; none otherwise.
pub fn auth_from_env(var: impl Fn(&str) -> Option<String>) -> Auth {
    match (var("CIMI_USERNAME"), var("CIMI_PASSWORD"), var("CIMI_TOKEN")) {
        (Some(username), Some(password), _) => Auth::Basic { username, password: crate::cimi::Secret::new(password) },
        (_, _, Some(token)) => Auth::Bearer(crate::cimi::Secret::new(token)),
        _ => Auth::None,
    }
}

/// A probing copy of a client configuration: short timeouts, one retry, the given format and credentials.
fn probe_config(base: &ClientConfig, format: Format, auth: Auth) -> ClientConfig {
    let mut c = base.clone();
    c.transport.format = format;
    c.transport.auth = auth;
    c.transport.retry.max_attempts = 2;
    c.transport.request_timeout = Duration::from_secs(15);
    c.transport.connect_timeout = Duration::from_secs(5);
    c
}

fn client(config: ClientConfig) -> Result<CimiClient, PluginError> {
    CimiClient::new(config).map_err(|e| PluginError::Usage(format!("client configuration: {e}")))
}

/// GET through the client's transport: the raw (not normalised) answer.
async fn raw(client: &CimiClient, url: &Url) -> Result<Response, CimiError> {
    client.transport().execute(&Request::get(url.clone(), "doctor")).await
}

/// The fatal finding of a failed first contact.
fn first_contact_failure(error: &CimiError) -> Finding {
    match error {
        CimiError::Unauthorized { status, .. } => Finding::new(
            "authentication",
            Verdict::Fatal,
            format!("the CloudEntryPoint refused the credentials ({status})"),
            "every reconcile fails with the provider not Ready (Unauthorized); fix the credentials",
        ),
        CimiError::UntrustedHref { .. } => Finding::new(
            "transport",
            Verdict::Fatal,
            format!("refused before sending: {error}"),
            "the operator refuses it too; use https, or allow plain http (spec.allowPlainHttp, --allow-plain-http)",
        ),
        CimiError::Unavailable { .. } | CimiError::Timeout { .. } | CimiError::RateLimited { .. } => Finding::new(
            "entry-point",
            Verdict::Fatal,
            format!("unreachable: {error}"),
            "the provider stays not Ready (Unreachable)",
        ),
        other => Finding::new(
            "entry-point",
            Verdict::Fatal,
            format!("not a usable CIMI CloudEntryPoint: {other}"),
            "the provider stays not Ready (NotCIMI)",
        ),
    }
}

/// Probes the endpoint of `base` (its format is the one the operator would speak).
pub async fn probe(base: &ClientConfig) -> Result<Report, PluginError> {
    let mut report = Report { endpoint: redact_url(&base.endpoint), ..Default::default() };
    let configured = base.transport.format;
    let main = client(probe_config(base, configured, base.transport.auth.clone()))?;
    let discovery = match main.discover().await {
        Ok(d) => d,
        Err(e) => {
            report.push(first_contact_failure(&e));
            report.usable = false;
            return Ok(report);
        }
    };
    entry_point(&mut report, &main, &discovery).await;
    authentication(&mut report, base, &main, &discovery).await?;
    formats(&mut report, base, configured).await?;
    collections(&mut report, &discovery);
    queries_and_deviations(&mut report, base, &discovery).await?;
    report.usable = report.count(Verdict::Fatal) == 0;
    Ok(report)
}

async fn entry_point(report: &mut Report, main: &CimiClient, discovery: &Discovery) {
    let version = match discovery.cep.resource_uri.as_deref() {
        Some(u) if u.contains("/cimi/2") => "2.0",
        _ => "1.x",
    };
    report.push(Finding::new(
        "entry-point",
        Verdict::Ok,
        format!(
            "a CIMI {version} CloudEntryPoint, baseURI {}, {} collections",
            discovery.base,
            discovery.collections.len()
        ),
        "",
    ));
    // The raw CloudEntryPoint: the specification version header and its dates.
    match raw(main, &main.config().endpoint).await {
        Ok(resp) => {
            let header = resp.headers.get("CIMI-Specification-Version").and_then(|v| v.to_str().ok());
            report.push(match header {
                Some(v) => Finding::new(
                    "dev-spec-version-header",
                    Verdict::Adapted,
                    format!("CIMI-Specification-Version: {v} on responses"),
                    "ignored; the operator reads the CloudEntryPoint instead",
                ),
                None => {
                    Finding::new("dev-spec-version-header", Verdict::Ok, "no CIMI-Specification-Version header", "")
                }
            });
        }
        Err(e) => report.push(Finding::new(
            "dev-spec-version-header",
            Verdict::NotProbed,
            format!("the CloudEntryPoint could not be read again: {e}"),
            "",
        )),
    }
}

async fn authentication(
    report: &mut Report,
    base: &ClientConfig,
    main: &CimiClient,
    discovery: &Discovery,
) -> Result<(), PluginError> {
    let anonymous = client(probe_config(base, base.transport.format, Auth::None))?;
    let has_credentials = base.transport.auth != Auth::None;
    let cep_public = anonymous.discover().await.is_ok();
    report.push(if cep_public && has_credentials {
        Finding::new(
            "dev-cep-without-credentials",
            Verdict::Adapted,
            "the CloudEntryPoint answers without credentials",
            "the operator sends its credentials to every request anyway",
        )
    } else {
        Finding::new("dev-cep-without-credentials", Verdict::Ok, "the CloudEntryPoint needs credentials", "")
    });
    let Some(machines) = discovery.collections.get("machines").cloned() else {
        report.push(Finding::new("authentication", Verdict::NotProbed, "no machines collection to read", ""));
        return Ok(());
    };
    let page = Query::new().first(1).last(1);
    let with = main.list_page_value(&machines, &page, "Machine").await;
    let without = anonymous.list_page_value(&machines, &page, "Machine").await;
    report.push(match (has_credentials, with, without) {
        (_, Err(CimiError::Unauthorized { status, .. }), _) => Finding::new(
            "authentication",
            Verdict::Fatal,
            format!("the machines collection refused the credentials ({status})"),
            "every reconcile fails (provider not Ready, Unauthorized); fix the credentials",
        ),
        (_, Err(e), _) => Finding::new(
            "authentication",
            Verdict::Fatal,
            format!("the machines collection cannot be read: {e}"),
            "machines cannot be observed",
        ),
        (true, Ok(_), Err(CimiError::Unauthorized { .. })) => {
            Finding::new("authentication", Verdict::Ok, "collections need credentials, and these are accepted", "")
        }
        (true, Ok(_), _) => Finding::new(
            "authentication",
            Verdict::Adapted,
            "collections answer without credentials as well",
            "the operator sends its credentials anyway; anyone who reaches the endpoint can read it",
        ),
        (false, Ok(_), _) => Finding::new(
            "authentication",
            Verdict::Adapted,
            "no credentials given, and none needed",
            "a CimiProvider without credentialsSecretRef works with this endpoint",
        ),
    });
    Ok(())
}

async fn formats(report: &mut Report, base: &ClientConfig, configured: Format) -> Result<(), PluginError> {
    for (id, format) in [("format-json", Format::Json), ("format-xml", Format::Xml)] {
        let c = client(probe_config(base, format, base.transport.auth.clone()))?;
        let outcome = match c.discover().await {
            Ok(d) => match d.collections.get("machineConfigs").or_else(|| d.collections.get("machines")) {
                Some(url) => c.list_page_value(url, &Query::new().first(1).last(1), "").await.map(|_| ()),
                None => Ok(()),
            },
            Err(e) => Err(e),
        };
        let name = format.media_type();
        report.push(match (outcome, format == configured) {
            (Ok(()), _) => Finding::new(id, Verdict::Ok, format!("{name} is served"), ""),
            (Err(e), true) => Finding::new(
                id,
                Verdict::Fatal,
                format!("{name} is the format configured, and it fails: {e}"),
                "set spec.format to the other format",
            ),
            (Err(e), false) => Finding::new(
                id,
                Verdict::Unsupported,
                format!("{name} fails: {e}"),
                format!("spec.format {} will not work", if format == Format::Xml { "xml" } else { "json" }),
            ),
        });
    }
    Ok(())
}

fn collections(report: &mut Report, discovery: &Discovery) {
    let has = |c: &str| discovery.supports(c);
    let need = |report: &mut Report, id: &str, names: &[&str], what: &str| {
        let missing: Vec<&str> = names.iter().copied().filter(|c| !has(c)).collect();
        report.push(if missing.is_empty() {
            Finding::new(id, Verdict::Ok, format!("{} offered", names.join(", ")), "")
        } else {
            Finding::new(id, Verdict::Unsupported, format!("no {} in the CloudEntryPoint", missing.join(", ")), what)
        });
    };
    need(report, "machines", &["machines", "machineConfigs", "machineImages"], "CimiMachine will not work");
    need(report, "machine-templates", &["machineTemplates"], "CimiMachine spec.templateRef will not work");
    need(report, "credentials", &["credentials"], "CimiMachine spec.template.credentialSecretRef will not work");
    need(report, "volumes", &["volumes"], "CimiVolume will not work");
    need(report, "networks", &["networks"], "CimiNetwork will not work");
    need(report, "systems", &["systems", "systemTemplates"], "CimiSystem will not work");
    report.push(if has("jobs") {
        Finding::new("jobs", Verdict::Ok, "Jobs offered", "the operator follows each operation's Job (status.job)")
    } else {
        Finding::new(
            "jobs",
            Verdict::Adapted,
            "no Jobs",
            "the operator follows the resources' states instead; status.job stays empty and timeouts bound \
             transient states",
        )
    });
    report.push(if has("meters") {
        Finding::new("meters", Verdict::Ok, "Meters offered", "")
    } else {
        Finding::new("meters", Verdict::Unsupported, "no meters collection", "status.meters stays empty (no meters)")
    });
    report.push(if has("eventLogs") {
        Finding::new("event-logs", Verdict::Ok, "EventLogs offered", "")
    } else {
        Finding::new(
            "event-logs",
            Verdict::Unsupported,
            "no eventLogs collection",
            "no provider events are mirrored as Kubernetes Events",
        )
    });
    report.push(if has("resourceMetadata") {
        Finding::new("resource-metadata", Verdict::Ok, "ResourceMetadata offered", "")
    } else {
        Finding::new(
            "resource-metadata",
            Verdict::Adapted,
            "no resourceMetadata collection",
            "capabilities are unknown: the operator tries operations and reads what the provider answers",
        )
    });
}

/// The first collection of `names` the endpoint offers.
fn first_of(discovery: &Discovery, names: &[&str]) -> Option<(String, Url)> {
    names.iter().find_map(|n| discovery.collections.get(*n).map(|u| (n.to_string(), u.clone())))
}

async fn queries_and_deviations(
    report: &mut Report,
    base: &ClientConfig,
    discovery: &Discovery,
) -> Result<(), PluginError> {
    // Raw JSON answers: the deviation checks look at what was served, before the client's tolerance.
    let json = client(probe_config(base, Format::Json, base.transport.auth.clone()))?;
    if json.discover().await.is_err() {
        for id in ["filter", "property-filter", "dev-paging-ignored", "select", "orderby"] {
            report.push(Finding::new(id, Verdict::NotProbed, "JSON is not served; probed in JSON only", ""));
        }
        return Ok(());
    }
    let catalog = first_of(discovery, &["machineConfigs", "machineImages", "volumeConfigs", "networkConfigs"]);
    let Some((catalog_name, catalog_url)) = catalog else {
        report.push(Finding::new("filter", Verdict::NotProbed, "no catalog collection to query", ""));
        return Ok(());
    };
    let whole = raw(&json, &catalog_url).await.ok().and_then(|r| r.body).unwrap_or(Value::Null);
    let all_entries = entries(&whole);
    let total = whole.get("count").and_then(count_of).unwrap_or(all_entries.len() as u64);

    // $filter on an attribute: nothing should match a name nobody uses.
    let nobody = "kubectl-cimi-doctor-no-such-name";
    let url = with_query(&catalog_url, &format!("$filter={}", enc(&format!("name='{nobody}'"))));
    match raw(&json, &url).await {
        Ok(resp) => {
            let body = resp.body.unwrap_or(Value::Null);
            let served = entries(&body).len();
            let count = body.get("count").and_then(count_of).unwrap_or(served as u64);
            report.push(if served == 0 && count == 0 {
                Finding::new("filter", Verdict::Ok, format!("$filter honoured on {catalog_name}"), "")
            } else {
                Finding::new(
                    "filter",
                    Verdict::Unsupported,
                    format!("$filter ignored on {catalog_name}: {served} entries for a name nobody uses"),
                    "spec.import.filter and catalog references by name cannot be trusted; use hrefs",
                )
            });
            // CIMI omits empty arrays, so an empty answer without its entry array is allowed; the client reads
            // both forms as an empty collection.
            let form = if served == 0 && !has_entry_array(&body) {
                "an empty answer has count 0 and no entry array; read as empty"
            } else {
                "an empty answer keeps its entry array"
            };
            report.push(Finding::new("dev-empty-collection-without-array", Verdict::Ok, form, ""));
        }
        Err(e) => {
            report.push(Finding::new(
                "filter",
                Verdict::Unsupported,
                format!("$filter refused on {catalog_name}: {e}"),
                "spec.import.filter and catalog references by name will not work; use hrefs",
            ));
            report.push(Finding::new(
                "dev-empty-collection-without-array",
                Verdict::NotProbed,
                "no empty answer seen",
                "",
            ));
        }
    }

    // $filter on a property: the observer lists only the operator's own resources with it.
    if let Some(machines) = discovery.collections.get("machines") {
        let url = with_query(machines, &format!("$filter={}", enc(&format!("property['cimi.dev/doctor']='{nobody}'"))));
        report.push(match raw(&json, &url).await {
            Ok(resp) if entries(&resp.body.clone().unwrap_or(Value::Null)).is_empty() => {
                Finding::new("property-filter", Verdict::Ok, "property[...] filters honoured", "")
            }
            Ok(_) => Finding::new(
                "property-filter",
                Verdict::Adapted,
                "property[...] filters ignored",
                "the observer lists every machine of the provider, not only the operator's (more reads)",
            ),
            Err(e) => Finding::new(
                "property-filter",
                Verdict::Adapted,
                format!("property[...] filters refused: {e}"),
                "the observer lists every machine of the provider unfiltered (more reads)",
            ),
        });
    }

    // $first/$last.
    if all_entries.len() >= 2 {
        let url = Query::new().first(1).last(1).apply(&catalog_url);
        let served = match raw(&json, &url).await {
            Ok(resp) => entries(&resp.body.unwrap_or(Value::Null)).len(),
            Err(_) => usize::MAX,
        };
        let (verdict, detail) = if served <= 1 {
            (Verdict::Ok, format!("$first/$last honoured on {catalog_name}"))
        } else {
            (Verdict::Adapted, format!("$first/$last ignored: {served} entries for $first=1&$last=1"))
        };
        let operator = if verdict == Verdict::Ok {
            ""
        } else {
            "each listing reads the whole collection and the client keeps the page it asked for"
        };
        report.push(Finding::new("dev-paging-ignored", verdict, detail, operator));
    } else {
        let why = format!("{catalog_name} has fewer than 2 entries ({total})");
        report.push(Finding::new("dev-paging-ignored", Verdict::NotProbed, why, ""));
    }

    // $select.
    let url = with_query(&catalog_url, "$select=name");
    report.push(match raw(&json, &url).await {
        Ok(resp) => {
            let body = resp.body.unwrap_or(Value::Null);
            let extra = entries(&body).iter().any(|e| {
                e.as_object()
                    .is_some_and(|o| o.keys().any(|k| !matches!(k.as_str(), "name" | "id" | "href" | "resourceURI")))
            });
            if extra {
                Finding::new(
                    "select",
                    Verdict::Adapted,
                    "$select ignored on reads",
                    "whole documents are read; updates still send only what differs",
                )
            } else {
                Finding::new("select", Verdict::Ok, "$select honoured", "")
            }
        }
        Err(e) => Finding::new("select", Verdict::Adapted, format!("$select refused: {e}"), "whole documents are read"),
    });

    // $orderby (meters: the latest sample is asked for with $orderby=timestamp:desc).
    let names: Vec<String> =
        all_entries.iter().filter_map(|e| e.get("name").and_then(Value::as_str).map(str::to_string)).collect();
    let distinct = names.iter().collect::<std::collections::BTreeSet<_>>().len();
    if distinct >= 2 {
        let first_name = |order: &'static str| {
            let url = with_query(&catalog_url, &format!("$orderby={}", enc(&format!("name:{order}"))));
            let json = json.clone();
            async move {
                raw(&json, &url).await.ok().and_then(|r| r.body).and_then(|b| {
                    entries(&b).first().and_then(|e| e.get("name").and_then(Value::as_str).map(str::to_string))
                })
            }
        };
        let (asc, desc) = (first_name("asc").await, first_name("desc").await);
        report.push(if asc.is_some() && asc != desc {
            Finding::new("orderby", Verdict::Ok, "$orderby honoured", "")
        } else {
            Finding::new(
                "orderby",
                Verdict::Adapted,
                "$orderby ignored or refused",
                "the latest meter sample is found among all samples served",
            )
        });
    } else {
        report.push(Finding::new("orderby", Verdict::NotProbed, format!("{catalog_name} has fewer than 2 names"), ""));
    }

    served_shapes(report, &json, discovery, &whole, &catalog_name).await;
    not_probed(report);
    Ok(())
}

/// The deviations seen in what the provider serves: typed values, dates, entries, image locations,
/// delete rels, operation hrefs.
async fn served_shapes(
    report: &mut Report,
    json: &CimiClient,
    discovery: &Discovery,
    catalog: &Value,
    catalog_name: &str,
) {
    let catalog_entries = entries(catalog);
    let strings = catalog_entries
        .iter()
        .any(|e| ["cpu", "memory", "capacity", "mtu"].iter().any(|k| e.get(*k).is_some_and(Value::is_string)));
    report.push(if strings {
        Finding::new(
            "dev-strings-for-numbers",
            Verdict::Adapted,
            format!("numbers served as strings in {catalog_name} (such as \"cpu\": \"1\")"),
            "read as numbers",
        )
    } else {
        Finding::new("dev-strings-for-numbers", Verdict::Ok, "numbers served as numbers", "")
    });
    let bad_date = |v: &Value| {
        ["created", "updated"].iter().any(|k| {
            v.get(*k).and_then(Value::as_str).is_some_and(|d| chrono::DateTime::parse_from_rfc3339(d).is_err())
        })
    };
    let dates = catalog_entries.iter().any(bad_date);
    report.push(if dates {
        Finding::new(
            "dev-dates",
            Verdict::Adapted,
            "dates that are not xsd:dateTime (such as 2024-01-02 03:04:05)",
            "read leniently; unreadable dates are ignored",
        )
    } else {
        Finding::new("dev-dates", Verdict::Ok, "dates are xsd:dateTime", "")
    });
    let without_uri = catalog_entries.iter().any(|e| e.get("resourceURI").is_none());
    report.push(if without_uri && !catalog_entries.is_empty() {
        Finding::new(
            "dev-entries-without-resource-uri",
            Verdict::Adapted,
            "collection entries without resourceURI",
            "the type is taken from the collection",
        )
    } else if catalog_entries.is_empty() {
        Finding::new("dev-entries-without-resource-uri", Verdict::NotProbed, "no entries to look at", "")
    } else {
        Finding::new("dev-entries-without-resource-uri", Verdict::Ok, "entries carry resourceURI", "")
    });
    let long_delete = action_uri("delete");
    let delete_rels = catalog_entries.iter().any(|e| {
        e.get("operations")
            .and_then(Value::as_array)
            .is_some_and(|ops| ops.iter().any(|o| o.get("rel").and_then(Value::as_str) == Some(long_delete.as_str())))
    });
    report.push(if delete_rels {
        Finding::new(
            "dev-both-delete-rels",
            Verdict::Adapted,
            format!("{long_delete} used as a delete rel"),
            "both rels are read as delete",
        )
    } else {
        Finding::new("dev-both-delete-rels", Verdict::Ok, "delete is the plain delete rel", "")
    });
    if let Some(images) = discovery.collections.get("machineImages") {
        let body = raw(json, images).await.ok().and_then(|r| r.body).unwrap_or(Value::Null);
        let list = entries(&body);
        let as_string = list.iter().any(|e| e.get("imageLocation").is_some_and(Value::is_string));
        report.push(if list.is_empty() {
            Finding::new("dev-image-location", Verdict::NotProbed, "no machine image to look at", "")
        } else if as_string {
            Finding::new("dev-image-location", Verdict::Adapted, "imageLocation served as a string", "read as {href}")
        } else {
            Finding::new("dev-image-location", Verdict::Ok, "imageLocation served as {href}", "")
        });
    }
    // Operation hrefs: the add href of machines (and of a machine's volumes) against the collection URL.
    if let Some(machines) = discovery.collections.get("machines") {
        let body = raw(json, &Query::new().first(1).last(1).apply(machines)).await.ok().and_then(|r| r.body);
        let add = body.as_ref().and_then(|b| crate::cimi::client::find_operation(b, "add").and_then(Result::ok));
        let resolved = match add {
            Some(h) => json.resolve(&h).await.ok(),
            None => None,
        };
        let mut differs = resolved.as_ref().is_some_and(|a| a != machines);
        let mut looked_at_volumes = false;
        if let Some(machine) = body.as_ref().and_then(|b| entries(b).into_iter().next())
            && let Some(volumes) = machine.get("volumes").and_then(|v| v.get("href")).and_then(Value::as_str)
            && let Ok(url) = json.resolve(volumes).await
            && let Ok(resp) = raw(json, &url).await
            && let Some(add) =
                resp.body.as_ref().and_then(|b| crate::cimi::client::find_operation(b, "add").and_then(Result::ok))
        {
            looked_at_volumes = true;
            differs |= json.resolve(&add).await.is_ok_and(|a| a != url);
        }
        report.push(if differs {
            Finding::new(
                "dev-operation-hrefs",
                Verdict::Adapted,
                "operation hrefs differ from the collection URLs",
                "the operator always follows the hrefs it is given",
            )
        } else {
            let seen = if looked_at_volumes { "machines and a machine's volumes" } else { "machines" };
            Finding::new(
                "dev-operation-hrefs",
                Verdict::Ok,
                format!("the add href of {seen} is the collection URL"),
                "",
            )
        });
    }
}

/// The deviations that only a write would show: named, with what the operator does if they occur.
fn not_probed(report: &mut Report) {
    for (id, what, operator) in [
        ("dev-html-empty-bodies", "empty 200/202 bodies labelled text/html (needs a write)", "read as no body"),
        (
            "dev-html-404-for-405",
            "unsupported methods answered 404 with an HTML page (needs a write)",
            "a 404 is confirmed by a GET before anything is concluded",
        ),
        (
            "dev-detach-answers-collection",
            "a detach answering 200 with the collection (needs a write)",
            "accepted as done",
        ),
        (
            "dev-delete-500",
            "deleting a deleted resource answering 500 (needs a write)",
            "re-read: a GET that answers 404 means gone",
        ),
        (
            "dev-error-shape",
            "error bodies as a Job, {code, message, error}, or text (needs a failing request)",
            "every shape is read for its message",
        ),
        (
            "dev-capacity-units",
            "capacity units applied inconsistently (cannot be seen from outside)",
            "capacities are reported as served",
        ),
        (
            "dev-ids-reused",
            "ids reused after deletion (cannot be seen from outside)",
            "the operator matches its cimi.dev/uid tag, not only the id",
        ),
    ] {
        report.push(Finding::new(id, Verdict::NotProbed, what, operator));
    }
}

fn count_of(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn has_entry_array(body: &Value) -> bool {
    body.as_object().is_some_and(|o| o.iter().any(|(k, v)| k != "operations" && v.is_array()))
}

fn enc(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn with_query(url: &Url, query: &str) -> Url {
    let mut out = url.clone();
    let q = match url.query() {
        Some(existing) if !existing.is_empty() => format!("{existing}&{query}"),
        _ => query.to_string(),
    };
    out.set_query(Some(&q));
    out
}

/// The report as text: what works, what the operator does differently, what will not work, what was not
/// probed, and the verdict.
pub fn render(report: &Report, printer: &Printer) -> String {
    let mut out = format!(
        "CIMI doctor: {}{}\n",
        report.endpoint,
        report.provider.as_deref().map(|p| format!(" (cimiprovider/{p})")).unwrap_or_default()
    );
    let sections: [(Verdict, &str, &str, Style); 5] = [
        (Verdict::Fatal, "THE OPERATOR CANNOT USE IT", "consequence", Style::Bad),
        (Verdict::Ok, "WORKS", "", Style::Good),
        (Verdict::Adapted, "THE OPERATOR WORKS DIFFERENTLY", "what the operator does", Style::Warn),
        (Verdict::Unsupported, "WILL NOT WORK", "consequence", Style::Bad),
        (Verdict::NotProbed, "NOT PROBED (read-only doctor)", "if it happens, the operator", Style::Plain),
    ];
    for (verdict, title, third, style) in sections {
        let list: Vec<&Finding> = report.findings.iter().filter(|f| f.verdict == verdict).collect();
        if list.is_empty() {
            continue;
        }
        out.push('\n');
        out.push_str(&printer.heading(&format!("{title} ({})", list.len())));
        out.push('\n');
        let mut headers = vec!["check", "finding"];
        if !third.is_empty() {
            headers.push(third);
        }
        let mut t = Table::new(headers);
        for f in list {
            let mut row = vec![Cell::styled(&f.id, style), Cell::plain(printer.message(&f.detail))];
            if !third.is_empty() {
                row.push(Cell::plain(printer.message(&f.operator)));
            }
            t.row(row);
        }
        out.push_str(&t.render(printer.colour));
    }
    out.push_str(&format!(
        "\nVerdict: {} ({} work, {} differently, {} will not work, {} not probed).\n",
        if report.usable { "the operator can use this endpoint" } else { "the operator cannot use this endpoint" },
        report.count(Verdict::Ok),
        report.count(Verdict::Adapted),
        report.count(Verdict::Unsupported),
        report.count(Verdict::NotProbed),
    ));
    out
}

fn finish(report: &Report, printer: &Printer) -> Result<ExitCode, PluginError> {
    if printer.is_document() {
        print!("{}", printer.document(report)?);
    } else {
        print!("{}", render(report, printer));
    }
    if report.usable {
        return Ok(ExitCode::SUCCESS);
    }
    let fatal: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.verdict == Verdict::Fatal)
        .map(|f| format!("{}: {}", f.id, f.detail))
        .collect();
    Err(PluginError::Incompatible(format!("the operator cannot use {}: {}", report.endpoint, fatal.join("; "))))
}

/// `doctor URL`: credentials from `--credentials-file` or the environment.
pub async fn run_url(args: &DoctorArgs, printer: &Printer) -> Result<ExitCode, PluginError> {
    let mut config = ClientConfig::new("doctor", &args.target).map_err(|e| PluginError::Usage(e.to_string()))?;
    config.transport.auth = match &args.credentials_file {
        Some(path) => auth_from_file(path)?,
        None => auth_from_env(|k| std::env::var(k).ok().filter(|v| !v.is_empty())),
    };
    if let Some(ca) = &args.ca_file {
        config.transport.ca_bundle_pem =
            Some(std::fs::read(ca).map_err(|e| PluginError::Usage(format!("cannot read {}: {e}", ca.display())))?);
    }
    config.transport.insecure_skip_tls_verify = args.insecure_skip_tls_verify;
    config.transport.allow_plain_http = args.allow_plain_http;
    let report = probe(&config).await?;
    finish(&report, printer)
}

/// `doctor PROVIDER`: the CimiProvider's endpoint, format, TLS settings and Secret.
pub async fn run_provider(kube: &Kube, args: &DoctorArgs, printer: &Printer) -> Result<ExitCode, PluginError> {
    if args.credentials_file.is_some()
        || args.ca_file.is_some()
        || args.insecure_skip_tls_verify
        || args.allow_plain_http
    {
        return Err(PluginError::Usage(
            "--credentials-file, --ca-file, --insecure-skip-tls-verify and --allow-plain-http apply to a URL; a \
             CimiProvider brings its own settings"
                .into(),
        ));
    }
    let provider = super::objects::get_provider(kube, &args.target).await?;
    let config = super::connect::config_for(&kube.client, &provider).await?;
    let mut report = probe(&config).await?;
    report.provider = Some(args.target.clone());
    finish(&report, printer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::output::OutputFormat;

    #[test]
    fn credentials_come_from_a_file_or_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(
            auth_from_env(env(&[("CIMI_USERNAME", "u"), ("CIMI_PASSWORD", "p")])),
            Auth::Basic { username: "u".into(), password: crate::cimi::Secret::new("p") }
        );
        assert_eq!(auth_from_env(env(&[("CIMI_TOKEN", "t")])), Auth::Bearer(crate::cimi::Secret::new("t")));
        assert_eq!(auth_from_env(env(&[("CIMI_USERNAME", "u")])), Auth::None);
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("creds.yaml");
        std::fs::write(&path, "username: demo\npassword: demo\n").expect("write");
        assert!(matches!(auth_from_file(&path), Ok(Auth::Basic { .. })));
        std::fs::write(&path, "{\"token\": \"t\"}").expect("write");
        assert!(matches!(auth_from_file(&path), Ok(Auth::Bearer(_))));
        std::fs::write(&path, "- not a map").expect("write");
        assert!(matches!(auth_from_file(&path), Err(PluginError::Usage(_))));
        assert!(is_url("https://x/") && is_url("http://x/") && !is_url("lab"));
    }

    #[test]
    fn the_report_has_sections_and_a_verdict() {
        let report = Report {
            endpoint: "http://p/".into(),
            provider: Some("lab".into()),
            findings: vec![
                Finding::new("entry-point", Verdict::Ok, "a CIMI 1.x CloudEntryPoint", ""),
                Finding::new("jobs", Verdict::Adapted, "no Jobs", "states are followed instead"),
                Finding::new("meters", Verdict::Unsupported, "no meters collection", "status.meters stays empty"),
                Finding::new("dev-delete-500", Verdict::NotProbed, "needs a write", "re-read"),
            ],
            usable: true,
        };
        let text = render(&report, &Printer { format: OutputFormat::Table, colour: false });
        assert!(text.starts_with("CIMI doctor: http://p/ (cimiprovider/lab)"), "{text}");
        for part in ["WORKS (1)", "THE OPERATOR WORKS DIFFERENTLY (1)", "WILL NOT WORK (1)", "NOT PROBED"] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert!(text.contains("jobs    no Jobs   states are followed instead"), "{text}");
        assert!(text.contains("Verdict: the operator can use this endpoint (1 work, 1 differently, 1 will not work"));
        let fatal = first_contact_failure(&CimiError::Unauthorized { href: "h".into(), status: 401 });
        assert_eq!((fatal.id.as_str(), fatal.verdict), ("authentication", Verdict::Fatal));
    }

    #[test]
    fn queries_are_appended() {
        let url = Url::parse("http://p/machines?a=1").expect("url");
        assert_eq!(with_query(&url, "$select=name").as_str(), "http://p/machines?a=1&$select=name");
        assert_eq!(enc("name='x'"), "name%3D%27x%27");
        assert!(has_entry_array(&serde_json::json!({"count": 0, "machines": []})));
        assert!(!has_entry_array(&serde_json::json!({"count": 0, "operations": []})));
        assert_eq!(count_of(&serde_json::json!("3")), Some(3));
    }
}
