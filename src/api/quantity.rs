//! Kubernetes quantities in spec fields, and their conversion to CIMI units (memory in KiB, disk and
//! volume capacity in kilobytes), plus the human-readable strings shown in printer columns.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The schema of a quantity field: a string such as `4Gi` (checked by CEL rules). A plain string
/// with a bounded length, rather than int-or-string, keeps the CEL cost estimate within the budget
/// the API server enforces when the CRD is created.
pub fn quantity_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "maxLength": 32,
    })
}

/// Why a quantity could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text is not a Kubernetes quantity.
    #[error("{0:?} is not a quantity (expected a number with an optional suffix such as Ki, Mi, Gi, k, M, G)")]
    Invalid(String),
    /// The value is zero or negative.
    #[error("{0:?} must be positive")]
    NotPositive(String),
    /// The value does not fit the CIMI integer.
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// A quantity as an exact fraction: `numerator / 10^decimals` bytes (or units).
fn parse_exact(text: &str) -> Result<(i128, u32), QuantityError> {
    let invalid = || QuantityError::Invalid(text.to_string());
    let s = text.trim();
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let number_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(invalid());
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.len() > 18 || whole.len() > 30 {
        return Err(QuantityError::TooLarge(text.to_string()));
    }
    let digits = format!("{whole}{fraction}");
    let mut numerator: i128 = digits.parse().map_err(|_| invalid())?;
    let mut decimals = fraction.len() as u32;
    let too_large = || QuantityError::TooLarge(text.to_string());
    let mul = |n: i128, by: i128| n.checked_mul(by).ok_or_else(too_large);
    match suffix {
        "" => {}
        "Ki" => numerator = mul(numerator, 1 << 10)?,
        "Mi" => numerator = mul(numerator, 1 << 20)?,
        "Gi" => numerator = mul(numerator, 1 << 30)?,
        "Ti" => numerator = mul(numerator, 1 << 40)?,
        "Pi" => numerator = mul(numerator, 1 << 50)?,
        "Ei" => numerator = mul(numerator, 1 << 60)?,
        "m" => decimals += 3,
        "k" => numerator = mul(numerator, 1_000)?,
        "M" => numerator = mul(numerator, 1_000_000)?,
        "G" => numerator = mul(numerator, 1_000_000_000)?,
        "T" => numerator = mul(numerator, 1_000_000_000_000)?,
        "P" => numerator = mul(numerator, 1_000_000_000_000_000)?,
        "E" => numerator = mul(numerator, 1_000_000_000_000_000_000)?,
        exp if exp.starts_with('e') || exp.starts_with('E') => {
            let power: i32 = exp[1..].parse().map_err(|_| invalid())?;
            if power >= 0 {
                let factor = 10i128.checked_pow(power as u32).ok_or_else(too_large)?;
                numerator = mul(numerator, factor)?;
            } else {
                decimals += power.unsigned_abs();
            }
        }
        _ => return Err(invalid()),
    }
    if negative {
        numerator = -numerator;
    }
    Ok((numerator, decimals))
}

/// `ceil(value / unit)` for a positive quantity, as a CIMI integer.
fn to_units(quantity: &str, unit: i128) -> Result<i64, QuantityError> {
    let (numerator, decimals) = parse_exact(quantity)?;
    if numerator <= 0 {
        return Err(QuantityError::NotPositive(quantity.to_string()));
    }
    let too_large = || QuantityError::TooLarge(quantity.to_string());
    let denominator = 10i128.checked_pow(decimals).and_then(|d| d.checked_mul(unit)).ok_or_else(too_large)?;
    let units = (numerator + denominator - 1) / denominator;
    i64::try_from(units).map_err(|_| too_large())
}

/// A positive quantity as whole units, rounded up (`16Mi` -> 16777216), such as a byte count.
pub fn parse_quantity(quantity: &str) -> Result<i64, QuantityError> {
    to_units(quantity, 1)
}

/// Memory for CIMI: a quantity of bytes to KiB, rounded up (`4Gi` -> 4194304).
pub fn memory_kib(quantity: &Quantity) -> Result<i64, QuantityError> {
    to_units(&quantity.0, 1024)
}

/// Disk or volume capacity for CIMI: a quantity of bytes to kilobytes (10^3), rounded up
/// (`10Gi` -> 10737419, `10G` -> 10000000).
pub fn capacity_kb(quantity: &Quantity) -> Result<i64, QuantityError> {
    to_units(&quantity.0, 1000)
}

/// A CIMI memory value (KiB) as the exact Kubernetes quantity it is, in the largest binary unit that divides
/// it (`4194304` -> `4Gi`, `1572864` -> `1536Mi`, `8000000` -> `8000000Ki`).
pub fn memory_quantity(kib: i64) -> String {
    exact(
        i128::from(kib) * 1024,
        &[("Ei", 1 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)],
    )
}

/// A CIMI capacity value (kB) as the exact Kubernetes quantity it is, in the largest decimal unit that divides
/// it (`10000000` -> `10G`, `10737419` -> `10737419k`).
pub fn capacity_quantity(kb: i64) -> String {
    let power = |p: u32| 10i128.pow(p);
    exact(
        i128::from(kb) * 1000,
        &[("E", power(18)), ("P", power(15)), ("T", power(12)), ("G", power(9)), ("M", power(6)), ("k", power(3))],
    )
}

fn exact(bytes: i128, units: &[(&str, i128)]) -> String {
    if bytes == 0 {
        return "0".to_string();
    }
    for (suffix, unit) in units {
        if bytes % unit == 0 {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity(s.to_string())
    }

    #[test]
    fn memory_converts_to_kib() {
        assert_eq!(memory_kib(&q("4Gi")), Ok(4 * 1024 * 1024));
        assert_eq!(memory_kib(&q("512Mi")), Ok(512 * 1024));
        assert_eq!(memory_kib(&q("1.5Gi")), Ok(1536 * 1024));
        assert_eq!(memory_kib(&q("8000000Ki")), Ok(8_000_000));
        assert_eq!(memory_kib(&q("1G")), Ok(976_563)); // 10^9 / 1024, rounded up
        assert_eq!(memory_kib(&q("1025")), Ok(2));
        assert_eq!(memory_kib(&q("1e3")), Ok(1));
    }

    #[test]
    fn capacity_converts_to_kilobytes() {
        assert_eq!(capacity_kb(&q("10G")), Ok(10_000_000));
        assert_eq!(capacity_kb(&q("10Gi")), Ok(10_737_419));
        assert_eq!(capacity_kb(&q("500M")), Ok(500_000));
        assert_eq!(capacity_kb(&q("1k")), Ok(1));
        assert_eq!(capacity_kb(&q("1500m")), Ok(1)); // 1.5 bytes rounds up to one kB
    }

    #[test]
    fn bad_quantities_are_refused() {
        assert!(matches!(memory_kib(&q("four gigs")), Err(QuantityError::Invalid(_))));
        assert!(matches!(memory_kib(&q("4GB")), Err(QuantityError::Invalid(_))));
        assert!(matches!(memory_kib(&q("")), Err(QuantityError::Invalid(_))));
        assert!(matches!(memory_kib(&q("0")), Err(QuantityError::NotPositive(_))));
        assert!(matches!(capacity_kb(&q("-1Gi")), Err(QuantityError::NotPositive(_))));
        assert!(matches!(capacity_kb(&q("10000Ei")), Err(QuantityError::TooLarge(_))));
    }

    #[test]
    fn provider_sizes_are_exact_quantities_in_the_largest_unit_that_divides_them() {
        assert_eq!(memory_quantity(4 * 1024 * 1024), "4Gi");
        assert_eq!(memory_quantity(1536 * 1024), "1536Mi");
        assert_eq!(memory_quantity(8_000_000), "8000000Ki");
        assert_eq!(memory_quantity(512), "512Ki");
        assert_eq!(capacity_quantity(10_000_000), "10G");
        assert_eq!(capacity_quantity(1_500), "1500k");
        assert_eq!(capacity_quantity(10_737_419), "10737419k");
        assert_eq!(capacity_quantity(0), "0");
        for kib in [1, 1024, 8_000_000, 4 * 1024 * 1024] {
            assert_eq!(memory_kib(&q(&memory_quantity(kib))), Ok(kib), "round trip of {kib} KiB");
        }
        for kb in [1, 1_500, 10_737_419, 10_000_000] {
            assert_eq!(capacity_kb(&q(&capacity_quantity(kb))), Ok(kb), "round trip of {kb} kB");
        }
    }
}
