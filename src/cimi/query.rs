//! Collection queries: a typed `$filter` builder and the other CIMI query parameters.
//!
//! The builder can only express what the CIMI `$filter` grammar accepts: attribute names are checked when
//! they are named, strings are quoted and escaped, dates are written as `xs:dateTime` with their offset,
//! ordering comparisons exist only for integers and dates, and `and`/`or` get parentheses where precedence
//! needs them.
//!
//! ```
//! use cimi_operator::cimi::query::{Filter, Query};
//! # fn main() -> Result<(), cimi_operator::cimi::CimiError> {
//! let f = Filter::attr("cpu")?.ge(2u64).and(Filter::attr("state")?.eq("STARTED"))
//!     .or(Filter::property("cimi.dev/uid", "6b1f'e")?);
//! assert_eq!(f.to_string(), r#"cpu>=2 and state='STARTED' or property['cimi.dev/uid']="6b1f'e""#);
//! let q = Query::new().filter(f).select(["name", "state"]).first(1).last(50);
//! assert!(q.to_query_string().starts_with("$filter=cpu%3E%3D2"));
//! # Ok(()) }
//! ```

use std::fmt;

use chrono::{DateTime, FixedOffset, SecondsFormat};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use url::Url;

use super::error::CimiError;

/// Characters left as they are in a query value: RFC 3986 unreserved only.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A comparison operator of the `$filter` grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `=`
    Eq,
    /// `>=`
    Ge,
    /// `>`
    Gt,
    /// `!=`
    Ne,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::Ne => "!=",
        }
    }
}

/// A literal on the right of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A non-negative integer (the grammar has no sign).
    Int(u64),
    /// A string, quoted when written.
    Str(String),
    /// `true` or `false`.
    Bool(bool),
    /// An `xs:dateTime`, written with its offset.
    Date(DateTime<FixedOffset>),
}

impl From<&str> for Literal {
    fn from(s: &str) -> Self {
        Literal::Str(s.to_string())
    }
}
impl From<String> for Literal {
    fn from(s: String) -> Self {
        Literal::Str(s)
    }
}
impl From<bool> for Literal {
    fn from(b: bool) -> Self {
        Literal::Bool(b)
    }
}
impl From<u64> for Literal {
    fn from(n: u64) -> Self {
        Literal::Int(n)
    }
}
impl From<u32> for Literal {
    fn from(n: u32) -> Self {
        Literal::Int(n.into())
    }
}
impl From<DateTime<FixedOffset>> for Literal {
    fn from(d: DateTime<FixedOffset>) -> Self {
        Literal::Date(d)
    }
}
impl From<DateTime<chrono::Utc>> for Literal {
    fn from(d: DateTime<chrono::Utc>) -> Self {
        Literal::Date(d.fixed_offset())
    }
}

/// A literal that can be ordered: integers and dates (the grammar allows `<`, `>`... only on these).
#[derive(Debug, Clone, PartialEq)]
pub struct Ordered(Literal);

impl From<u64> for Ordered {
    fn from(n: u64) -> Self {
        Ordered(Literal::Int(n))
    }
}
impl From<u32> for Ordered {
    fn from(n: u32) -> Self {
        Ordered(Literal::Int(n.into()))
    }
}
impl From<DateTime<FixedOffset>> for Ordered {
    fn from(d: DateTime<FixedOffset>) -> Self {
        Ordered(Literal::Date(d))
    }
}
impl From<DateTime<chrono::Utc>> for Ordered {
    fn from(d: DateTime<chrono::Utc>) -> Self {
        Ordered(Literal::Date(d.fixed_offset()))
    }
}

/// A checked attribute name, waiting for its comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr(String);

impl Attr {
    fn cmp(self, op: Op, value: Literal) -> Filter {
        Filter::Cmp { attr: self.0, op, value }
    }
    /// `attr = value`
    pub fn eq(self, value: impl Into<Literal>) -> Filter {
        self.cmp(Op::Eq, value.into())
    }
    /// `attr != value`
    pub fn ne(self, value: impl Into<Literal>) -> Filter {
        self.cmp(Op::Ne, value.into())
    }
    /// `attr < value`
    pub fn lt(self, value: impl Into<Ordered>) -> Filter {
        self.cmp(Op::Lt, value.into().0)
    }
    /// `attr <= value`
    pub fn le(self, value: impl Into<Ordered>) -> Filter {
        self.cmp(Op::Le, value.into().0)
    }
    /// `attr > value`
    pub fn gt(self, value: impl Into<Ordered>) -> Filter {
        self.cmp(Op::Gt, value.into().0)
    }
    /// `attr >= value`
    pub fn ge(self, value: impl Into<Ordered>) -> Filter {
        self.cmp(Op::Ge, value.into().0)
    }
}

/// A `$filter` expression. Build it with [`Filter::attr`] and [`Filter::property`]; print it with `Display`.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attr op literal`
    Cmp {
        /// The attribute name.
        attr: String,
        /// The operator.
        op: Op,
        /// The literal.
        value: Literal,
    },
    /// `property['key'] op "value"` (`=` or `!=`).
    Property {
        /// The property key.
        key: String,
        /// `true` for `!=`.
        negated: bool,
        /// The value.
        value: String,
    },
    /// Both.
    And(Box<Filter>, Box<Filter>),
    /// Either.
    Or(Box<Filter>, Box<Filter>),
}

/// Whether `name` is a CIMI identifier: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `name` is an attribute path of `$select`/`$expand` (the `QueryPathNotation` capability):
/// identifiers joined by `/`, such as `networkInterfaces/addresses`.
pub fn is_path(name: &str) -> bool {
    name.split('/').all(is_identifier)
}

impl Filter {
    /// Start a comparison on a top-level attribute. Fails unless `name` is a CIMI identifier (and not one
    /// of the grammar's words).
    pub fn attr(name: &str) -> Result<Attr, CimiError> {
        if !is_identifier(name) || matches!(name, "and" | "or" | "true" | "false" | "property") {
            return Err(CimiError::Config(format!("{name:?} is not a CIMI attribute name usable in $filter")));
        }
        Ok(Attr(name.to_string()))
    }

    /// `property['key']="value"`: matches resources with that property.
    pub fn property(key: &str, value: &str) -> Result<Filter, CimiError> {
        Self::check_property(key, value)?;
        Ok(Filter::Property { key: key.to_string(), negated: false, value: value.to_string() })
    }

    /// `property['key']!="value"`.
    pub fn property_ne(key: &str, value: &str) -> Result<Filter, CimiError> {
        Self::check_property(key, value)?;
        Ok(Filter::Property { key: key.to_string(), negated: true, value: value.to_string() })
    }

    fn check_property(key: &str, value: &str) -> Result<(), CimiError> {
        if key.is_empty() || key.chars().chain(value.chars()).any(char::is_control) {
            return Err(CimiError::Config(format!("property key {key:?} or its value cannot be filtered on")));
        }
        Ok(())
    }

    /// Both this and `other`.
    pub fn and(self, other: Filter) -> Filter {
        Filter::And(Box::new(self), Box::new(other))
    }

    /// This or `other`.
    pub fn or(self, other: Filter) -> Filter {
        Filter::Or(Box::new(self), Box::new(other))
    }

    fn precedence(&self) -> u8 {
        match self {
            Filter::Or(..) => 1,
            Filter::And(..) => 2,
            _ => 3,
        }
    }

    fn write_child(&self, child: &Filter, right: bool, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The grammar is right-recursive, so a left child of the same precedence needs parentheses to keep
        // the tree the caller built (the meaning is the same either way; the round trip is then exact).
        let parens = child.precedence() < self.precedence() || (!right && child.precedence() == self.precedence());
        if parens { write!(f, "({child})") } else { write!(f, "{child}") }
    }
}

/// Write a string literal the grammar accepts. The grammar has no escape, so the quote is chosen to avoid
/// one: single quotes, or double quotes for text holding a single quote. Only text holding both kinds needs
/// more: the chosen quote is then doubled inside (`'a''b"c'`), the convention cimi-sim reads. A backslash
/// is an ordinary character.
pub fn quote(s: &str) -> String {
    quote_preferring(s, '\'')
}

fn quote_preferring(s: &str, preferred: char) -> String {
    let other = if preferred == '\'' { '"' } else { '\'' };
    let q = if !s.contains(preferred) || s.contains(other) { preferred } else { other };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        if c == q {
            out.push(q);
        }
        out.push(c);
    }
    out.push(q);
    out
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Int(n) => write!(f, "{n}"),
            Literal::Str(s) => f.write_str(&quote(s)),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Date(d) => f.write_str(&d.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Cmp { attr, op, value } => write!(f, "{attr}{}{value}", op.as_str()),
            Filter::Property { key, negated, value } => {
                // The standard's examples double-quote the value; keep that shape when the value allows it.
                let v = quote_preferring(value, '"');
                write!(f, "property[{}]{}{v}", quote(key), if *negated { "!=" } else { "=" })
            }
            Filter::And(a, b) => {
                self.write_child(a, false, f)?;
                f.write_str(" and ")?;
                self.write_child(b, true, f)
            }
            Filter::Or(a, b) => {
                self.write_child(a, false, f)?;
                f.write_str(" or ")?;
                self.write_child(b, true, f)
            }
        }
    }
}

/// The query parameters of a collection read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    filters: Vec<Filter>,
    select: Vec<String>,
    expand: Vec<String>,
    first: Option<u64>,
    last: Option<u64>,
    order_by: Vec<(String, bool)>,
}

impl Query {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }
    /// Add a `$filter` (several are ANDed by the provider).
    pub fn filter(mut self, f: Filter) -> Self {
        self.filters.push(f);
        self
    }
    /// `$select` these attributes or paths such as `samples/value` (other names, but `*`, are dropped).
    pub fn select<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, attrs: I) -> Self {
        self.select.extend(attrs.into_iter().map(|s| s.as_ref().to_string()).filter(|s| s == "*" || is_path(s)));
        self
    }
    /// `$expand` these attributes or paths such as `networkInterfaces/addresses` (`*` for all; other names
    /// are dropped).
    pub fn expand<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, attrs: I) -> Self {
        self.expand.extend(attrs.into_iter().map(|s| s.as_ref().to_string()).filter(|s| s == "*" || is_path(s)));
        self
    }
    /// `$first` (1-based, inclusive).
    pub fn first(mut self, n: u64) -> Self {
        self.first = Some(n.max(1));
        self
    }
    /// `$last` (1-based, inclusive).
    pub fn last(mut self, n: u64) -> Self {
        self.last = Some(n.max(1));
        self
    }
    /// Add an `$orderby` key (2.0 providers; others ignore it).
    pub fn order_by(mut self, attr: &str, descending: bool) -> Self {
        if is_identifier(attr) {
            self.order_by.push((attr.to_string(), descending));
        }
        self
    }
    /// The same query restricted to entries `first..=last`.
    pub fn page(&self, first: u64, last: u64) -> Self {
        let mut q = self.clone();
        q.first = Some(first.max(1));
        q.last = Some(last.max(1));
        q
    }
    /// The `$first` asked for.
    pub fn first_index(&self) -> Option<u64> {
        self.first
    }
    /// The `$last` asked for.
    pub fn last_index(&self) -> Option<u64> {
        self.last
    }

    /// The parameters as `name=value&...`, values percent-encoded (spaces as `%20`, never `+`).
    pub fn to_query_string(&self) -> String {
        let mut parts = Vec::new();
        let enc = |s: &str| utf8_percent_encode(s, QUERY_VALUE).to_string();
        for f in &self.filters {
            parts.push(format!("$filter={}", enc(&f.to_string())));
        }
        if !self.select.is_empty() {
            parts.push(format!("$select={}", enc(&self.select.join(","))));
        }
        if !self.expand.is_empty() {
            parts.push(format!("$expand={}", enc(&self.expand.join(","))));
        }
        if let Some(n) = self.first {
            parts.push(format!("$first={n}"));
        }
        if let Some(n) = self.last {
            parts.push(format!("$last={n}"));
        }
        if !self.order_by.is_empty() {
            let keys: Vec<String> =
                self.order_by.iter().map(|(a, d)| format!("{a}:{}", if *d { "desc" } else { "asc" })).collect();
            parts.push(format!("$orderby={}", enc(&keys.join(","))));
        }
        parts.join("&")
    }

    /// `url` with these parameters appended to any it already has.
    pub fn apply(&self, url: &Url) -> Url {
        let extra = self.to_query_string();
        if extra.is_empty() {
            return url.clone();
        }
        let mut out = url.clone();
        let q = match url.query() {
            Some(existing) if !existing.is_empty() => format!("{existing}&{extra}"),
            _ => extra,
        };
        out.set_query(Some(&q));
        out
    }
}

/// `?$select=a,b` for a partial update.
pub fn select_url(url: &Url, attrs: &[&str]) -> Url {
    Query::new().select(attrs.iter().copied()).apply(url)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod grammar {
    //! A parser of the CIMI `$filter` grammar (reference section 2), used only to prove that the builder
    //! writes valid filters: it accepts exactly the grammar and rebuilds the tree.
    use super::*;

    pub fn parse(s: &str) -> Result<Filter, String> {
        let mut p = Parser { s: s.as_bytes(), i: 0 };
        let f = p.filter()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing input at {}: {:?}", p.i, &s[p.i..]));
        }
        Ok(f)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && self.s[self.i] == b' ' {
                self.i += 1;
            }
        }
        fn word(&mut self, w: &str) -> bool {
            self.ws();
            let end = self.i + w.len();
            if self.s.get(self.i..end) == Some(w.as_bytes())
                && !self.s.get(end).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                self.i = end;
                true
            } else {
                false
            }
        }
        // Filter ::= AndExpr ('or' Filter)*
        fn filter(&mut self) -> Result<Filter, String> {
            let left = self.and_expr()?;
            if self.word("or") {
                let right = self.filter()?;
                return Ok(Filter::Or(Box::new(left), Box::new(right)));
            }
            Ok(left)
        }
        // AndExpr ::= Comp ('and' AndExpr)*
        fn and_expr(&mut self) -> Result<Filter, String> {
            let left = self.comp()?;
            if self.word("and") {
                let right = self.and_expr()?;
                return Ok(Filter::And(Box::new(left), Box::new(right)));
            }
            Ok(left)
        }
        fn comp(&mut self) -> Result<Filter, String> {
            self.ws();
            if self.s.get(self.i) == Some(&b'(') {
                self.i += 1;
                let f = self.filter()?;
                self.ws();
                if self.s.get(self.i) != Some(&b')') {
                    return Err("missing )".into());
                }
                self.i += 1;
                return Ok(f);
            }
            if self.s[self.i..].starts_with(b"property[") {
                self.i += "property[".len();
                let key = self.string()?;
                if self.s.get(self.i) != Some(&b']') {
                    return Err("missing ]".into());
                }
                self.i += 1;
                let op = self.op()?;
                let negated = match op {
                    Op::Eq => false,
                    Op::Ne => true,
                    _ => return Err("property compares with = or != only".into()),
                };
                self.ws();
                let value = self.string()?;
                return Ok(Filter::Property { key, negated, value });
            }
            let attr = self.ident()?;
            let op = self.op()?;
            self.ws();
            let value = self.value()?;
            if matches!(value, Literal::Str(_) | Literal::Bool(_)) && !matches!(op, Op::Eq | Op::Ne) {
                return Err("strings and booleans compare with = or != only".into());
            }
            Ok(Filter::Cmp { attr, op, value })
        }
        fn ident(&mut self) -> Result<String, String> {
            self.ws();
            let start = self.i;
            while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_') {
                self.i += 1;
            }
            let id = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
            if !is_identifier(id) {
                return Err(format!("not an identifier at {start}"));
            }
            Ok(id.to_string())
        }
        fn op(&mut self) -> Result<Op, String> {
            self.ws();
            for (t, op) in [("<=", Op::Le), (">=", Op::Ge), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt), ("=", Op::Eq)]
            {
                if self.s[self.i..].starts_with(t.as_bytes()) {
                    self.i += t.len();
                    return Ok(op);
                }
            }
            Err(format!("operator expected at {}", self.i))
        }
        fn string(&mut self) -> Result<String, String> {
            let q = *self.s.get(self.i).ok_or("string expected")?;
            if q != b'\'' && q != b'"' {
                return Err(format!("quote expected at {}", self.i));
            }
            self.i += 1;
            let mut out = Vec::new();
            loop {
                let c = *self.s.get(self.i).ok_or("unterminated string")?;
                self.i += 1;
                if c == q && self.s.get(self.i) == Some(&q) {
                    // A doubled quote inside the string.
                    out.push(q);
                    self.i += 1;
                } else if c == q {
                    break;
                } else {
                    out.push(c);
                }
            }
            String::from_utf8(out).map_err(|e| e.to_string())
        }
        fn value(&mut self) -> Result<Literal, String> {
            match self.s.get(self.i) {
                Some(b'\'' | b'"') => self.string().map(Literal::Str),
                Some(c) if c.is_ascii_digit() => {
                    let start = self.i;
                    while self.i < self.s.len() && !matches!(self.s[self.i], b' ' | b')') {
                        self.i += 1;
                    }
                    let raw = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                    if raw.bytes().all(|b| b.is_ascii_digit()) {
                        raw.parse().map(Literal::Int).map_err(|e| e.to_string())
                    } else {
                        DateTime::parse_from_rfc3339(raw).map(Literal::Date).map_err(|e| format!("{raw}: {e}"))
                    }
                }
                _ if self.word("true") => Ok(Literal::Bool(true)),
                _ if self.word("false") => Ok(Literal::Bool(false)),
                _ => Err(format!("value expected at {}", self.i)),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn date() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2012-05-25T13:30:15-05:00").unwrap()
    }

    #[test]
    fn the_examples_of_the_standard() {
        assert_eq!(Filter::attr("name").unwrap().eq("mine").to_string(), "name='mine'");
        let f = Filter::attr("cpu").unwrap().ge(2u64).and(Filter::attr("state").unwrap().eq("STARTED"));
        assert_eq!(f.to_string(), "cpu>=2 and state='STARTED'");
        assert_eq!(Filter::property("env", "prod").unwrap().to_string(), "property['env']=\"prod\"");
        assert_eq!(Filter::attr("created").unwrap().gt(date()).to_string(), "created>2012-05-25T13:30:15-05:00");
        assert_eq!(Filter::attr("bootable").unwrap().ne(false).to_string(), "bootable!=false");
    }

    #[test]
    fn quoting_and_escaping() {
        assert_eq!(quote("it's"), "\"it's\"");
        assert_eq!(quote("say \"hi\""), "'say \"hi\"'");
        assert_eq!(quote(r#"a'b"c\d"#), r#"'a''b"c\d'"#);
        assert_eq!(quote(r"back\slash"), r"'back\slash'");
        assert_eq!(Filter::property("k'ey", "v\"al").unwrap().to_string(), r#"property["k'ey"]='v"al'"#);
    }

    #[test]
    fn precedence_gets_parentheses() {
        let a = || Filter::attr("a").unwrap().eq(1u64);
        let b = || Filter::attr("b").unwrap().eq(2u64);
        let c = || Filter::attr("c").unwrap().eq(3u64);
        assert_eq!(a().and(b().or(c())).to_string(), "a=1 and (b=2 or c=3)");
        assert_eq!(a().or(b()).and(c()).to_string(), "(a=1 or b=2) and c=3");
        assert_eq!(a().or(b().and(c())).to_string(), "a=1 or b=2 and c=3");
    }

    #[test]
    fn names_outside_the_grammar_are_refused() {
        for bad in ["", "1cpu", "a b", "a'b", "disks/name", "and", "property", "é"] {
            assert!(Filter::attr(bad).is_err(), "{bad:?}");
        }
        assert!(Filter::property("", "x").is_err());
        assert!(Filter::property("k", "line\nbreak").is_err());
    }

    #[test]
    fn query_string_is_encoded_and_appended() {
        let q = Query::new()
            .filter(Filter::attr("name").unwrap().eq("a b&c"))
            .select(["name", "state", "bad name"])
            .expand(["*"])
            .first(1)
            .last(20)
            .order_by("created", true);
        assert_eq!(
            q.to_query_string(),
            "$filter=name%3D%27a%20b%26c%27&$select=name%2Cstate&$expand=%2A&$first=1&$last=20&$orderby=created%3Adesc"
        );
        let url = Url::parse("http://h/machines?x=1").unwrap();
        let full = q.apply(&url);
        assert!(full.as_str().starts_with("http://h/machines?x=1&$filter="));
        let pairs: Vec<(String, String)> = full.query_pairs().map(|(k, v)| (k.into(), v.into())).collect();
        assert_eq!(pairs[1], ("$filter".to_string(), "name='a b&c'".to_string()));
        assert_eq!(
            select_url(&Url::parse("http://h/m/1").unwrap(), &["name", "description"]).as_str(),
            "http://h/m/1?$select=name%2Cdescription"
        );
    }

    fn random_string(rng: &mut StdRng) -> String {
        const ALPHABET: &[char] =
            &['a', 'Z', '0', ' ', '\'', '"', '\\', '(', ')', '[', ']', '=', '<', '&', '%', '+', 'é', '/', '.'];
        (0..rng.random_range(0..8)).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())]).collect()
    }

    fn random_filter(rng: &mut StdRng, depth: u32) -> Filter {
        let names = ["cpu", "name", "state", "created", "_x1", "andrew", "order", "trueish"];
        if depth == 0 || rng.random_bool(0.4) {
            let name = names[rng.random_range(0..names.len())];
            let attr = || Filter::attr(name).unwrap();
            return match rng.random_range(0..6) {
                0 => attr().eq(random_string(rng)),
                1 => attr().ne(rng.random_bool(0.5)),
                2 => attr().lt(rng.random_range(0..100_000u64)),
                3 => attr().ge(date()),
                4 => attr().eq(rng.random_range(0..10u64)),
                _ => {
                    let k = format!("k{}", random_string(rng));
                    if rng.random_bool(0.5) {
                        Filter::property(&k, &random_string(rng)).unwrap()
                    } else {
                        Filter::property_ne(&k, &random_string(rng)).unwrap()
                    }
                }
            };
        }
        let a = random_filter(rng, depth - 1);
        let b = random_filter(rng, depth - 1);
        if rng.random_bool(0.5) { a.and(b) } else { a.or(b) }
    }

    /// Property: every filter the builder can make is in the grammar, and parses back to the same tree.
    #[test]
    fn every_built_filter_is_valid_grammar_and_round_trips() {
        let mut rng = StdRng::seed_from_u64(0xC1A1);
        for _ in 0..3000 {
            let f = random_filter(&mut rng, 4);
            let text = f.to_string();
            let back = grammar::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(back, f, "{text}");
        }
    }

    #[test]
    fn the_checking_parser_refuses_bad_filters() {
        for bad in ["name=mine", "name='x", "(a=1", "a=1 and", "a>'x'", "property['k']>'v'", "a==1", "1a=2"] {
            assert!(grammar::parse(bad).is_err(), "{bad}");
        }
    }
}
