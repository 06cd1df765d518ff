//! Protobuf JSON (the canonical JSON mapping: camelCase names, enum names, 64-bit integers
//! as strings, base64 bytes, RFC 3339 timestamps) to the SDK's history type. The Rust protos
//! only read their own serde JSON, so this encodes the JSON into protobuf's binary wire
//! format, guided by the descriptors `temporalio-protos` publishes (copied in by build.rs),
//! and lets prost decode that. Unknown fields and enum values are skipped, as a tolerant
//! protobuf JSON parser does, so an export from a newer CLI still reads.

use std::collections::HashMap;
use std::sync::OnceLock;

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use serde_json::Value;
use temporalio_common::protos::temporal::api::history::v1::History;

/// The protobuf descriptors of the Temporal API, as compiled into the SDK.
static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/temporal_descriptors.bin"));

const HISTORY: &str = ".temporal.api.history.v1.History";

/// What the encoder needs to know about the schema.
#[derive(Debug, Default)]
struct Schema {
    /// By full name with a leading dot.
    messages: HashMap<String, MessageInfo>,
    /// Enum value numbers by full enum name, then value name.
    enums: HashMap<String, HashMap<String, i32>>,
}

#[derive(Debug, Default)]
struct MessageInfo {
    /// By JSON name and by proto name (parsers accept both).
    fields: HashMap<String, FieldInfo>,
    map_entry: bool,
}

#[derive(Debug, Clone)]
struct FieldInfo {
    number: u32,
    kind: Type,
    repeated: bool,
    type_name: String,
}

fn schema() -> Result<&'static Schema, String> {
    static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            if DESCRIPTORS.is_empty() {
                return Err("the Temporal protobuf descriptors were not available when \
                            osp-testkit was built, so protobuf JSON cannot be read"
                    .to_owned());
            }
            let set = FileDescriptorSet::decode(DESCRIPTORS)
                .map_err(|error| format!("reading the Temporal protobuf descriptors: {error}"))?;
            let mut schema = Schema::default();
            for file in &set.file {
                let package = match file.package() {
                    "" => String::new(),
                    package => format!(".{package}"),
                };
                for message in &file.message_type {
                    schema.add_message(&package, message);
                }
                for kind in &file.enum_type {
                    schema.add_enum(&package, kind);
                }
            }
            Ok(schema)
        })
        .as_ref()
        .map_err(Clone::clone)
}

impl Schema {
    fn add_message(&mut self, scope: &str, message: &DescriptorProto) {
        let full_name = format!("{scope}.{}", message.name());
        let mut info = MessageInfo {
            fields: HashMap::new(),
            map_entry: message
                .options
                .as_ref()
                .is_some_and(|options| options.map_entry()),
        };
        for field in &message.field {
            let field_info = FieldInfo {
                number: u32::try_from(field.number()).unwrap_or_default(),
                kind: field.r#type(),
                repeated: field.label() == Label::Repeated,
                type_name: field.type_name().to_owned(),
            };
            info.fields
                .insert(field.name().to_owned(), field_info.clone());
            let json_name = match field.json_name.as_deref() {
                Some(name) if !name.is_empty() => name.to_owned(),
                _ => lower_camel(field.name()),
            };
            info.fields.insert(json_name, field_info);
        }
        for nested in &message.nested_type {
            self.add_message(&full_name, nested);
        }
        for kind in &message.enum_type {
            self.add_enum(&full_name, kind);
        }
        self.messages.insert(full_name, info);
    }

    fn add_enum(&mut self, scope: &str, kind: &prost_types::EnumDescriptorProto) {
        let values = kind
            .value
            .iter()
            .map(|value| (value.name().to_owned(), value.number()))
            .collect();
        self.enums
            .insert(format!("{scope}.{}", kind.name()), values);
    }

    /// The wire bytes of one message (without its own key and length).
    fn message(&self, type_name: &str, value: &Value, path: &str) -> Result<Vec<u8>, String> {
        if let Some(bytes) = self.well_known(type_name, value, path)? {
            return Ok(bytes);
        }
        let info = self
            .messages
            .get(type_name)
            .ok_or_else(|| format!("{path}: unknown message type {type_name}"))?;
        let object = value
            .as_object()
            .ok_or_else(|| format!("{path}: expected an object for {type_name}, got {value}"))?;
        let mut out = Vec::new();
        for (key, item) in object {
            let Some(field) = info.fields.get(key) else {
                continue;
            };
            if item.is_null() {
                continue;
            }
            let path = format!("{path}.{key}");
            if field.repeated && self.is_map(field) {
                let entries = item
                    .as_object()
                    .ok_or_else(|| format!("{path}: expected an object (a map)"))?;
                for (map_key, map_value) in entries {
                    let entry = self.map_entry(field, map_key, map_value, &path)?;
                    put_len(&mut out, field.number, &entry);
                }
            } else if field.repeated {
                let items = item
                    .as_array()
                    .ok_or_else(|| format!("{path}: expected a list"))?;
                for (index, element) in items.iter().enumerate() {
                    self.field(&mut out, field, element, &format!("{path}[{index}]"))?;
                }
            } else {
                self.field(&mut out, field, item, &path)?;
            }
        }
        Ok(out)
    }

    fn is_map(&self, field: &FieldInfo) -> bool {
        field.kind == Type::Message
            && self
                .messages
                .get(&field.type_name)
                .is_some_and(|info| info.map_entry)
    }

    /// One `map<K, V>` entry: a message with the key as field 1 and the value as field 2.
    fn map_entry(
        &self,
        field: &FieldInfo,
        key: &str,
        value: &Value,
        path: &str,
    ) -> Result<Vec<u8>, String> {
        let entry = self
            .messages
            .get(&field.type_name)
            .ok_or_else(|| format!("{path}: unknown map entry {}", field.type_name))?;
        let (Some(key_field), Some(value_field)) =
            (entry.fields.get("key"), entry.fields.get("value"))
        else {
            return Err(format!("{path}: malformed map entry {}", field.type_name));
        };
        let mut out = Vec::new();
        // Map keys are strings in JSON whatever their type.
        let key_value = match key_field.kind {
            Type::String => Value::String(key.to_owned()),
            Type::Bool => Value::Bool(key == "true"),
            _ => Value::String(key.to_owned()),
        };
        self.field(&mut out, key_field, &key_value, path)?;
        self.field(&mut out, value_field, value, &format!("{path}[{key:?}]"))?;
        Ok(out)
    }

    /// Appends one field occurrence (key and value).
    fn field(
        &self,
        out: &mut Vec<u8>,
        field: &FieldInfo,
        value: &Value,
        path: &str,
    ) -> Result<(), String> {
        let number = field.number;
        match field.kind {
            Type::Double => {
                put_key(out, number, WIRE_64);
                out.extend_from_slice(&float(value, path)?.to_le_bytes());
            }
            Type::Float => {
                put_key(out, number, WIRE_32);
                #[expect(
                    clippy::cast_possible_truncation,
                    reason = "a float field holds an f32; the JSON number was one"
                )]
                let narrowed = float(value, path)? as f32;
                out.extend_from_slice(&narrowed.to_le_bytes());
            }
            Type::Int64 | Type::Int32 => {
                put_key(out, number, WIRE_VARINT);
                // Negative int32 values are sign-extended to ten bytes, like int64.
                put_varint(out, u64::from_ne_bytes(signed(value, path)?.to_ne_bytes()));
            }
            Type::Uint64 | Type::Uint32 => {
                put_key(out, number, WIRE_VARINT);
                put_varint(out, unsigned(value, path)?);
            }
            Type::Sint64 | Type::Sint32 => {
                put_key(out, number, WIRE_VARINT);
                let n = signed(value, path)?;
                put_varint(
                    out,
                    u64::from_ne_bytes(((n << 1) ^ (n >> 63)).to_ne_bytes()),
                );
            }
            Type::Fixed64 => {
                put_key(out, number, WIRE_64);
                out.extend_from_slice(&unsigned(value, path)?.to_le_bytes());
            }
            Type::Sfixed64 => {
                put_key(out, number, WIRE_64);
                out.extend_from_slice(&signed(value, path)?.to_le_bytes());
            }
            Type::Fixed32 => {
                put_key(out, number, WIRE_32);
                let n = u32::try_from(unsigned(value, path)?)
                    .map_err(|_| format!("{path}: {value} does not fit 32 bits"))?;
                out.extend_from_slice(&n.to_le_bytes());
            }
            Type::Sfixed32 => {
                put_key(out, number, WIRE_32);
                let n = i32::try_from(signed(value, path)?)
                    .map_err(|_| format!("{path}: {value} does not fit 32 bits"))?;
                out.extend_from_slice(&n.to_le_bytes());
            }
            Type::Bool => {
                put_key(out, number, WIRE_VARINT);
                let flag = match value {
                    Value::Bool(flag) => *flag,
                    Value::String(text) => text == "true",
                    _ => return Err(format!("{path}: expected true or false, got {value}")),
                };
                put_varint(out, u64::from(flag));
            }
            Type::String => {
                let text = value
                    .as_str()
                    .ok_or_else(|| format!("{path}: expected a string, got {value}"))?;
                put_len(out, number, text.as_bytes());
            }
            Type::Bytes => {
                let text = value
                    .as_str()
                    .ok_or_else(|| format!("{path}: expected base64 text, got {value}"))?;
                let bytes = base64(text).ok_or_else(|| format!("{path}: invalid base64"))?;
                put_len(out, number, &bytes);
            }
            Type::Enum => {
                let number_value = match value {
                    Value::String(name) => {
                        let known = self
                            .enums
                            .get(&field.type_name)
                            .and_then(|values| values.get(name));
                        match known {
                            Some(number_value) => i64::from(*number_value),
                            // An enum value this SDK does not know yet: left out.
                            None => return Ok(()),
                        }
                    }
                    other => signed(other, path)?,
                };
                put_key(out, number, WIRE_VARINT);
                put_varint(out, u64::from_ne_bytes(number_value.to_ne_bytes()));
            }
            Type::Message => {
                let bytes = self.message(&field.type_name, value, path)?;
                put_len(out, number, &bytes);
            }
            Type::Group => return Err(format!("{path}: proto2 groups are not supported")),
        }
        Ok(())
    }

    /// The well-known types, whose JSON is not an object of their fields.
    fn well_known(
        &self,
        type_name: &str,
        value: &Value,
        path: &str,
    ) -> Result<Option<Vec<u8>>, String> {
        let scalar = |kind: Type| -> Result<Option<Vec<u8>>, String> {
            let mut out = Vec::new();
            let field = FieldInfo {
                number: 1,
                kind,
                repeated: false,
                type_name: String::new(),
            };
            self.field(&mut out, &field, value, path)?;
            Ok(Some(out))
        };
        let text = || {
            value
                .as_str()
                .ok_or_else(|| format!("{path}: expected a string for {type_name}, got {value}"))
        };
        match type_name {
            ".google.protobuf.Timestamp" => {
                let (seconds, nanos) = timestamp(text()?)
                    .ok_or_else(|| format!("{path}: not an RFC 3339 timestamp: {value}"))?;
                Ok(Some(seconds_and_nanos(seconds, nanos)))
            }
            ".google.protobuf.Duration" => {
                let (seconds, nanos) = duration(text()?)
                    .ok_or_else(|| format!("{path}: not a duration like \"1.5s\": {value}"))?;
                Ok(Some(seconds_and_nanos(seconds, nanos)))
            }
            ".google.protobuf.FieldMask" => {
                let mut out = Vec::new();
                for part in text()?.split(',').filter(|part| !part.is_empty()) {
                    put_len(&mut out, 1, snake(part).as_bytes());
                }
                Ok(Some(out))
            }
            ".google.protobuf.Empty" => Ok(Some(Vec::new())),
            ".google.protobuf.Struct" => {
                let object = value
                    .as_object()
                    .ok_or_else(|| format!("{path}: expected an object for a Struct"))?;
                let mut out = Vec::new();
                for (key, item) in object {
                    let mut entry = Vec::new();
                    put_len(&mut entry, 1, key.as_bytes());
                    let item_bytes =
                        self.message(".google.protobuf.Value", item, &format!("{path}.{key}"))?;
                    put_len(&mut entry, 2, &item_bytes);
                    put_len(&mut out, 1, &entry);
                }
                Ok(Some(out))
            }
            ".google.protobuf.ListValue" => {
                let items = value
                    .as_array()
                    .ok_or_else(|| format!("{path}: expected a list for a ListValue"))?;
                let mut out = Vec::new();
                for (index, item) in items.iter().enumerate() {
                    let item_bytes =
                        self.message(".google.protobuf.Value", item, &format!("{path}[{index}]"))?;
                    put_len(&mut out, 1, &item_bytes);
                }
                Ok(Some(out))
            }
            ".google.protobuf.Value" => {
                let mut out = Vec::new();
                match value {
                    Value::Null => {
                        put_key(&mut out, 1, WIRE_VARINT);
                        put_varint(&mut out, 0);
                    }
                    Value::Number(_) => {
                        put_key(&mut out, 2, WIRE_64);
                        out.extend_from_slice(&float(value, path)?.to_le_bytes());
                    }
                    Value::String(text) => put_len(&mut out, 3, text.as_bytes()),
                    Value::Bool(flag) => {
                        put_key(&mut out, 4, WIRE_VARINT);
                        put_varint(&mut out, u64::from(*flag));
                    }
                    Value::Object(_) => {
                        let bytes = self.message(".google.protobuf.Struct", value, path)?;
                        put_len(&mut out, 5, &bytes);
                    }
                    Value::Array(_) => {
                        let bytes = self.message(".google.protobuf.ListValue", value, path)?;
                        put_len(&mut out, 6, &bytes);
                    }
                }
                Ok(Some(out))
            }
            ".google.protobuf.DoubleValue" => scalar(Type::Double),
            ".google.protobuf.FloatValue" => scalar(Type::Float),
            ".google.protobuf.Int64Value" => scalar(Type::Int64),
            ".google.protobuf.UInt64Value" => scalar(Type::Uint64),
            ".google.protobuf.Int32Value" => scalar(Type::Int32),
            ".google.protobuf.UInt32Value" => scalar(Type::Uint32),
            ".google.protobuf.BoolValue" => scalar(Type::Bool),
            ".google.protobuf.StringValue" => scalar(Type::String),
            ".google.protobuf.BytesValue" => scalar(Type::Bytes),
            ".google.protobuf.Any" => Err(format!(
                "{path}: google.protobuf.Any is not supported in histories"
            )),
            _ => Ok(None),
        }
    }
}

/// Decodes a history written as protobuf JSON.
pub(crate) fn decode_history(value: &Value) -> Result<History, String> {
    let schema = schema()?;
    let bytes = schema.message(HISTORY, value, "history")?;
    History::decode(bytes.as_slice()).map_err(|error| format!("decoding the events: {error}"))
}

const WIRE_VARINT: u8 = 0;
const WIRE_64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_32: u8 = 5;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push((value & 0x7f) as u8);
}

fn put_key(out: &mut Vec<u8>, number: u32, wire: u8) {
    put_varint(out, (u64::from(number) << 3) | u64::from(wire));
}

fn put_len(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_key(out, number, WIRE_LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn seconds_and_nanos(seconds: i64, nanos: i32) -> Vec<u8> {
    let mut out = Vec::new();
    if seconds != 0 {
        put_key(&mut out, 1, WIRE_VARINT);
        put_varint(&mut out, u64::from_ne_bytes(seconds.to_ne_bytes()));
    }
    if nanos != 0 {
        put_key(&mut out, 2, WIRE_VARINT);
        put_varint(&mut out, u64::from_ne_bytes(i64::from(nanos).to_ne_bytes()));
    }
    out
}

/// A JSON number or a decimal string (64-bit integers are strings in protobuf JSON).
fn signed(value: &Value, path: &str) -> Result<i64, String> {
    let parsed = match value {
        Value::Number(number) => number.as_i64().or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0)
                .map(|f| f as i64)
        }),
        Value::String(text) => text.parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| format!("{path}: expected an integer, got {value}"))
}

fn unsigned(value: &Value, path: &str) -> Result<u64, String> {
    let parsed = match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| format!("{path}: expected an unsigned integer, got {value}"))
}

fn float(value: &Value, path: &str) -> Result<f64, String> {
    let parsed = match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => match text.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            other => other.parse().ok(),
        },
        _ => None,
    };
    parsed.ok_or_else(|| format!("{path}: expected a number, got {value}"))
}

/// `fooBar` from `foo_bar`: the JSON name protoc derives when it records none.
fn lower_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `foo_bar` from `fooBar` (field mask paths).
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Standard or URL-safe base64, padded or not.
fn base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0u32;
    for c in text.bytes() {
        let sextet = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            b'\n' | b'\r' | b' ' => continue,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// `2024-05-01T12:00:00.123456789Z` or with an offset: seconds and nanos since the epoch.
fn timestamp(text: &str) -> Option<(i64, i32)> {
    let bytes = text.as_bytes();
    let digits = |from: usize, count: usize| -> Option<i64> {
        let part = text.get(from..from + count)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' {
        return None;
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') || bytes[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0i32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let count = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if count == 0 || count > 9 {
            return None;
        }
        let scaled = format!("{:0<9}", &fraction[..count]);
        nanos = scaled.parse().ok()?;
        rest = &fraction[count..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (hours, minutes) = rest.get(1..)?.split_once(':')?;
            sign * (hours.parse::<i64>().ok()? * 3600 + minutes.parse::<i64>().ok()? * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some((seconds, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `1.5s`, `-0.25s`, `0s`: seconds and nanos of the same sign.
fn duration(text: &str) -> Option<(i64, i32)> {
    let number = text.strip_suffix('s')?;
    let (negative, number) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    let nanos: i32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    Some(if negative {
        (-seconds, -nanos)
    } else {
        (seconds, nanos)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_durations_parse() {
        assert_eq!(timestamp("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(
            timestamp("2026-11-22T08:34:16.559154709Z"),
            Some((1_795_336_456, 559_154_709))
        );
        assert_eq!(
            timestamp("2000-03-01T01:00:00+01:00"),
            Some((951_868_800, 0))
        );
        assert_eq!(timestamp("1969-12-31T23:59:59.5Z"), Some((-1, 500_000_000)));
        assert_eq!(timestamp("not a time"), None);
        assert_eq!(duration("10s"), Some((10, 0)));
        assert_eq!(duration("0.000000001s"), Some((0, 1)));
        assert_eq!(duration("-1.5s"), Some((-1, -500_000_000)));
        assert_eq!(duration("10"), None);
    }

    #[test]
    fn base64_in_both_alphabets() {
        assert_eq!(
            base64("anNvbi9wbGFpbg==").as_deref(),
            Some(&b"json/plain"[..])
        );
        assert_eq!(base64("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        assert_eq!(base64("a*b"), None);
    }

    #[test]
    fn names_convert_both_ways() {
        assert_eq!(lower_camel("event_type"), "eventType");
        assert_eq!(snake("timeSkippingConfig"), "time_skipping_config");
    }

    #[test]
    fn a_cli_history_decodes_into_the_sdk_types() {
        let json = serde_json::json!({"events": [{
            "eventId": "1",
            "eventTime": "2026-11-22T08:34:16.559154709Z",
            "eventType": "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
            "taskId": "1048587",
            "someFieldFromTheFuture": {"x": 1},
            "workflowExecutionStartedEventAttributes": {
                "workflowType": {"name": "createServiceWorkflow"},
                "taskQueue": {"name": "tq", "kind": "TASK_QUEUE_KIND_NORMAL"},
                "input": {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="},
                                        "data": "eyJuYW1lIjoieCJ9"}]},
                "workflowTaskTimeout": "10s",
                "attempt": 1,
                "header": {},
                "workflowId": "w1"
            }
        }]});
        let history = decode_history(&json).unwrap();
        let event = &history.events[0];
        assert_eq!(event.event_id, 1);
        assert_eq!(event.task_id, 1_048_587);
        assert_eq!(event.event_type, 1);
        let Some(temporalio_common::protos::temporal::api::history::v1::history_event::Attributes::WorkflowExecutionStartedEventAttributes(started)) = &event.attributes else {
            panic!("{event:?}");
        };
        assert_eq!(
            started.workflow_type.as_ref().unwrap().name,
            "createServiceWorkflow"
        );
        assert_eq!(started.workflow_id, "w1");
        assert_eq!(started.task_queue.as_ref().unwrap().kind, 1);
        let payload = &started.input.as_ref().unwrap().payloads[0];
        assert_eq!(payload.metadata["encoding"], b"json/plain");
        assert_eq!(payload.data, br#"{"name":"x"}"#);
        let timeout = started.workflow_task_timeout.as_ref().unwrap();
        assert_eq!((timeout.seconds, timeout.nanos), (10, 0));
    }
}
