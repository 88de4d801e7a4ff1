//! tracing-subscriber setup: JSON lines by default, text for people.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The `log` setting as a filter. Span field values match literally, never
/// as regular expressions: tracing-subscriber compiles those to a dense DFA,
/// which a short pattern can make take seconds and unbounded memory (a
/// 120-byte `LGTM_LOG` took 14.8 s and 836 MB; found by the env_and_toml
/// fuzz target), and
/// the proxy's spans carry no fields worth a pattern. Each comma-separated
/// directive is trimmed first: tracing-subscriber 0.3 slices the untrimmed
/// directive at the trimmed one's offsets and panics when leading
/// whitespace puts the cut inside a multi-byte character.
pub fn filter(log: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let trimmed = log.split(',').map(str::trim).collect::<Vec<_>>().join(",");
    EnvFilter::builder().with_regex(false).parse(trimmed)
}

/// Install the global subscriber. The filter was validated with the config.
pub fn init(log: &str, format: LogFormat) {
    let filter = filter(log).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder
            .with_target(false)
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
    };
}
