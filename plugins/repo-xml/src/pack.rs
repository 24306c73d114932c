//! Parsing a pack into (path, content) pairs, in one pass over the text.

/// Which tool produced the pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `<files><file path="…">…</file></files>`
    Repomix,
    /// `<documents><document index="N"><source>…</source><document_content>…</document_content></document>`
    RenderGit,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Repomix => "repomix",
            Tool::RenderGit => "rendergit",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PackedFile<'a> {
    pub path: &'a str,
    /// The file's content, without the newline that follows the opening tag.
    pub content: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PackError {
    UnknownFormat,
    Unterminated { path: String },
    NoFiles,
}

impl std::fmt::Display for PackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PackError::UnknownFormat => f.write_str("neither a Repomix XML pack (<files><file path=…>) nor a RenderGit CXML pack (<documents><document>)"),
            PackError::Unterminated { path } => write!(f, "the entry for `{path}` is not terminated (truncated pack?)"),
            PackError::NoFiles => f.write_str("the pack contains no files"),
        }
    }
}

/// Detects the format from the content (the extension can lie).
pub fn detect(text: &str) -> Option<Tool> {
    let repomix = text.find("<files>");
    let rendergit = text.find("<documents>").or_else(|| text.find("<document index="));
    match (repomix, rendergit) {
        (Some(r), Some(g)) => Some(if r < g { Tool::Repomix } else { Tool::RenderGit }),
        (Some(_), None) => Some(Tool::Repomix),
        (None, Some(_)) => Some(Tool::RenderGit),
        (None, None) => None,
    }
}

fn skip_one_newline(s: &str) -> &str {
    s.strip_prefix("\r\n").or_else(|| s.strip_prefix('\n')).unwrap_or(s)
}

/// Finds `close` in `hay` such that what follows it (after whitespace) starts with one of
/// `next`, or is the end of the text: a file that itself contains the closing tag does not end
/// the entry early.
fn find_close(hay: &str, close: &str, next: &[&str]) -> Option<usize> {
    let finder = memchr::memmem::Finder::new(close.as_bytes());
    let mut from = 0;
    while let Some(i) = finder.find(&hay.as_bytes()[from..]) {
        let at = from + i;
        let rest = hay[at + close.len()..].trim_start();
        if rest.is_empty() || next.iter().any(|n| rest.starts_with(n)) {
            return Some(at);
        }
        from = at + close.len();
    }
    None
}

pub fn parse(text: &str) -> Result<(Tool, Vec<PackedFile<'_>>), PackError> {
    let tool = detect(text).ok_or(PackError::UnknownFormat)?;
    let files = match tool {
        Tool::Repomix => parse_repomix(text)?,
        Tool::RenderGit => parse_rendergit(text)?,
    };
    if files.is_empty() {
        return Err(PackError::NoFiles);
    }
    Ok((tool, files))
}

fn parse_repomix(text: &str) -> Result<Vec<PackedFile<'_>>, PackError> {
    let start = text.find("<files>").map(|i| i + "<files>".len()).unwrap_or(0);
    let mut rest = &text[start..];
    let mut files = Vec::new();
    let open = memchr::memmem::Finder::new(b"<file path=\"");
    while let Some(i) = open.find(rest.as_bytes()) {
        let after = &rest[i + "<file path=\"".len()..];
        let Some(q) = after.find("\">") else {
            return Err(PackError::Unterminated { path: after.chars().take(80).collect() });
        };
        let path = &after[..q];
        let body = &after[q + 2..];
        let end = find_close(body, "</file>", &["<file path=\"", "</files>"]).ok_or_else(|| PackError::Unterminated { path: path.to_string() })?;
        files.push(PackedFile { path, content: skip_one_newline(&body[..end]) });
        rest = &body[end + "</file>".len()..];
        if rest.trim_start().starts_with("</files>") {
            break;
        }
    }
    Ok(files)
}

fn parse_rendergit(text: &str) -> Result<Vec<PackedFile<'_>>, PackError> {
    let mut rest = text;
    let mut files = Vec::new();
    while let Some(i) = rest.find("<source>") {
        let after = &rest[i + "<source>".len()..];
        let Some(e) = after.find("</source>") else {
            return Err(PackError::Unterminated { path: after.chars().take(80).collect() });
        };
        let path = after[..e].trim();
        let after = &after[e + "</source>".len()..];
        let Some(c) = after.find("<document_content>") else {
            return Err(PackError::Unterminated { path: path.to_string() });
        };
        let body = &after[c + "<document_content>".len()..];
        let end = find_close(body, "</document_content>", &["</document>"]).ok_or_else(|| PackError::Unterminated { path: path.to_string() })?;
        files.push(PackedFile { path, content: skip_one_newline(&body[..end]) });
        rest = &body[end + "</document_content>".len()..];
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repomix_entries_and_a_closing_tag_inside_content() {
        let t = "summary <file path=\"not/in/files\">\n<files>\n<file path=\"a.rs\">\nfn a() {}\n</file>\n\n<file path=\"doc.md\">\nwrite </file> in XML\n</file>\n\n</files>\n";
        let (tool, files) = parse(t).unwrap();
        assert_eq!(tool, Tool::Repomix);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0], PackedFile { path: "a.rs", content: "fn a() {}\n" });
        assert_eq!(files[1].content, "write </file> in XML\n");
    }

    #[test]
    fn rendergit_entries() {
        let t = "<documents>\n<document index=\"1\">\n<source>src/x.py</source>\n<document_content>\nprint(1)\n</document_content>\n</document>\n</documents>";
        let (tool, files) = parse(t).unwrap();
        assert_eq!(tool, Tool::RenderGit);
        assert_eq!(files, vec![PackedFile { path: "src/x.py", content: "print(1)\n" }]);
    }

    #[test]
    fn malformed_and_empty_packs() {
        assert_eq!(parse("just text").unwrap_err(), PackError::UnknownFormat);
        assert!(matches!(parse("<files>\n<file path=\"x\">\nbody without end"), Err(PackError::Unterminated { .. })));
        assert_eq!(parse("<documents>\n</documents>").unwrap_err(), PackError::NoFiles);
    }
}
