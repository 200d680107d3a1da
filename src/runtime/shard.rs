//! Shards: several operator instances share the managed objects of one cluster, each reconciling its own.
//!
//! An object belongs to exactly one of `count` shards: the one its label `cimi.dev/shard` names (a decimal index
//! below `count`), else the one a stable hash of its namespace and name picks (64-bit FNV-1a of
//! `namespace/name`, modulo `count`). The hash depends on nothing but the identity a manifest declares, so an
//! object keeps its shard across operator versions, restarts and a rebuild of the cluster from Git (a UID
//! would not). A label that names no shard of this deployment (not a number, or past `count`) is ignored: the
//! object falls back to its hash rather than being orphaned when the shard count shrinks.
//!
//! Each shard still watches every object (a machine's volumes, networks and system members may belong to
//! another shard), but wakes and reconciles only its own, and writes only its own. Providers are seen by every
//! shard; shard 0 probes them and writes their status and finalizer ([`Shard::probes_providers`]).

use std::collections::BTreeMap;

/// The label that pins an object to a shard: `cimi.dev/shard: "<index>"`.
pub const LABEL_SHARD: &str = "cimi.dev/shard";

/// This instance's shard: its index among `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Default for Shard {
    /// The only shard: every object is its own.
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard-{}", self.index)
    }
}

impl Shard {
    /// Shard `index` of `count`; an error says what is wrong (no shards, or an index past the count).
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 {
            return Err("--shard-count must be at least 1".to_string());
        }
        if index >= count {
            return Err(format!("--shard-index {index} is not below --shard-count {count} (shards count from 0)"));
        }
        Ok(Shard { index, count })
    }

    /// This shard's index, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many shards there are.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// True when the work is split (more than one shard).
    pub fn is_sharded(&self) -> bool {
        self.count > 1
    }

    /// Whether this shard probes the providers and writes their status and finalizer (shard 0); the other shards
    /// connect from what it wrote.
    pub fn probes_providers(&self) -> bool {
        self.index == 0
    }

    /// The shard that owns the object `namespace/name` with `labels`.
    pub fn owner_of(count: u32, namespace: &str, name: &str, labels: Option<&BTreeMap<String, String>>) -> u32 {
        let count = count.max(1);
        if let Some(pinned) = labels.and_then(|l| l.get(LABEL_SHARD)).and_then(|v| v.trim().parse::<u32>().ok())
            && pinned < count
        {
            return pinned;
        }
        let mut hash = Fnv1a::default();
        hash.write(namespace.as_bytes());
        hash.write(b"/");
        hash.write(name.as_bytes());
        // The remainder is below `count`, a u32.
        u32::try_from(hash.finish() % u64::from(count)).unwrap_or(0)
    }

    /// Whether this shard owns the object with metadata `meta`.
    pub fn owns(&self, meta: &kube::api::ObjectMeta) -> bool {
        !self.is_sharded()
            || Self::owner_of(
                self.count,
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default(),
                meta.labels.as_ref(),
            ) == self.index
    }

    /// The HTTP user agent of this instance's requests, so that the API server's audit log and the provider's
    /// access log tell the shards apart (all write with the same field manager): `cimi-operator/shard-<index>`
    /// when sharded, else `cimi-operator/<version>`.
    pub fn user_agent(&self) -> String {
        if self.is_sharded() {
            format!("cimi-operator/{self}")
        } else {
            concat!("cimi-operator/", env!("CARGO_PKG_VERSION")).to_string()
        }
    }

    /// The name of this shard's leader Lease: `base` alone, or `<base>-shard-<index>` when sharded (each shard
    /// elects its own leader among its replicas).
    pub fn lease_name(&self, base: &str) -> String {
        if self.is_sharded() { format!("{base}-{self}") } else { base.to_string() }
    }

    /// The instance named in the Events this shard publishes (`reportingInstance`).
    pub fn reporting_instance(&self, controller: &str) -> String {
        if self.is_sharded() { format!("{controller}-{self}") } else { controller.to_string() }
    }

    /// This shard's part of a rate of `total` (requests per second): `total / count`.
    pub fn share(&self, total: f64) -> f64 {
        total / f64::from(self.count)
    }

    /// This shard's part of a whole budget (burst, concurrent requests): `total / count` rounded up, so that no
    /// shard gets nothing.
    pub fn share_of(&self, total: u64) -> u64 {
        total.div_ceil(u64::from(self.count)).max(1)
    }
}

/// 64-bit FNV-1a: fixed by its specification, so an object's shard never changes with the Rust version (the
/// standard library's hasher makes no such promise).
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(namespace: &str, name: &str, pin: Option<&str>) -> kube::api::ObjectMeta {
        kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: pin.map(|p| [(LABEL_SHARD.to_string(), p.to_string())].into()),
            ..Default::default()
        }
    }

    #[test]
    fn fnv1a_matches_its_published_test_vectors() {
        let hash = |text: &str| {
            let mut h = Fnv1a::default();
            h.write(text.as_bytes());
            h.finish()
        };
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn every_object_belongs_to_exactly_one_shard_and_the_split_is_even() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).expect("shard")).collect();
        let mut per_shard = [0u32; 3];
        for n in 0..3000 {
            let m = meta("team", &format!("vm-{n}"), None);
            let owners: Vec<u32> = shards.iter().filter(|s| s.owns(&m)).map(Shard::index).collect();
            assert_eq!(owners.len(), 1, "vm-{n} is owned by {owners:?}");
            per_shard[owners[0] as usize] += 1;
        }
        for (index, n) in per_shard.iter().enumerate() {
            assert!((900..=1100).contains(n), "shard {index} owns {n} of 3000: {per_shard:?}");
        }
    }

    #[test]
    fn the_owner_depends_on_namespace_and_name_only_and_is_stable() {
        // Fixed values: a change of the hash would move objects between shards on an upgrade.
        assert_eq!(
            Shard::owner_of(2, "team", "vm-0", None),
            Shard::owner_of(2, "team", "vm-0", Some(&BTreeMap::new()))
        );
        let owners: Vec<u32> = (0..8).map(|n| Shard::owner_of(4, "team", &format!("vm-{n}"), None)).collect();
        assert_eq!(owners, [1, 2, 3, 0, 1, 2, 3, 0], "FNV-1a 64 of team/vm-N, modulo 4");
        // "a/bc" and "ab/c" are different objects and may land apart; the separator is part of the hash.
        let mut h1 = Fnv1a::default();
        h1.write(b"a/bc");
        let mut h2 = Fnv1a::default();
        h2.write(b"ab/c");
        assert_ne!(h1.finish(), h2.finish());
    }

    #[test]
    fn a_label_pins_an_object_and_a_label_naming_no_shard_falls_back_to_the_hash() {
        let (zero, one) = (Shard::new(0, 2).expect("0"), Shard::new(1, 2).expect("1"));
        for n in 0..50 {
            let name = format!("vm-{n}");
            assert!(one.owns(&meta("team", &name, Some("1"))) && !zero.owns(&meta("team", &name, Some("1"))));
            assert!(zero.owns(&meta("team", &name, Some(" 0 "))));
            let hashed = Shard::owner_of(2, "team", &name, None);
            for bad in ["2", "-1", "one", ""] {
                assert_eq!(Shard::owner_of(2, "team", &name, meta("team", &name, Some(bad)).labels.as_ref()), hashed);
            }
        }
    }

    #[test]
    fn one_shard_owns_everything_and_keeps_the_unsharded_names() {
        let only = Shard::default();
        assert!(only.owns(&meta("team", "anything", Some("5"))));
        assert!(!only.is_sharded() && only.probes_providers());
        assert_eq!(only.lease_name("cimi-operator"), "cimi-operator");
        assert_eq!(only.reporting_instance("cimi-operator"), "cimi-operator");
        assert!(only.user_agent().starts_with("cimi-operator/") && !only.user_agent().contains("shard"));
        let second = Shard::new(1, 2).expect("shard");
        assert_eq!(second.lease_name("cimi-operator"), "cimi-operator-shard-1");
        assert_eq!(second.user_agent(), "cimi-operator/shard-1");
        assert_eq!(second.reporting_instance("cimi-operator"), "cimi-operator-shard-1");
        assert!(!second.probes_providers());
    }

    #[test]
    fn bad_shard_flags_are_refused_and_budgets_are_shared() {
        assert!(Shard::new(0, 0).is_err());
        let error = Shard::new(2, 2).expect_err("past the count");
        assert!(error.contains("--shard-index 2") && error.contains("--shard-count 2"), "{error}");
        let third = Shard::new(2, 3).expect("shard");
        assert_eq!(third.share_of(10), 4);
        assert_eq!(third.share_of(1), 1, "no shard is left without a request");
        assert!((third.share(30.0) - 10.0).abs() < 1e-9);
    }
}
