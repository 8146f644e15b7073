//! The part of OTLP v1 that the exporter sends, as one set of types with both encodings:
//! protobuf (`prost`, the field numbers of `opentelemetry/proto/*/v1/*.proto`) for
//! `http/protobuf`, and the OTLP/JSON mapping (`serde`: lowerCamelCase names, trace and span
//! ids in hex, 64-bit integers as strings, enums as numbers) for `http/json`. Written out
//! here rather than generated: the exporter needs a dozen messages, and a build-time protobuf
//! compiler would be a dependency of every build of the CLI.

use serde::Serialize;

/// `ExportTraceServiceRequest`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TracesRequest {
    /// Spans grouped by resource.
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `ResourceSpans`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSpans {
    /// Who sent the spans.
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    /// Spans grouped by instrumentation scope.
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
}

/// `ScopeSpans`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeSpans {
    /// The instrumentation scope: this project.
    #[prost(message, optional, tag = "1")]
    pub scope: Option<Scope>,
    /// The spans.
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
}

/// `Resource`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Resource {
    /// Resource attributes (`service.name`, …).
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

/// `InstrumentationScope`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Scope {
    /// Scope name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Scope version.
    #[prost(string, tag = "2")]
    pub version: String,
}

/// `Span`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    /// 16 bytes.
    #[prost(bytes = "vec", tag = "1")]
    #[serde(serialize_with = "hex")]
    pub trace_id: Vec<u8>,
    /// 8 bytes.
    #[prost(bytes = "vec", tag = "2")]
    #[serde(serialize_with = "hex")]
    pub span_id: Vec<u8>,
    /// Span name.
    #[prost(string, tag = "5")]
    pub name: String,
    /// `SpanKind`: 3 is CLIENT.
    #[prost(int32, tag = "6")]
    pub kind: i32,
    /// Start, nanoseconds since the Unix epoch.
    #[prost(fixed64, tag = "7")]
    #[serde(serialize_with = "decimal")]
    pub start_time_unix_nano: u64,
    /// End, nanoseconds since the Unix epoch.
    #[prost(fixed64, tag = "8")]
    #[serde(serialize_with = "decimal")]
    pub end_time_unix_nano: u64,
    /// Span attributes.
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    /// Outcome.
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

/// `Status`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Status {
    /// Why it failed.
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// `StatusCode`: 0 UNSET, 1 OK, 2 ERROR.
    #[prost(int32, tag = "3")]
    pub code: i32,
}

/// `KeyValue`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct KeyValue {
    /// Attribute name.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Attribute value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// `AnyValue`, for the kinds the exporter sends.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct AnyValue {
    /// The value.
    #[prost(oneof = "Value", tags = "1, 2, 3, 4")]
    #[serde(flatten)]
    pub value: Option<Value>,
}

/// `AnyValue.value`.
#[derive(Clone, PartialEq, prost::Oneof, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Value {
    /// A string.
    #[prost(string, tag = "1")]
    StringValue(String),
    /// A boolean.
    #[prost(bool, tag = "2")]
    BoolValue(bool),
    /// A 64-bit integer (a string in OTLP/JSON).
    #[prost(int64, tag = "3")]
    IntValue(#[serde(serialize_with = "decimal")] i64),
    /// A double.
    #[prost(double, tag = "4")]
    DoubleValue(f64),
}

impl KeyValue {
    /// A string attribute.
    pub fn string(key: &str, value: &str) -> Self {
        Self::of(key, Value::StringValue(value.to_owned()))
    }

    /// An integer attribute.
    pub fn int(key: &str, value: impl Into<i64>) -> Self {
        Self::of(key, Value::IntValue(value.into()))
    }

    /// An integer attribute from an unsigned count (saturating: counts are bounded far below).
    pub fn count(key: &str, value: u64) -> Self {
        Self::int(key, i64::try_from(value).unwrap_or(i64::MAX))
    }

    /// A boolean attribute.
    pub fn bool(key: &str, value: bool) -> Self {
        Self::of(key, Value::BoolValue(value))
    }

    /// A double attribute.
    pub fn double(key: &str, value: f64) -> Self {
        Self::of(key, Value::DoubleValue(value))
    }

    fn of(key: &str, value: Value) -> Self {
        Self {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
        }
    }
}

/// `ExportTraceServiceResponse` and `ExportMetricsServiceResponse`: the same shape.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportResponse {
    /// Set when the receiver accepted the request but dropped part of it.
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<PartialSuccess>,
}

/// `ExportTracePartialSuccess` / `ExportMetricsPartialSuccess`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PartialSuccess {
    /// Spans (or data points) dropped.
    #[prost(int64, tag = "1")]
    pub rejected: i64,
    /// Why.
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// An attribute value borrowed from a record, for [`Attributes`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scalar<'a> {
    Str(&'a str),
    Int(i64),
    Double(f64),
    Bool(bool),
}

/// Writes a span's attributes into a list kept from the previous span, refilling its
/// strings in place: after the first batch, a span's attributes cost no allocation (they
/// were a quarter of the exporter's CPU time).
pub(crate) struct Attributes<'a> {
    list: &'a mut Vec<KeyValue>,
    len: usize,
}

impl<'a> Attributes<'a> {
    pub(crate) fn over(list: &'a mut Vec<KeyValue>) -> Self {
        Self { list, len: 0 }
    }

    pub(crate) fn put(&mut self, key: &str, value: Scalar<'_>) {
        if self.len == self.list.len() {
            self.list.push(KeyValue::default());
        }
        let slot = &mut self.list[self.len];
        self.len += 1;
        slot.key.clear();
        slot.key.push_str(key);
        let any = slot.value.get_or_insert_with(AnyValue::default);
        match (&mut any.value, value) {
            (Some(Value::StringValue(s)), Scalar::Str(new)) => {
                s.clear();
                s.push_str(new);
            }
            (slot, Scalar::Str(new)) => *slot = Some(Value::StringValue(new.to_owned())),
            (slot, Scalar::Int(n)) => *slot = Some(Value::IntValue(n)),
            (slot, Scalar::Double(x)) => *slot = Some(Value::DoubleValue(x)),
            (slot, Scalar::Bool(b)) => *slot = Some(Value::BoolValue(b)),
        }
    }
}

impl Drop for Attributes<'_> {
    fn drop(&mut self) {
        self.list.truncate(self.len);
    }
}

/// `ExportMetricsServiceRequest`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsRequest {
    /// Metrics grouped by resource.
    #[prost(message, repeated, tag = "1")]
    pub resource_metrics: Vec<ResourceMetrics>,
}

/// `ResourceMetrics`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetrics {
    /// Who sent the metrics.
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    /// Metrics grouped by instrumentation scope.
    #[prost(message, repeated, tag = "2")]
    pub scope_metrics: Vec<ScopeMetrics>,
}

/// `ScopeMetrics`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeMetrics {
    /// The instrumentation scope: this project.
    #[prost(message, optional, tag = "1")]
    pub scope: Option<Scope>,
    /// The metrics.
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
}

/// `Metric`, for the kinds the exporter sends.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Metric {
    /// Instrument name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// What it measures.
    #[prost(string, tag = "2")]
    pub description: String,
    /// UCUM unit.
    #[prost(string, tag = "3")]
    pub unit: String,
    /// The points.
    #[prost(oneof = "Data", tags = "7, 9")]
    #[serde(flatten)]
    pub data: Option<Data>,
}

/// `Metric.data`.
#[derive(Clone, PartialEq, prost::Oneof, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Data {
    /// A monotonic counter.
    #[prost(message, tag = "7")]
    Sum(Sum),
    /// A histogram with explicit bounds.
    #[prost(message, tag = "9")]
    Histogram(Histogram),
}

/// `Sum`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sum {
    /// One point per attribute set.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
    /// `AggregationTemporality`: 2 is CUMULATIVE.
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
    /// Only ever grows.
    #[prost(bool, tag = "3")]
    pub is_monotonic: bool,
}

/// `Histogram`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Histogram {
    /// One point per attribute set.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<HistogramDataPoint>,
    /// `AggregationTemporality`: 2 is CUMULATIVE.
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
}

/// `NumberDataPoint`, as a double or an integer.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NumberDataPoint {
    /// Series attributes.
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
    /// When the series started counting.
    #[prost(fixed64, tag = "2")]
    #[serde(serialize_with = "decimal")]
    pub start_time_unix_nano: u64,
    /// The point's time.
    #[prost(fixed64, tag = "3")]
    #[serde(serialize_with = "decimal")]
    pub time_unix_nano: u64,
    /// The value.
    #[prost(oneof = "Number", tags = "4, 6")]
    #[serde(flatten)]
    pub value: Option<Number>,
}

/// `NumberDataPoint.value`.
#[derive(Clone, PartialEq, prost::Oneof, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Number {
    /// A double.
    #[prost(double, tag = "4")]
    AsDouble(f64),
    /// An integer. A JSON number in OTLP/JSON, which receivers must accept as well as the
    /// canonical string (and some read only the number); the counts sent here stay far
    /// below 2^53, where a number is exact everywhere.
    #[prost(sfixed64, tag = "6")]
    AsInt(i64),
}

/// `HistogramDataPoint`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistogramDataPoint {
    /// Series attributes.
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    /// When the series started counting.
    #[prost(fixed64, tag = "2")]
    #[serde(serialize_with = "decimal")]
    pub start_time_unix_nano: u64,
    /// The point's time.
    #[prost(fixed64, tag = "3")]
    #[serde(serialize_with = "decimal")]
    pub time_unix_nano: u64,
    /// Values counted.
    #[prost(fixed64, tag = "4")]
    #[serde(serialize_with = "decimal")]
    pub count: u64,
    /// Their sum.
    #[prost(double, optional, tag = "5")]
    pub sum: Option<f64>,
    /// Values per bucket: one more than `explicit_bounds`.
    #[prost(fixed64, repeated, tag = "6")]
    #[serde(serialize_with = "decimals")]
    pub bucket_counts: Vec<u64>,
    /// Upper bounds of every bucket but the last (inclusive).
    #[prost(double, repeated, tag = "7")]
    pub explicit_bounds: Vec<f64>,
    /// Smallest value.
    #[prost(double, optional, tag = "11")]
    pub min: Option<f64>,
    /// Largest value.
    #[prost(double, optional, tag = "12")]
    pub max: Option<f64>,
}

fn hex<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    s.serialize_str(&out)
}

fn decimal<S: serde::Serializer, N: std::fmt::Display>(n: &N, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(n)
}

fn decimals<S: serde::Serializer>(list: &[u64], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(list.iter().map(u64::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn json_follows_the_otlp_json_mapping() {
        let span = Span {
            trace_id: vec![0xab; 16],
            span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
            name: "n".into(),
            kind: 3,
            start_time_unix_nano: 1_795_773_600_125_000_000,
            end_time_unix_nano: 2,
            attributes: vec![KeyValue::int("i", -5), KeyValue::bool("b", true)],
            status: Some(Status {
                message: String::new(),
                code: 0,
            }),
        };
        let json = serde_json::to_value(&span).unwrap();
        assert_eq!(json["traceId"], "abababababababababababababababab");
        assert_eq!(json["spanId"], "0102030405060708");
        assert_eq!(json["startTimeUnixNano"], "1795773600125000000");
        assert_eq!(json["attributes"][0]["value"]["intValue"], "-5");
        assert_eq!(json["attributes"][1]["value"]["boolValue"], true);
        assert_eq!(json["status"], serde_json::json!({ "code": 0 }));
        let metric = Metric {
            name: "m".into(),
            description: String::new(),
            unit: "s".into(),
            data: Some(Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    attributes: vec![],
                    start_time_unix_nano: 1,
                    time_unix_nano: 2,
                    value: Some(Number::AsInt(7)),
                }],
                aggregation_temporality: 2,
                is_monotonic: true,
            })),
        };
        let json = serde_json::to_value(&metric).unwrap();
        assert_eq!(json["sum"]["dataPoints"][0]["asInt"], 7);
        assert_eq!(json["sum"]["isMonotonic"], true);
    }

    #[test]
    fn protobuf_uses_the_otlp_field_numbers() {
        // A span with only a name: field 5, length-delimited (tag byte 5 << 3 | 2 = 0x2a).
        let span = Span {
            name: "ab".into(),
            ..Span::default()
        };
        assert_eq!(span.encode_to_vec(), [0x2a, 2, b'a', b'b']);
        // fixed64 start time: field 7, wire type 1 (0x39), eight little-endian bytes.
        let span = Span {
            start_time_unix_nano: 1,
            ..Span::default()
        };
        assert_eq!(span.encode_to_vec(), [0x39, 1, 0, 0, 0, 0, 0, 0, 0]);
        // A histogram point's count: field 4, fixed64 (0x21).
        let point = HistogramDataPoint {
            count: 2,
            ..HistogramDataPoint::default()
        };
        assert_eq!(point.encode_to_vec(), [0x21, 2, 0, 0, 0, 0, 0, 0, 0]);
    }
}
