//! `<user>_<repo>_<commit>.(xml|cxml)` file names.
//!
//! The reference matched `^([^_]+)_([^_]+)_([a-f0-9]+)`, so any repo with `_` (or `-` in some
//! layouts) lost its name. Here the commit is anchored at the end (a trailing run of hex
//! digits) and the owner is everything up to the FIRST `_`: GitHub owner names cannot contain
//! `_`, repository names can.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackName {
    pub user: String,
    pub repo: String,
    pub commit: String,
}

impl PackName {
    pub fn full_name(&self) -> String {
        if self.user.is_empty() && self.repo.is_empty() {
            String::new()
        } else {
            format!("{}/{}", self.user, self.repo)
        }
    }

    /// A stable id: `owner/repo@commit`, else the pack's path.
    pub fn stable_id(&self, path: &str) -> String {
        if self.user.is_empty() {
            format!("pack:{path}")
        } else {
            format!("{}@{}", self.full_name(), self.commit)
        }
    }
}

/// Parses the file name of `path`; `None` when it does not follow the convention.
pub fn parse(path: &str) -> Option<PackName> {
    let base = path.rsplit(['/', '\\']).next()?;
    let stem = base.strip_suffix(".cxml").or_else(|| base.strip_suffix(".xml"))?;
    let (rest, commit) = stem.rsplit_once('_')?;
    if commit.len() < 6 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (user, repo) = rest.split_once('_')?;
    if user.is_empty() || repo.is_empty() {
        return None;
    }
    Some(PackName { user: user.into(), repo: repo.into(), commit: commit.to_lowercase() })
}

/// The language folder: the parent directory's name, if the path has one.
pub fn language_folder(path: &str) -> Option<&str> {
    let mut parts = path.rsplit(['/', '\\']);
    parts.next()?;
    parts.next().filter(|s| !s.is_empty() && *s != ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_dashes_and_underscores() {
        let n = parse("JavaScript/jshttp_content-type_2a9eca2961b4.xml").unwrap();
        assert_eq!((n.user.as_str(), n.repo.as_str(), n.commit.as_str()), ("jshttp", "content-type", "2a9eca2961b4"));
        let n = parse("Python/psf_requests_oauthlib_extra_a1b2c3d.cxml").unwrap();
        assert_eq!((n.user.as_str(), n.repo.as_str()), ("psf", "requests_oauthlib_extra"));
        assert_eq!(n.full_name(), "psf/requests_oauthlib_extra");
        assert!(parse("x/noname.xml").is_none());
        assert!(parse("x/a_b_nothex.xml").is_none());
        assert_eq!(language_folder("Rust/a_b_123456.xml"), Some("Rust"));
        assert_eq!(language_folder("a_b_123456.xml"), None);
    }
}
