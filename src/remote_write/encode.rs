//! Wire formats. Remote write 1.0: a protobuf `WriteRequest` compressed with
//! snappy's block format (not the framed one). Pushgateway: the text
//! exposition format without timestamps, which it rejects.

use std::fmt::Write as _;

use super::series::Series;

/// `prometheus.WriteRequest` (remote write 1.0), fields as in
/// prometheus/prompb/remote.proto and types.proto.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

pub const REMOTE_WRITE_HEADERS: &[(&str, &str)] = &[
    ("content-encoding", "snappy"),
    ("content-type", "application/x-protobuf"),
    ("x-prometheus-remote-write-version", "0.1.0"),
];

pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// A snappy-compressed WriteRequest. Labels come sorted by name (the map
/// is ordered), as receivers require.
pub fn remote_write_body(series: &[Series]) -> Vec<u8> {
    let req = WriteRequest {
        timeseries: series
            .iter()
            .map(|s| TimeSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|(name, value)| Label {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                samples: vec![Sample {
                    value: s.value,
                    timestamp: s.timestamp_ms,
                }],
            })
            .collect(),
    };
    let raw = prost::Message::encode_to_vec(&req);
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy block compression of an in-memory buffer")
}

/// The text format, one `# TYPE <name> untyped` per metric name (series
/// are grouped by name), no timestamps. Series without a name are skipped.
pub fn exposition_text(series: &[Series]) -> String {
    let mut by_name: Vec<&Series> = series
        .iter()
        .filter(|s| s.labels.contains_key("__name__"))
        .collect();
    by_name.sort_by(|a, b| a.labels["__name__"].cmp(&b.labels["__name__"]));
    let mut out = String::with_capacity(by_name.len() * 96);
    let mut current = "";
    for s in by_name {
        let name = s.labels["__name__"].as_str();
        if name != current {
            let _ = writeln!(out, "# TYPE {name} untyped");
            current = name;
        }
        out.push_str(name);
        let mut first = true;
        for (k, v) in s.labels.iter().filter(|(k, _)| k.as_str() != "__name__") {
            out.push(if first { '{' } else { ',' });
            first = false;
            let _ = write!(out, "{k}=\"");
            escape_label_value(v, &mut out);
            out.push('"');
        }
        if !first {
            out.push('}');
        }
        out.push(' ');
        format_value(s.value, &mut out);
        out.push('\n');
    }
    out
}

fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn format_value(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote_write::series::Labels;

    fn series(name: &str, pairs: &[(&str, &str)], value: f64, ts: i64) -> Series {
        let mut labels: Labels = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.insert("__name__".into(), name.into());
        Series {
            labels,
            value,
            timestamp_ms: ts,
        }
    }

    #[test]
    fn remote_write_round_trips() {
        let input = vec![
            series(
                "up",
                &[("namespace", "t"), ("Zeta", "1")],
                1.0,
                1_700_000_000_123,
            ),
            series("x", &[("a", "b")], f64::NAN, -5),
        ];
        let body = remote_write_body(&input);
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let decoded: WriteRequest = prost::Message::decode(raw.as_slice()).unwrap();
        assert_eq!(decoded.timeseries.len(), 2);
        let first = &decoded.timeseries[0];
        let names: Vec<&str> = first.labels.iter().map(|l| l.name.as_str()).collect();
        // Byte order: uppercase sorts before `__name__`.
        assert_eq!(names, vec!["Zeta", "__name__", "namespace"]);
        assert_eq!(
            first.samples,
            vec![Sample {
                value: 1.0,
                timestamp: 1_700_000_000_123
            }]
        );
        assert!(decoded.timeseries[1].samples[0].value.is_nan());
        // Snappy's framed format starts with a stream identifier chunk.
        assert_ne!(body.first(), Some(&0xff));
    }

    #[test]
    fn text_format_groups_escapes_and_has_no_timestamps() {
        let input = vec![
            series("b_total", &[("path", "a\"b\\c\nd")], 2.5, 99),
            series("a", &[], f64::INFINITY, 99),
            series("b_total", &[("path", "x")], 1e21, 99),
        ];
        let text = exposition_text(&input);
        assert_eq!(
            text,
            "# TYPE a untyped\na +Inf\n# TYPE b_total untyped\nb_total{path=\"a\\\"b\\\\c\\nd\"} 2.5\nb_total{path=\"x\"} 1e21\n"
        );
    }
}
