//! Amounts as the billing APIs write them, read exactly into picodollars (1e-12 USD): OpenAI's
//! costs are dollars (a JSON number, or now and then a numeric string), Anthropic's are cents as
//! a decimal string (`"123.78912"` is $1.2378912). Parsing the decimal text, never a float, keeps
//! an imported month equal to the provider's sums to the cent and beyond.

/// Picodollars in a dollar.
pub const PICO_PER_USD: i128 = 1_000_000_000_000;

/// A plain decimal (`-12.5`, `0.06`, `1500`, `1e-3`) in units of `10^-scale` of the amount's own
/// unit, rounded half away from zero past the last place. None when it is not a number.
fn scaled(text: &str, scale: u32) -> Option<i128> {
    let text = text.trim();
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (negative, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // The digits as one integer, and where the decimal point falls after `scale` more places.
    let all: String = whole.chars().chain(frac.chars()).collect();
    let all = all.trim_start_matches('0');
    let point = i64::from(exp) - frac.len() as i64 + i64::from(scale);
    if all.len() > 30 || !(-40..=30).contains(&point) {
        // Past any amount a bill holds (or a rounding to nothing): not a figure to import.
        return if all.is_empty() { Some(0) } else { None };
    }
    let mut n: i128 = if all.is_empty() { 0 } else { all.parse().ok()? };
    if point >= 0 {
        n = n.checked_mul(10i128.checked_pow(point as u32)?)?;
    } else {
        let div = 10i128.checked_pow((-point) as u32)?;
        let (q, r) = (n / div, n % div);
        n = if r * 2 >= div { q + 1 } else { q };
    }
    Some(if negative { -n } else { n })
}

/// Dollars as written (`0.06`, `"12.50"`) to picodollars.
pub fn usd_to_pico(text: &str) -> Option<i128> {
    scaled(text, 12)
}

/// Cents as written (`"123.78912"`) to picodollars.
pub fn cents_to_pico(text: &str) -> Option<i128> {
    scaled(text, 10)
}

/// A JSON amount that the spec says is a number and that has been seen as a string.
pub fn json_usd_to_pico(v: &serde_json::Value) -> Option<i128> {
    match v {
        serde_json::Value::Number(n) => usd_to_pico(&n.to_string()),
        serde_json::Value::String(s) => usd_to_pico(s),
        _ => None,
    }
}

/// Picodollars as dollars, for answers (exact sums stay in picodollars).
pub fn pico_to_usd(pico: i128) -> f64 {
    pico as f64 / PICO_PER_USD as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_exactly() {
        assert_eq!(usd_to_pico("0.06"), Some(60_000_000_000));
        assert_eq!(usd_to_pico("12.50"), Some(12_500_000_000_000));
        assert_eq!(usd_to_pico("-1"), Some(-PICO_PER_USD));
        assert_eq!(usd_to_pico("1e-3"), Some(1_000_000_000));
        assert_eq!(usd_to_pico("2.5E2"), Some(250 * PICO_PER_USD));
        assert_eq!(usd_to_pico("0.0000000000005"), Some(1));
        assert_eq!(usd_to_pico("0.0000000000004"), Some(0));
        assert_eq!(cents_to_pico("123.78912"), Some(1_237_891_200_000));
        assert_eq!(cents_to_pico("1500"), Some(15 * PICO_PER_USD));
        assert_eq!(cents_to_pico("0.1"), Some(1_000_000_000));
        assert_eq!(cents_to_pico("1705.6685"), Some(17_056_685_000_000));
        for bad in ["", ".", "abc", "1.2.3", "--1", "1e", "0x10", "1,5"] {
            assert_eq!(usd_to_pico(bad), None, "{bad}");
        }
        assert_eq!(
            json_usd_to_pico(&serde_json::json!(0.06)),
            Some(60_000_000_000)
        );
        assert_eq!(
            json_usd_to_pico(&serde_json::json!("12.50")),
            Some(12_500_000_000_000)
        );
        assert_eq!(json_usd_to_pico(&serde_json::json!(null)), None);
    }
}
