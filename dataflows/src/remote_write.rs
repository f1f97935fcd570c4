//! Prometheus remote write 1.0's wire format: the `WriteRequest` protobuf (declared with prost's
//! derive: no build step) and its snappy block compression. Pure data and codecs: the job's
//! receiver (`incidentflow::ingest::remote_write`) decodes it, the load generator and the
//! benchmark encode it.

use prost::Message;

/// The largest a request may grow to once decompressed.
pub const MAX_DECODED_BYTES: usize = 128 << 20;

/// The remote write 1.0 messages, the fields the job reads (prost skips the others: exemplars,
/// native histograms, metadata).
pub mod proto {
    /// `prometheus.WriteRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }

    /// `prometheus.TimeSeries`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }

    /// `prometheus.Label`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `prometheus.Sample`: a value at milliseconds since the epoch.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }
}

/// The bits of Prometheus's stale marker (a NaN that says "this series ended").
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// A request body: snappy block decompression, then the protobuf.
pub fn decode(body: &[u8]) -> Result<proto::WriteRequest, String> {
    // snap's errors say "snappy: ..." themselves.
    let size = snap::raw::decompress_len(body).map_err(|e| e.to_string())?;
    if size > MAX_DECODED_BYTES {
        return Err(format!(
            "snappy: the body would decompress to {size} bytes, more than the {MAX_DECODED_BYTES} allowed"
        ));
    }
    let bytes = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| e.to_string())?;
    proto::WriteRequest::decode(bytes.as_slice()).map_err(|e| format!("protobuf: {e}"))
}

/// A request body as a sender makes it: the protobuf, snappy block compressed.
pub fn encode(request: &proto::WriteRequest) -> Vec<u8> {
    // Compression of a buffer into a fresh one cannot fail but on an input over 4 GiB.
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap_or_default()
}
