//! s3: roots in S3-compatible object storage (AWS S3, MinIO, Ceph, R2, …).
//!
//! Object stores send no change notifications we can rely on, so a bucket root is polled:
//! every poll lists the prefix and compares ETag, size and last-modified with the stored
//! records ([`poll`]). Access goes through the `object_store` crate's AWS client; credentials
//! come from the standard AWS environment variables and are never logged ([`redact`]).

pub mod poll;
pub mod poller;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use object_store::ClientConfigKey;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use serde::{Deserialize, Serialize};

/// The scheme of object-storage roots.
pub const SCHEME: &str = "s3://";

/// Default time between two polls of a bucket root (30 s).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);

/// Default number of objects downloaded at once per root.
pub const DEFAULT_DOWNLOADS: usize = 4;

/// Whether a root is an object-storage URL (`s3://…`) rather than a local path.
pub fn is_remote(path: &Path) -> bool {
    path.as_os_str()
        .to_str()
        .is_some_and(|s| s.starts_with(SCHEME))
}

/// A bucket and a key prefix: `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    /// Key prefix without leading or trailing `/`; empty for the whole bucket.
    pub prefix: String,
}

impl S3Url {
    /// Parses `s3://bucket[/prefix][/]`.
    ///
    /// Errors: not an `s3://` URL, an empty or invalid bucket name, or an empty path segment.
    pub fn parse(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix(SCHEME)
            .with_context(|| format!("{url}: not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c);
        if bucket.is_empty() || !bucket.chars().all(valid) {
            bail!(
                "{url}: invalid bucket name {bucket:?} (lowercase letters, digits, '.', '-', '_')"
            );
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|s| s.is_empty()) && !prefix.is_empty() {
            bail!("{url}: empty segment in the key prefix");
        }
        Ok(Self {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The root as vigil names it: `s3://bucket` or `s3://bucket/prefix`.
    pub fn root(&self) -> PathBuf {
        if self.prefix.is_empty() {
            PathBuf::from(format!("{SCHEME}{}", self.bucket))
        } else {
            PathBuf::from(format!("{SCHEME}{}/{}", self.bucket, self.prefix))
        }
    }

    /// The store key (and displayed path) of an object: `s3://bucket/key`.
    pub fn object_key(&self, key: &str) -> Vec<u8> {
        format!("{SCHEME}{}/{key}", self.bucket).into_bytes()
    }
}

/// How vigil reaches object storage: from `[s3]` in the configuration file and the `--s3-*`
/// flags. Credentials are not here: they come from the environment only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Options {
    /// Endpoint URL for S3-compatible services (MinIO, Ceph, R2); path-style addressing is
    /// used with it. `None`: AWS (or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Region; `None`: `AWS_REGION` / `AWS_DEFAULT_REGION`, else us-east-1.
    pub region: Option<String>,
    /// Allow plain http to a host that is not loopback.
    pub allow_http: bool,
    /// ms between polls.
    pub poll_interval_ms: u64,
    /// Objects downloaded at once, per root.
    pub downloads: usize,
}

impl Default for S3Options {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            allow_http: false,
            poll_interval_ms: DEFAULT_POLL_INTERVAL.as_millis() as u64,
            downloads: DEFAULT_DOWNLOADS,
        }
    }
}

/// The environment variables whose values are secrets, scrubbed from every message.
const SECRET_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// Replaces every credential from the environment that appears in `text` by `[redacted]`,
/// so errors that echo a request (or a server's answer) never leak one.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for var in SECRET_VARS {
        if let Ok(value) = std::env::var(var)
            && value.len() >= 4
        {
            out = out.replace(&value, "[redacted]");
        }
    }
    out
}

/// A readable, redacted description of an object-storage error, with a hint for the
/// common causes (credentials, bucket name, endpoint).
pub fn describe(err: &object_store::Error) -> String {
    let text = redact(&format!("{err}"));
    // Servers answer with an XML error document; its code and message say it best.
    let code = xml_field(&text, "Code");
    let message = xml_field(&text, "Message");
    // "…non-2xx status code: 403 Forbidden: <body>"
    let status = text
        .split("status code: ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .map(str::trim);
    let mut out = match (&code, &message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.clone(),
        _ => first_line(&text),
    };
    if let Some(s) = status
        && code.is_some()
    {
        out = format!("{out} (HTTP {s})");
    }
    let hint = match code.as_deref() {
        Some(
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "AccessDenied"
            | "InvalidToken"
            | "ExpiredToken",
        ) => " — check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN)",
        Some("NoSuchBucket") => " — check the bucket name and the endpoint",
        _ if text.contains("error sending request") || text.contains("connect") => {
            " — is the endpoint reachable?"
        }
        _ => "",
    };
    format!("{out}{hint}")
}

fn xml_field(text: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{tag}>"))? + start;
    Some(text[start..end].trim().to_string())
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    line.chars().take(400).collect()
}

/// One bucket root, connected: the client, and the runtime its requests run on.
pub struct Remote {
    pub url: S3Url,
    /// `s3://bucket/prefix`, as in the configuration and the store keys.
    pub root: PathBuf,
    pub client: Arc<dyn ObjectStore>,
    pub options: S3Options,
    runtime: tokio::runtime::Runtime,
}

impl Remote {
    /// Builds the client for `root` (nothing is sent yet).
    ///
    /// Errors: an invalid URL, plain http to a non-loopback endpoint without `allow_http`,
    /// a custom endpoint without credentials in the environment, or an invalid endpoint.
    pub fn connect(root: &Path, options: &S3Options) -> Result<Self> {
        let text = root.to_string_lossy();
        let url = S3Url::parse(&text)?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&url.bucket);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
        // Set key by key: client options from the environment (e.g. a proxy) stay.
        let client = |key| AmazonS3ConfigKey::Client(key);
        builder = builder
            .with_config(client(ClientConfigKey::ConnectTimeout), "5s")
            .with_config(client(ClientConfigKey::Timeout), "120s");
        if let Some(endpoint) = &endpoint {
            check_endpoint(endpoint, options.allow_http)?;
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
                bail!(
                    "{text}: no credentials for {endpoint}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                );
            }
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let retry = object_store::RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(15),
            ..Default::default()
        };
        let client = builder
            .with_retry(retry)
            .build()
            .map_err(|e| anyhow::anyhow!("{text}: {}", describe(&e)))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("vigil-s3")
            .build()
            .context("cannot start the object-storage client")?;
        Ok(Self {
            root: url.root(),
            url,
            client: Arc::new(client),
            options: options.clone(),
            runtime,
        })
    }

    /// Runs a future of this root's client to completion.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Downloads one listed object whole (the one download path of polls and `verify`).
    /// Never fails: what went wrong is part of the answer.
    pub async fn download(&self, meta: &object_store::ObjectMeta) -> Download {
        use object_store::ObjectStoreExt;
        match self.client.get(&meta.location).await {
            Ok(got) => {
                let meta = got.meta.clone();
                match got.bytes().await {
                    Ok(bytes) => Download::Bytes {
                        meta,
                        bytes: bytes.to_vec(),
                    },
                    Err(e) => Download::Failed(describe(&e)),
                }
            }
            Err(object_store::Error::NotFound { .. }) => Download::Vanished,
            Err(
                e @ (object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }),
            ) => Download::Refused(describe(&e)),
            Err(e) => Download::Failed(describe(&e)),
        }
    }

    /// The listing prefix, `None` for the whole bucket.
    pub fn prefix(&self) -> Option<object_store::path::Path> {
        (!self.url.prefix.is_empty())
            .then(|| object_store::path::Path::from(self.url.prefix.as_str()))
    }
}

/// What downloading one listed object gave.
#[derive(Debug)]
pub enum Download {
    /// Its bytes, with its metadata as of the download.
    Bytes {
        meta: object_store::ObjectMeta,
        bytes: Vec<u8>,
    },
    /// Deleted between the listing and the download.
    Vanished,
    /// Refused to us (permission, authentication): this object's own problem, described
    /// and redacted.
    Refused(String),
    /// A failure that may pass (network, 5xx), described and redacted.
    Failed(String),
}

/// The objects under a root, in key order, without "folder markers".
///
/// A folder marker is the zero-byte object `dir/` that consoles create for a "folder";
/// `object_store` strips its trailing `/`, so it would look like a file `dir` that sorts out
/// of order. A zero-byte object whose key is out of order, or is the parent of the next key,
/// is taken for one and left out.
pub struct Listing {
    inner: futures::stream::Peekable<
        futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>,
    >,
    last: Option<String>,
}

impl Listing {
    /// Starts listing `remote`'s prefix (the client pages through ListObjectsV2).
    pub fn new(remote: &Remote) -> Self {
        use futures::StreamExt;
        Self {
            inner: remote.client.list(remote.prefix().as_ref()).peekable(),
            last: None,
        }
    }

    /// The next object.
    ///
    /// Errors: the listing request failed (redacted message), or the keys came out of
    /// order (the merge join with the stored records could not be trusted).
    pub async fn next(&mut self) -> Option<Result<object_store::ObjectMeta, String>> {
        use futures::StreamExt;
        loop {
            let meta = match self.inner.next().await? {
                Ok(meta) => meta,
                Err(e) => return Some(Err(describe(&e))),
            };
            let key = meta.location.as_ref().to_string();
            let out_of_order = self.last.as_deref().is_some_and(|l| key.as_str() <= l);
            if meta.size == 0 {
                let parent = format!("{key}/");
                let parent_of_next = match std::pin::Pin::new(&mut self.inner).peek().await {
                    Some(Ok(next)) => next.location.as_ref().starts_with(&parent),
                    _ => false,
                };
                if out_of_order || parent_of_next {
                    continue;
                }
            }
            if out_of_order {
                return Some(Err(format!(
                    "the listing is not in key order at {key:?}: nothing deleted this poll"
                )));
            }
            self.last = Some(key);
            return Some(Ok(meta));
        }
    }
}

/// Refuses plain http to anything but loopback, unless allowed.
///
/// Errors: the endpoint is not a URL, or is plain http to a non-loopback host.
fn check_endpoint(endpoint: &str, allow_http: bool) -> Result<()> {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        if endpoint.starts_with("https://") {
            return Ok(());
        }
        bail!("{endpoint}: the S3 endpoint must be an http:// or https:// URL");
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback && !allow_http {
        bail!(
            "{endpoint}: plain http to a host that is not loopback would send your requests unencrypted; use https, or allow it with --s3-allow-http (allow_http = true under [s3])"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_name_their_objects() {
        let u = S3Url::parse("s3://notes/team/docs/").unwrap();
        assert_eq!(
            (u.bucket.as_str(), u.prefix.as_str()),
            ("notes", "team/docs")
        );
        assert_eq!(u.root(), PathBuf::from("s3://notes/team/docs"));
        assert_eq!(u.object_key("team/docs/a.md"), b"s3://notes/team/docs/a.md");
        assert_eq!(
            S3Url::parse("s3://notes").unwrap().root(),
            PathBuf::from("s3://notes")
        );
        for bad in ["s3://", "s3://Bad_Bucket", "s3://b/a//c", "/local/path"] {
            assert!(S3Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_is_only_for_loopback_unless_allowed() {
        for ok in [
            "http://127.0.0.1:9000",
            "http://localhost:9000/",
            "http://[::1]:9000",
            "https://s3.example.com",
        ] {
            check_endpoint(ok, false).unwrap();
        }
        let err = check_endpoint("http://minio.lan:9000", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--s3-allow-http"), "{err}");
        check_endpoint("http://minio.lan:9000", true).unwrap();
        assert!(check_endpoint("minio.lan:9000", true).is_err());
    }
}
