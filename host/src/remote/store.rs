//! Remote URLs and the object store behind each.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

/// `s3://bucket/prefix` or `tos://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    pub scheme: &'static str,
    pub bucket: String,
    /// Without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
}

impl RemoteUrl {
    /// `None` when `s` is not an object-storage URL.
    pub fn parse(s: &str) -> Option<RemoteUrl> {
        let (scheme, rest) = if let Some(r) = s.strip_prefix("s3://") {
            ("s3", r)
        } else if let Some(r) = s.strip_prefix("tos://") {
            ("tos", r)
        } else {
            return None;
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return None;
        }
        Some(RemoteUrl { scheme, bucket: bucket.to_string(), prefix: prefix.trim_matches('/').to_string() })
    }

    /// The object path of `rel` (a `/`-separated path under this prefix).
    pub fn object(&self, rel: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(rel)
        } else {
            ObjectPath::from(format!("{}/{rel}", self.prefix))
        }
    }

    pub fn prefix_path(&self) -> Option<ObjectPath> {
        (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()))
    }

    /// The store for this URL's bucket, from the environment.
    pub fn store(&self) -> anyhow::Result<Arc<dyn ObjectStore>> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&self.bucket);
        let endpoint = match self.scheme {
            "tos" => {
                if let (Some(k), Some(s)) = (env("TOS_ACCESS_KEY"), env("TOS_SECRET_KEY")) {
                    b = b.with_access_key_id(k).with_secret_access_key(s);
                }
                if let Some(r) = env("TOS_REGION") {
                    b = b.with_region(r);
                }
                // TOS serves buckets as virtual hosts of its https S3 endpoint; a plain-http
                // endpoint is a local stand-in, addressed by path.
                b = b.with_virtual_hosted_style_request(env("TOS_ENDPOINT").is_some_and(|e| e.starts_with("https://")));
                env("TOS_ENDPOINT").or_else(|| env("AWS_ENDPOINT_URL"))
            }
            _ => env("AWS_ENDPOINT_URL").or_else(|| env("AWS_ENDPOINT")),
        };
        if let Some(e) = endpoint {
            b = b.with_allow_http(e.starts_with("http://")).with_endpoint(e);
        }
        if env("AWS_REGION").is_none() && env("AWS_DEFAULT_REGION").is_none() && env("TOS_REGION").is_none() {
            b = b.with_region("us-east-1");
        }
        let store = b.build().map_err(|e| {
            anyhow::anyhow!(
                "{}://{}: cannot set up object storage ({e}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (TOS_ACCESS_KEY/TOS_SECRET_KEY for tos://), and AWS_ENDPOINT_URL (TOS_ENDPOINT) for a non-AWS server",
                self.scheme,
                self.bucket
            )
        })?;
        Ok(Arc::new(store))
    }
}

impl std::fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}/{}", self.scheme, self.bucket, self.prefix)
    }
}

/// The storage secrets in the environment, for the redactor.
pub fn storage_secrets() -> Vec<String> {
    ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "TOS_SECRET_KEY", "TOS_SESSION_TOKEN"].iter().filter_map(|k| std::env::var(k).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_scheme_bucket_and_prefix() {
        let u = RemoteUrl::parse("tos://agi-data/runs/2026/").unwrap();
        assert_eq!((u.scheme, u.bucket.as_str(), u.prefix.as_str()), ("tos", "agi-data", "runs/2026"));
        assert_eq!(u.object("a/b.jsonl").as_ref(), "runs/2026/a/b.jsonl");
        assert_eq!(RemoteUrl::parse("s3://b").unwrap().object("x").as_ref(), "x");
        assert!(RemoteUrl::parse("/local/path").is_none() && RemoteUrl::parse("s3:///x").is_none());
    }
}
