//! A page of the batched meter read (`meters?$expand=samples`), read as it arrives: of each meter only its
//! target, aspect, units, samples href and, of its inlined samples, their `count`, how many were served and the
//! newest. A page of 100 meters inlines up to a provider's whole retention of samples each (10,000 samples at
//! 100 per meter); built as a JSON tree it cost several megabytes of small allocations per page, dropped at
//! once, which kept the operator's resident set well above its live heap.
//!
//! The entries are the first array of maps of the page that is not `operations` (as [`entries`] takes them),
//! and a meter's inlined samples the first array of maps of its `samples`, so a provider that names them
//! otherwise is read the same. A value of an unexpected shape is passed over, never an error.
//!
//! [`entries`]: crate::controller::resource::reads::entries

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, de};
use serde_json::Value;

use super::shared::{parse_time, scalar_text};

/// One page of meters.
#[derive(Debug, Default)]
pub(super) struct MeterPage {
    /// The collection's `count`, when stated.
    pub count: Option<u64>,
    /// The meters served.
    pub meters: Vec<PageMeter>,
}

/// What the batched read keeps of one meter.
#[derive(Debug, Default, PartialEq)]
pub(super) struct PageMeter {
    /// `targetResource.href`.
    pub target: Option<String>,
    /// The aspect URI.
    pub aspect: Option<String>,
    /// The units.
    pub units: Option<String>,
    /// The meter's `samples`: `None` when absent.
    pub samples: Option<Samples>,
}

/// A meter's `samples` attribute.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Samples {
    /// `samples.href`.
    pub href: Option<String>,
    /// `samples.count`: absent when the provider did not inline them.
    pub count: Option<u64>,
    /// How many samples were served inline.
    pub served: u64,
    /// The newest sample served: its timestamp (as given) and value (a string or a number, as text).
    pub newest: Option<(Option<String>, Option<String>)>,
}

impl Samples {
    /// Whether fewer samples were served than the collection holds (the newest served may not be the newest).
    pub fn truncated(&self) -> bool {
        self.count.unwrap_or(0) > self.served
    }
}

impl<'de> Deserialize<'de> for MeterPage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(PageVisitor)
    }
}

struct PageVisitor;

impl<'de> Visitor<'de> for PageVisitor {
    type Value = MeterPage;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a meter collection")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MeterPage, A::Error> {
        let mut page = MeterPage::default();
        let mut found = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "count" => page.count = map.next_value::<Option<u64>>()?,
                "operations" => {
                    map.next_value::<IgnoredAny>()?;
                }
                _ if !found => {
                    if let Some(meters) = map.next_value_seed(ArrayOf(MeterSeed))? {
                        page.meters = meters;
                        found = true;
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(page)
    }
}

/// A value read when it is an array whose every element the seed takes (as [`entries`] takes only an array of
/// maps), ignored otherwise.
struct ArrayOf<S>(S);

impl<'de, T, S: DeserializeSeed<'de, Value = Option<T>> + Copy> DeserializeSeed<'de> for ArrayOf<S> {
    type Value = Option<Vec<T>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

macro_rules! ignore_scalars {
    ($($method:ident: $t:ty),*) => {
        $(fn $method<E: de::Error>(self, _: $t) -> Result<Self::Value, E> {
            Ok(Default::default())
        })*
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
}

/// A seed read with `deserialize_any` whose visitor passes over scalars (giving `Default`), with the given
/// `visit_map` / `visit_seq`.
macro_rules! any_value_seed {
    ($de:lifetime, $seed:ty => $out:ty, $what:literal, { $($methods:tt)* }) => {
        impl<$de> DeserializeSeed<$de> for $seed {
            type Value = $out;

            fn deserialize<D: Deserializer<$de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
                deserializer.deserialize_any(self)
            }
        }

        impl<$de> Visitor<$de> for $seed {
            type Value = $out;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str($what)
            }

            ignore_scalars!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);

            $($methods)*
        }
    };
}

impl<'de, T, S: DeserializeSeed<'de, Value = Option<T>> + Copy> Visitor<'de> for ArrayOf<S> {
    type Value = Option<Vec<T>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }

    ignore_scalars!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Some(Vec::new());
        while let Some(item) = seq.next_element_seed(self.0)? {
            match (item, out.as_mut()) {
                (Some(item), Some(v)) => v.push(item),
                _ => out = None,
            }
        }
        Ok(out)
    }
}

/// One meter: `None` when the entry is not a map.
#[derive(Clone, Copy)]
struct MeterSeed;

any_value_seed!('de, MeterSeed => Option<PageMeter>, "a meter", {



    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut meter = PageMeter::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "targetResource" => meter.target = map.next_value::<Value>()?.get("href").and_then(text),
                "aspect" => meter.aspect = text(&map.next_value::<Value>()?),
                "units" => meter.units = text(&map.next_value::<Value>()?),
                "samples" => meter.samples = map.next_value_seed(SamplesSeed)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(meter))
    }
});

/// A string attribute as text (what [`crate::controller::resource::reads::text`] reads).
fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// A meter's `samples`: `None` when it is not a map.
#[derive(Clone, Copy)]
struct SamplesSeed;

any_value_seed!('de, SamplesSeed => Option<Samples>, "a sample collection", {



    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut samples = Samples::default();
        let mut found = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "href" => samples.href = text(&map.next_value::<Value>()?),
                "count" => samples.count = map.next_value::<Value>()?.as_u64(),
                "operations" => {
                    map.next_value::<IgnoredAny>()?;
                }
                _ if !found => {
                    if let Some(newest) = map.next_value_seed(NewestSeed)? {
                        samples.served = newest.served;
                        samples.newest = newest.newest.map(|s| (s.timestamp, s.value));
                        found = true;
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(samples))
    }
});

/// Of an array of samples, how many and the newest (the last of equally new ones; one without a readable
/// timestamp counts as oldest).
struct Newest {
    served: u64,
    newest: Option<Sample>,
}

struct Sample {
    timestamp: Option<String>,
    value: Option<String>,
}

struct NewestSeed;

any_value_seed!('de, NewestSeed => Option<Newest>, "any value", {



    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Newest { served: 0, newest: None };
        let mut newest_at = None;
        let mut all_maps = true;
        while let Some(sample) = seq.next_element::<Value>()? {
            let Value::Object(mut sample) = sample else {
                all_maps = false;
                continue;
            };
            out.served += 1;
            let timestamp = sample.remove("timestamp").and_then(|t| text(&t));
            let at = timestamp.as_deref().and_then(parse_time).map(|t| t.0);
            if out.newest.is_none() || at >= newest_at {
                newest_at = at;
                let value = sample.get("value").and_then(scalar_text);
                out.newest = Some(Sample { timestamp, value });
            }
        }
        Ok(Some(out).filter(|_| all_maps))
    }
});

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::controller::resource::reads::{entries, ref_href};

    /// What the batched read took from a page built as a JSON tree (before this reader).
    fn from_tree(page: &Value) -> Vec<PageMeter> {
        entries(page)
            .into_iter()
            .map(|meter| PageMeter {
                target: ref_href(&meter, "targetResource").map(str::to_string),
                aspect: meter.get("aspect").and_then(Value::as_str).map(str::to_string),
                units: meter.get("units").and_then(Value::as_str).map(str::to_string),
                samples: meter.get("samples").filter(|s| s.is_object()).map(|s| {
                    let served = entries(s);
                    let stamp =
                        |v: &Value| v.get("timestamp").and_then(Value::as_str).and_then(parse_time).map(|t| t.0);
                    let newest = served.iter().max_by(|a, b| stamp(a).cmp(&stamp(b)));
                    Samples {
                        href: ref_href(&meter, "samples").map(str::to_string),
                        count: s.get("count").and_then(Value::as_u64),
                        served: served.len() as u64,
                        newest: newest.map(|n| {
                            (
                                n.get("timestamp").and_then(Value::as_str).map(str::to_string),
                                n.get("value").and_then(scalar_text),
                            )
                        }),
                    }
                }),
            })
            .collect()
    }

    fn page() -> Value {
        json!({
            "resourceURI": "http://schemas.dmtf.org/cimi/2/MeterCollection", "count": 7,
            "operations": [{"rel": "add", "href": "meters"}],
            "meters": [
                {"id": "m/1", "targetResource": {"href": "machines/1"}, "aspect": "http://x/aspect/cpu",
                 "units": "percent", "sampleInterval": 1,
                 "samples": {"href": "m/1/samples", "count": 3, "samples": [
                     {"timestamp": "2026-01-01T00:00:02Z", "value": "7.5"},
                     {"timestamp": "2026-01-01T00:00:03Z", "value": 9},
                     {"timestamp": "2026-01-01T00:00:01Z", "value": "1"}]}},
                {"id": "m/2", "targetResource": {"href": "machines/1"}, "aspect": "http://x/aspect/memory",
                 "samples": {"href": "m/2/samples", "count": 200, "samples": [
                     {"timestamp": "2026-01-01T00:00:02Z", "value": "5"}]}},
                {"id": "m/3", "targetResource": {"href": "machines/2"}, "aspect": "http://x/aspect/disk",
                 "samples": {"href": "m/3/samples"}},
                {"id": "m/4", "targetResource": {"href": "machines/2"}, "aspect": "http://x/aspect/net",
                 "samples": {"href": "m/4/samples", "count": 2, "samples": [
                     {"timestamp": "same", "value": "a"}, {"timestamp": "2026-01-01T00:00:00Z", "value": "b"},
                     {"timestamp": "2026-01-01T00:00:00Z", "value": "c"}]}},
                {"id": "m/5", "aspect": "http://x/aspect/none", "samples": {"href": "m/5/samples", "count": 0,
                 "samples": []}},
                {"id": "m/6", "targetResource": {"href": "machines/3"}}
            ]
        })
    }

    #[test]
    fn a_page_reads_as_its_tree_did_keeping_only_the_newest_sample() {
        let page = page();
        let read: MeterPage = serde_json::from_slice(&serde_json::to_vec(&page).expect("bytes")).expect("page");
        assert_eq!(read.count, Some(7));
        assert_eq!(read.meters, from_tree(&page));
        let cpu = read.meters[0].samples.as_ref().expect("samples");
        assert_eq!(cpu.newest, Some((Some("2026-01-01T00:00:03Z".into()), Some("9".into()))), "a number as text");
        assert!(!cpu.truncated());
        assert!(read.meters[1].samples.as_ref().expect("samples").truncated(), "200 held, 1 served");
        assert_eq!(read.meters[2].samples.as_ref().expect("samples").count, None, "not inlined");
        let net = read.meters[3].samples.as_ref().expect("samples");
        assert_eq!(net.newest.as_ref().and_then(|n| n.1.as_deref()), Some("c"), "the last of the newest");
        // The same from a JSON tree (the slow path, after the normalisation).
        let from_value: MeterPage = serde_json::from_value(page.clone()).expect("page from a tree");
        assert_eq!(from_value.meters, read.meters);
    }

    #[test]
    fn odd_pages_read_without_error() {
        for odd in [
            json!({}),
            json!({"count": 0, "meters": []}),
            json!({"operations": [], "meters": [1, "x", null, [], {"samples": 3}, {"samples": []}]}),
            json!({"meters": [{"samples": 3}, {"samples": [], "aspect": 7}, {"samples": {"count": 2, "s": [{}, 1]}}]}),
            json!({"meters": "none", "others": [{"aspect": "cpu", "samples": {"count": 1, "x": {}, "s": [{}]}}]}),
        ] {
            let read: MeterPage = serde_json::from_value(odd.clone()).unwrap_or_else(|e| panic!("{odd}: {e}"));
            assert_eq!(read.meters, from_tree(&odd), "{odd}");
        }
    }
}
