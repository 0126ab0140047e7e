//! The canonical form a signature covers, byte-identical to Python's
//! `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`.
//!
//! serde_json's own writer is not used: its key order depends on the `preserve_order`
//! feature (which any crate in the build may switch on), and it lays floats out its own
//! way (`1e20`, `1e-5`) where Python prints `1e+20`, `1e-05`. We take ryu's digits and
//! lay them out as Python does.

use serde_json::{Map, Number, Value};

/// Top-level members outside the signature: `security` holds the signature itself and
/// `routing` changes at every hop.
pub(crate) const UNSIGNED_MEMBERS: [&str; 2] = ["security", "routing"];

/// The bytes an envelope's signature covers: the envelope object without `security` and
/// `routing`, keys sorted recursively, no whitespace, non-ASCII as raw UTF-8.
///
/// See the crate documentation for the exact rules and the known differences from
/// Python.
pub fn canonical(envelope: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_object(envelope.iter().filter(|(key, _)| !UNSIGNED_MEMBERS.contains(&key.as_str())), &mut out);
    out
}

/// Appends `value` in canonical form. Infallible: every `Value` has a JSON spelling.
pub(crate) fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => write_number(number, out),
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map.iter(), out),
    }
}

fn write_object<'a>(members: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut Vec<u8>) {
    let mut members: Vec<_> = members.collect();
    // Rust orders `str` by UTF-8 bytes, which is code point order, which is how
    // Python sorts `str` keys. Keys of a map are unique, so an unstable sort is exact.
    members.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (index, (key, value)) in members.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        write_value(value, out);
    }
    out.push(b'}');
}

/// Python's `ensure_ascii=False` escaping: `"` `\` and the C0 controls only, with the
/// short forms for `\b \f \n \r \t` and lowercase `\u00xx` for the rest. DEL, U+2028
/// and U+2029 stay raw, as in Python.
fn write_string(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut clean_from = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let short: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[clean_from..index]);
        clean_from = index + 1;
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
    }
    out.extend_from_slice(&bytes[clean_from..]);
    out.push(b'"');
}

fn write_number(number: &Number, out: &mut Vec<u8>) {
    if let Some(unsigned) = number.as_u64() {
        out.extend_from_slice(unsigned.to_string().as_bytes());
    } else if let Some(signed) = number.as_i64() {
        out.extend_from_slice(signed.to_string().as_bytes());
    } else if let Some(float) = number.as_f64() {
        write_python_float(float, out);
    }
}

/// Python's `repr(float)`: the shortest digits that read back to the same double,
/// the closest of those to the exact value and, on a tie, the even one (ryu picks the
/// same digits; Rust's `{:e}` rounds ties up, `…876.25` gives `…876.3`, Python
/// `…876.2`); positional for decimal exponents -4..=15 with at least one fractional
/// digit (`1.0`, `0.0001`), otherwise `d.ddde±XX` with two exponent digits at least
/// (`1e+20`, `1e-05`).
fn write_python_float(float: f64, out: &mut Vec<u8>) {
    if float.is_sign_negative() {
        out.push(b'-');
    }
    let mut buffer = ryu::Buffer::new();
    let (digits, exponent) = shortest_digits(buffer.format_finite(float.abs()));
    if digits.is_empty() {
        out.extend_from_slice(b"0.0");
    } else if (-4..16).contains(&exponent) {
        if exponent < 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', exponent.unsigned_abs() as usize - 1));
            out.extend_from_slice(&digits);
        } else {
            let integer_len = exponent as usize + 1;
            if digits.len() <= integer_len {
                out.extend_from_slice(&digits);
                out.extend(std::iter::repeat_n(b'0', integer_len - digits.len()));
                out.extend_from_slice(b".0");
            } else {
                out.extend_from_slice(&digits[..integer_len]);
                out.push(b'.');
                out.extend_from_slice(&digits[integer_len..]);
            }
        }
    } else {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exponent < 0 { b'-' } else { b'+' });
        out.extend_from_slice(format!("{:02}", exponent.unsigned_abs()).as_bytes());
    }
}

/// The significant digits of ryu's text (any of `123.45`, `0.00123`, `1230.0`, `1e30`,
/// `1.5e-7`) without leading or trailing zeros, and the decimal exponent of the first:
/// `123.45` gives (`12345`, 2). Zero gives no digits.
fn shortest_digits(text: &str) -> (Vec<u8>, i32) {
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let point = mantissa.find('.').unwrap_or(mantissa.len());
    let all: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let leading = all.iter().take_while(|&&digit| digit == b'0').count();
    let trailing = all[leading..].iter().rev().take_while(|&&digit| digit == b'0').count();
    let digits = all[leading..all.len() - trailing].to_vec();
    (digits, point as i32 - 1 - leading as i32 + exponent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn text(value: &Value) -> String {
        let mut out = Vec::new();
        write_value(value, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_print_like_python_repr() {
        // Expected strings are what CPython 3.11 prints for `json.dumps(x)`.
        let cases = [
            (0.5, "0.5"),
            (1e20, "1e+20"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (2.5e-7, "2.5e-07"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (0.1, "0.1"),
            (-123.456, "-123.456"),
            (1234567890123456.8, "1234567890123456.8"),
            (1.5e100, "1.5e+100"),
            // Exact ties at the last shortest digit go to the even digit, as in Python
            // (written as sums: each is exactly representable, one digit past 17).
            (809135168206876.0 + 0.25, "809135168206876.2"),
            (-(266594191494904.0 + 0.625), "-266594191494904.62"),
            (1968762438635941.0 + 0.25, "1968762438635941.2"),
        ];
        for (float, expected) in cases {
            assert_eq!(text(&json!(float)), expected, "{float:?}");
        }
    }

    #[test]
    fn integers_print_exactly() {
        assert_eq!(text(&json!(u64::MAX)), "18446744073709551615");
        assert_eq!(text(&json!(i64::MIN)), "-9223372036854775808");
        assert_eq!(text(&json!(0)), "0");
    }

    #[test]
    fn strings_escape_like_python() {
        let value = json!("a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}é☃😀\u{2028}/");
        assert_eq!(text(&value), "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\u{7f}é☃😀\u{2028}/\"");
    }

    #[test]
    fn keys_sort_recursively_and_unsigned_members_are_left_out() {
        let envelope = json!({
            "b": {"z": 1, "a": [{"y": true, "x": null}]},
            "a": "x",
            "security": {"signature": "abc"},
            "routing": {"hops": 3},
            "é": 1,
            "z": 2,
        });
        let bytes = canonical(envelope.as_object().unwrap());
        assert_eq!(String::from_utf8(bytes).unwrap(), r#"{"a":"x","b":{"a":[{"x":null,"y":true}],"z":1},"z":2,"é":1}"#);
    }

    proptest! {
        // The canonical text is JSON that reads back to the same value, so nothing is
        // lost and serde_json's float reader agrees with the digits we print.
        #[test]
        fn floats_read_back_to_the_same_bits(bits in any::<u64>()) {
            let float = f64::from_bits(bits);
            prop_assume!(float.is_finite());
            let printed = text(&json!(float));
            let read: f64 = serde_json::from_str(&printed).unwrap();
            prop_assert_eq!(read.to_bits(), float.to_bits(), "{}", printed);
        }

        #[test]
        fn strings_read_back(input in any::<String>()) {
            let printed = text(&Value::String(input.clone()));
            let read: String = serde_json::from_str(&printed).unwrap();
            prop_assert_eq!(read, input);
        }
    }
}
