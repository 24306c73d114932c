//! `{field}` templates with `{{`/`}}` escapes, parsed once at init.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Literal(String),
    Field(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: &'static str,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at character {} (write {{{{ and }}}} for literal braces)", self.message, self.offset)
    }
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '}')) => break,
                            Some((_, '{')) => return Err(TemplateError { offset: i, message: "a `{` inside a placeholder" }),
                            Some((_, ch)) => name.push(ch),
                            None => return Err(TemplateError { offset: i, message: "an unclosed `{`" }),
                        }
                    }
                    let name = name.trim().to_string();
                    if name.is_empty() {
                        return Err(TemplateError { offset: i, message: "an empty placeholder `{}`" });
                    }
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Field(name));
                }
                '}' => return Err(TemplateError { offset: i, message: "a single `}`" }),
                other => literal.push(other),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Template { segments })
    }

    /// The placeholder names, in order of first use.
    pub fn fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.segments {
            if let Segment::Field(f) = s {
                if !out.contains(&f.as_str()) {
                    out.push(f);
                }
            }
        }
        out
    }

    /// Renders with `lookup`; `Err(name)` for the first placeholder without a value.
    pub fn render(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
        let mut out = String::new();
        for s in &self.segments {
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Field(f) => out.push_str(&lookup(f).ok_or_else(|| f.clone())?),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_fields() {
        let t = Template::parse("a {x} {{literal}} {y}}}").unwrap();
        assert_eq!(t.fields(), vec!["x", "y"]);
        let s = t.render(|n| Some(n.to_uppercase())).unwrap();
        assert_eq!(s, "a X {literal} Y}");
        assert_eq!(t.render(|n| (n == "x").then(|| "1".into())), Err("y".into()));
    }
}
