//! Upstream base URLs: what `url` keys (and remote-write targets) may be.

use http::uri::{Authority, Scheme};
use http::Uri;

/// Why a base URL is refused. Messages never echo the URL: a careless one
/// could carry credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    #[error("relative URL without a base")]
    Relative,
    #[error("invalid URL")]
    Invalid,
    #[error("unsupported scheme {0} (use http or https)")]
    Scheme(Scheme),
    #[error("URL has no host")]
    NoHost,
    #[error("credentials in the URL are not allowed: use user and token")]
    Credentials,
    #[error("URL must not have a query or fragment")]
    QueryOrFragment,
    #[error("URL path must not contain . or .. segments")]
    DotSegment,
}

/// Parse an upstream base URL: scheme, authority and the path without its
/// trailing `/`.
pub fn parse_base_url(url: &str) -> Result<(Scheme, Authority, String), BaseUrlError> {
    if !url.contains("://") {
        return Err(BaseUrlError::Relative);
    }
    let uri: Uri = url.parse().map_err(|_| BaseUrlError::Invalid)?;
    let scheme = uri.scheme().cloned().ok_or(BaseUrlError::Relative)?;
    if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
        return Err(BaseUrlError::Scheme(scheme));
    }
    let authority = uri.authority().cloned().ok_or(BaseUrlError::NoHost)?;
    if authority.as_str().contains('@') {
        return Err(BaseUrlError::Credentials);
    }
    if authority.host().is_empty() {
        return Err(BaseUrlError::NoHost);
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(BaseUrlError::QueryOrFragment);
    }
    let base = uri.path().trim_end_matches('/').to_string();
    if has_dot_segment(&base) {
        return Err(BaseUrlError::DotSegment);
    }
    Ok((scheme, authority, base))
}

/// A `.` or `..` segment in a URL path.
pub(super) fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|s| s == "." || s == "..")
}
