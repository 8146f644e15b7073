//! The protobuf request of a batch of spans, written straight from the records.
//!
//! The OTLP messages in [`wire`](super::wire) are what prost would encode, but building a
//! [`Span`](super::wire::Span) per record copies every string into it, and prost computes
//! each nested message's length again at every level it is nested in (an attribute's value
//! inside its key-value inside the span inside the request). Here each record's fields go
//! into the body once, lengths computed by arithmetic; the bytes are prost's encoding of the
//! same [`span`](super::span) exactly, which the tests hold it to.

use prost::encoding::{WireType, encoded_len_varint, key_len, message};

use super::wire::{Resource, Scalar, Scope};
use super::{
    SPAN_KIND_CLIENT, SPAN_NAME_PREFIX, attributes, end_ns, span_id, start_ns, status_code,
    status_message, trace_id,
};
use crate::record::InvocationMetric;

/// Buffers reused from one request to the next.
#[derive(Debug, Default)]
pub(super) struct TracesEncoder {
    /// The request's envelope, written after the spans (it holds their length).
    envelope: Vec<u8>,
    /// A failed span's status message.
    message: String,
}

impl TracesEncoder {
    /// Makes `body[start..]` the `ExportTraceServiceRequest` of `records` (one resource,
    /// one scope, one span per record) and returns `start`.
    ///
    /// The spans are written once, straight into `body`, after room for the envelope, which
    /// is written last (it holds their total length) into the end of that room.
    pub(super) fn encode(
        &mut self,
        resource: &Resource,
        scope: &Scope,
        records: &[InvocationMetric],
        body: &mut Vec<u8>,
    ) -> usize {
        let (resource_len, scope_len) = (
            message::encoded_len(1, resource),
            message::encoded_len(1, scope),
        );
        // Two keys and two lengths of at most 10 bytes each, the resource and the scope.
        let room = 2 * (1 + 10) + resource_len + scope_len;
        body.clear();
        body.resize(room, 0);
        for m in records {
            self.append_span(m, body);
        }
        let scope_spans = scope_len + (body.len() - room);
        let resource_spans =
            resource_len + key_len(2) + encoded_len_varint(scope_spans as u64) + scope_spans;
        let envelope = &mut self.envelope;
        envelope.clear();
        key(1, WireType::LengthDelimited, envelope); // TracesRequest.resource_spans
        varint(resource_spans as u64, envelope);
        message::encode(1, resource, envelope); // ResourceSpans.resource
        key(2, WireType::LengthDelimited, envelope); // ResourceSpans.scope_spans
        varint(scope_spans as u64, envelope);
        message::encode(1, scope, envelope); // ScopeSpans.scope
        let start = room - envelope.len();
        body[start..room].copy_from_slice(envelope);
        start
    }

    /// Appends `m`'s span to `out` as a `ScopeSpans.spans` field: its fields in field order,
    /// defaults left out (as proto3 encoders do).
    fn append_span(&mut self, m: &InvocationMetric, out: &mut Vec<u8>) {
        key(2, WireType::LengthDelimited, out); // ScopeSpans.spans
        // The span's length is known once it is written: two bytes are kept for it, the
        // width of any length from 128 to 16,383 bytes, which every span of a valid record
        // has; another length moves the span to fit.
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        bytes_field(1, &trace_id(m).to_be_bytes(), out);
        bytes_field(2, &span_id(m).to_be_bytes(), out);
        key(5, WireType::LengthDelimited, out); // name
        varint((SPAN_NAME_PREFIX.len() + m.agent.len()) as u64, out);
        out.extend_from_slice(SPAN_NAME_PREFIX.as_bytes());
        out.extend_from_slice(m.agent.as_bytes());
        key(6, WireType::Varint, out); // kind
        varint(SPAN_KIND_CLIENT as u64, out);
        for (tag, nanos) in [(7, start_ns(m)), (8, end_ns(m))] {
            if nanos != 0 {
                key(tag, WireType::SixtyFourBit, out);
                out.extend_from_slice(&nanos.to_le_bytes());
            }
        }
        attributes(m, |name, value| {
            let value_len = any_value_len(&value);
            let key_value_len = key_len(1)
                + encoded_len_varint(name.len() as u64)
                + name.len()
                + key_len(2)
                + encoded_len_varint(value_len as u64)
                + value_len;
            key(9, WireType::LengthDelimited, out); // attributes
            varint(key_value_len as u64, out);
            bytes_field(1, name.as_bytes(), out); // KeyValue.key
            key(2, WireType::LengthDelimited, out); // KeyValue.value
            varint(value_len as u64, out);
            any_value(&value, out);
        });
        // Status, always present: message (2) when failed, code (3) when not UNSET.
        status_message(m, &mut self.message);
        let code = status_code(m);
        let message_len = if self.message.is_empty() {
            0
        } else {
            key_len(2) + encoded_len_varint(self.message.len() as u64) + self.message.len()
        };
        let code_len = if code == 0 {
            0
        } else {
            key_len(3) + encoded_len_varint(code as u64)
        };
        key(15, WireType::LengthDelimited, out);
        varint((message_len + code_len) as u64, out);
        if message_len > 0 {
            bytes_field(2, self.message.as_bytes(), out);
        }
        if code != 0 {
            key(3, WireType::Varint, out);
            varint(code as u64, out);
        }
        let len = out.len() - (at + 2);
        if (128..16_384).contains(&len) {
            out[at] = len as u8 | 0x80;
            out[at + 1] = (len >> 7) as u8;
        } else {
            let mut prefix = Vec::with_capacity(10);
            varint(len as u64, &mut prefix);
            out.splice(at..at + 2, prefix);
        }
    }
}

/// A length-delimited field, left out when empty (proto3's default).
fn bytes_field(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    if !bytes.is_empty() {
        key(tag, WireType::LengthDelimited, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }
}

/// The encoded length of an `AnyValue` holding `value` (a oneof: written even when zero).
fn any_value_len(value: &Scalar<'_>) -> usize {
    key_len(1)
        + match value {
            Scalar::Str(s) => encoded_len_varint(s.len() as u64) + s.len(),
            Scalar::Bool(_) => 1,
            Scalar::Int(n) => encoded_len_varint(*n as u64),
            Scalar::Double(_) => 8,
        }
}

/// An `AnyValue` holding `value`: string 1, bool 2, int 3, double 4.
fn any_value(value: &Scalar<'_>, out: &mut Vec<u8>) {
    match value {
        Scalar::Str(s) => {
            key(1, WireType::LengthDelimited, out);
            varint(s.len() as u64, out);
            out.extend_from_slice(s.as_bytes());
        }
        Scalar::Bool(b) => {
            key(2, WireType::Varint, out);
            out.push(u8::from(*b));
        }
        Scalar::Int(n) => {
            key(3, WireType::Varint, out);
            varint(*n as u64, out);
        }
        Scalar::Double(x) => {
            key(4, WireType::SixtyFourBit, out);
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
}

/// A field's key. Every field here has a tag below 16: one byte.
fn key(tag: u32, wire_type: WireType, out: &mut Vec<u8>) {
    debug_assert!(tag < 16);
    out.push((tag << 3) as u8 | wire_type as u8);
}

/// A varint; most here (lengths of names and attributes, small numbers) fit in one byte,
/// written without prost's general loop.
fn varint(value: u64, out: &mut Vec<u8>) {
    if value < 0x80 {
        out.push(value as u8);
    } else {
        prost::encoding::encode_varint(value, out);
    }
}
