//! The observer: how the managed kinds learn what the provider holds, without one GET per object and
//! reconcile (design section 5 rule 10).
//!
//! - **State.** Per CimiProvider and collection (`machines`, `volumes`, `networks`) one poll task
//!   lists the collection in pages of `--observe-page-size` (`$first`/`$last`), filtered on our
//!   `cimi.dev/cluster` tag (unfiltered when the provider refuses the filter), once per provider
//!   `pollInterval`: ceil(N / page size) list requests per kind and interval. The entries are cached
//!   by href. A reconcile of an object in a steady state (Ready for its generation, no Job running)
//!   reads its observation from this cache; any other reconcile GETs the resource and stores the
//!   answer (fresher than the page it replaces). A resource missing from a listing is dropped from
//!   the cache and its object reconciled, so the next reconcile confirms "gone" by a GET. A listed
//!   resource whose state or attributes changed triggers a reconcile of its object
//!   ([`Observer::changes`], fed to `Controller::reconcile_on`).
//! - **Machine sub-collections** (network interfaces and their addresses, attached volumes) are read
//!   per machine, but only when the reconcile is not steady, when the machine's `updated` changed, or
//!   once per provider `meterInterval`; otherwise the last reading is reused ([`SubReading`]).
//! - **Meters** (per resource in CIMI) are read every provider `meterInterval`: the meter list once, then the
//!   latest sample of each meter (`$orderby=timestamp:desc&$first=1&$last=1`, one request per meter). The latest sample per
//!   aspect goes to `status.meters` and to the gauge `cimi_meter_value`, whose series are bounded by
//!   `--meter-gauges-max` and removed when the object goes away.
//! - **Events**: every provider `eventInterval` the resource's EventLog is read from `status.eventCursor`
//!   on (`$filter=timestamp>=…`); each newer event becomes one Kubernetes Event (reason
//!   `ProviderEvent`, the provider event id in the note), and the cursor advances. After a restart
//!   the first pass of each object also looks at the object's existing Events, so an event mirrored
//!   just before a crash (cursor not yet written) is not mirrored twice.

mod batch;
mod events;
mod lookup;
mod meter_page;
mod meters;
mod poll;
mod shared;
mod subs;

pub use events::event_id_of_note;
pub use lookup::{Lookup, observe_object, steady};
pub use meters::{Member, monitor, monitor_members};
pub use shared::{Observer, PROVIDER_EVENT_REASON, SubReading, Timing};
pub use subs::{MAX_SUB_ENTRIES, read_sub_collections};
