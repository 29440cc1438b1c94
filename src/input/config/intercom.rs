//! `[intercom]`: where requests go and the `Intercom-Version` they carry. The one list of versions
//! this tool knows lives here, with the OpenAPI description each one's requests follow: the
//! campaign file, `admins` and the sandbox all read it.
use anyhow::{bail, Context as _};

pub const DEFAULT_BASE_URL: &str = "https://api.intercom.io";
pub const DEFAULT_VERSION: &str = "2.16";

/// The OpenAPI description (the cut in `openapi/`) a version's requests are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenApiCut {
    V2_11,
    /// 2.12 to 2.16 share the 2.16 request shape.
    V2_16,
}

/// Intercom-Version values this tool knows the request shape of, oldest first, with their cut.
pub const VERSIONS: &[(&str, OpenApiCut)] = &[
    ("2.11", OpenApiCut::V2_11),
    ("2.12", OpenApiCut::V2_16),
    ("2.13", OpenApiCut::V2_16),
    ("2.14", OpenApiCut::V2_16),
    ("2.15", OpenApiCut::V2_16),
    ("2.16", OpenApiCut::V2_16),
];

/// The cut of a known version; `None` for one this tool does not know.
pub fn cut_of(version: &str) -> Option<OpenApiCut> {
    VERSIONS
        .iter()
        .find(|(v, _)| *v == version)
        .map(|&(_, cut)| cut)
}

pub fn check_version(v: &str) -> Result<(), String> {
    if cut_of(v).is_some() {
        Ok(())
    } else {
        let known: Vec<&str> = VERSIONS.iter().map(|(v, _)| *v).collect();
        Err(format!(
            "Intercom-Version `{v}` is not one this tool knows ({})",
            known.join(", ")
        ))
    }
}

/// The token crosses the network only encrypted: plain http is for loopback (the sandbox, tests).
pub fn check_base_url(url: &str) -> anyhow::Result<()> {
    // A user name and password in the URL would be sent as Basic auth in place of the token, and
    // printed and stored wherever the URL is: refused without repeating the URL.
    let authority = url.split_once("://").map_or(url, |(_, rest)| {
        rest.split(['/', '?', '#']).next().unwrap_or("")
    });
    if authority.contains('@') {
        bail!("the API base URL carries a user name or password (`user:password@` before the host): the access token is the only credential sent; remove them (and change that password if it was a real one)");
    }
    let parsed =
        reqwest::Url::parse(url).with_context(|| format!("invalid API base URL `{url}`"))?;
    // The client appends `/messages` to the URL: a path would send every request somewhere
    // Intercom has no API (a 404 for each row, found only once the run is under way).
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        let root = format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or(""));
        let root = match parsed.port() {
            Some(p) => format!("{root}:{p}"),
            None => root,
        };
        bail!("the API base URL `{url}` has a path: it must be the API's root, such as {root} (requests go to its /messages)");
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => bail!("refusing plain http:// to `{url}`: the access token would cross the network in clear; use https://"),
        other => bail!("invalid API base URL `{url}`: unsupported scheme `{other}`"),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
