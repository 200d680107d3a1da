//! The CIMI query parameters on the provider side: `$filter` (the full grammar of reference section 2),
//! `$select`, `$expand`, `$first`/`$last` and `$orderby`, applied to JSON documents.

use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

/// How deeply `$filter` parentheses may nest. The parser descends once per parenthesis, so the bound keeps a
/// query of thousands of `(` from exhausting the stack; CIMI filters need two or three levels.
pub const MAX_FILTER_DEPTH: usize = 32;

/// How many segments a `$select` or `$expand` path (`disks/capacity`) may have. Selection descends once per
/// segment; CIMI documents are a few levels deep.
pub const MAX_PATH_SEGMENTS: usize = 16;

/// A query parameter that cannot be understood (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// The comparison operators of `$filter`.
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
    /// The operator with its operands swapped (`1 < cpu` is `cpu > 1`).
    fn flipped(self) -> Op {
        match self {
            Op::Lt => Op::Gt,
            Op::Le => Op::Ge,
            Op::Gt => Op::Lt,
            Op::Ge => Op::Le,
            other => other,
        }
    }

    fn holds(self, ord: Ordering) -> bool {
        match self {
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Eq => ord == Ordering::Equal,
            Op::Ge => ord != Ordering::Less,
            Op::Gt => ord == Ordering::Greater,
            Op::Ne => ord != Ordering::Equal,
        }
    }
}

/// A literal of `$filter`.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// An integer.
    Int(i64),
    /// A quoted string.
    Str(String),
    /// `true` or `false`.
    Bool(bool),
    /// An xs:dateTime.
    Date(DateTime<FixedOffset>),
}

/// A parsed `$filter` expression.
///
/// A chain `a or b or c` is one [`Filter::Or`] of three parts (not a nest of pairs), so the depth of the tree
/// grows only with the parentheses, which [`MAX_FILTER_DEPTH`] bounds: evaluating and dropping a filter of any
/// length stays shallow.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Some part matches.
    Or(Vec<Filter>),
    /// Every part matches.
    And(Vec<Filter>),
    /// A top-level attribute compared with a literal.
    Compare(String, Op, Literal),
    /// `property['key'] op 'value'`: some property with that key compares so.
    Property(String, Op, String),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Lit(Literal),
    Op(Op),
    Open,
    Close,
    LBracket,
    RBracket,
}

fn tokenize(input: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            '[' => {
                out.push(Token::LBracket);
                i += 1;
            }
            ']' => {
                out.push(Token::RBracket);
                i += 1;
            }
            '<' | '>' | '=' | '!' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('<', Some('=')) => (Op::Le, 2),
                    ('>', Some('=')) => (Op::Ge, 2),
                    ('!', Some('=')) => (Op::Ne, 2),
                    ('<', _) => (Op::Lt, 1),
                    ('>', _) => (Op::Gt, 1),
                    ('=', _) => (Op::Eq, 1),
                    _ => return Err(QueryError(format!("unexpected '{c}' in $filter"))),
                };
                out.push(Token::Op(op));
                i += len;
            }
            '\'' | '"' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(QueryError("unterminated string in $filter".into())),
                        Some(&ch) if ch == quote => {
                            // A doubled quote stands for the quote itself.
                            if chars.get(i + 1) == Some(&quote) {
                                s.push(quote);
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Lit(Literal::Str(s)));
            }
            '0'..='9' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '-' | ':' | '.' | '+'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if let Ok(n) = word.parse::<i64>() {
                    out.push(Token::Lit(Literal::Int(n)));
                } else if let Ok(d) = DateTime::parse_from_rfc3339(&word) {
                    out.push(Token::Lit(Literal::Date(d)));
                } else {
                    return Err(QueryError(format!("'{word}' is neither an integer nor an xs:dateTime")));
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match word.as_str() {
                    "true" => out.push(Token::Lit(Literal::Bool(true))),
                    "false" => out.push(Token::Lit(Literal::Bool(false))),
                    _ => out.push(Token::Ident(word)),
                }
            }
            other => return Err(QueryError(format!("unexpected '{other}' in $filter"))),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn is_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(w)) if w == kw)
    }

    /// `and_expr ("or" and_expr)*`, inside `depth` parentheses.
    fn filter(&mut self, depth: usize) -> Result<Filter, QueryError> {
        let mut parts = vec![self.and_expr(depth)?];
        while self.is_keyword("or") {
            self.pos += 1;
            parts.push(self.and_expr(depth)?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Filter::Or(parts) })
    }

    /// `comp ("and" comp)*`, inside `depth` parentheses.
    fn and_expr(&mut self, depth: usize) -> Result<Filter, QueryError> {
        let mut parts = vec![self.comp(depth)?];
        while self.is_keyword("and") {
            self.pos += 1;
            parts.push(self.comp(depth)?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Filter::And(parts) })
    }

    fn op(&mut self) -> Result<Op, QueryError> {
        match self.next() {
            Some(Token::Op(op)) => Ok(op),
            other => Err(QueryError(format!("expected a comparison operator, found {other:?}"))),
        }
    }

    /// A parenthesized filter or one comparison, inside `depth` parentheses.
    fn comp(&mut self, depth: usize) -> Result<Filter, QueryError> {
        match self.next() {
            Some(Token::Open) => {
                if depth >= MAX_FILTER_DEPTH {
                    return Err(QueryError(format!("$filter nests parentheses deeper than {MAX_FILTER_DEPTH} levels")));
                }
                let inner = self.filter(depth + 1)?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    _ => Err(QueryError("missing ')' in $filter".into())),
                }
            }
            Some(Token::Ident(word)) if word == "property" && self.peek() == Some(&Token::LBracket) => {
                self.pos += 1;
                let key = match self.next() {
                    Some(Token::Lit(Literal::Str(k))) => k,
                    _ => return Err(QueryError("property[...] needs a quoted key".into())),
                };
                if self.next() != Some(Token::RBracket) {
                    return Err(QueryError("missing ']' after property key".into()));
                }
                let op = self.op()?;
                let value = match self.next() {
                    Some(Token::Lit(Literal::Str(v))) => v,
                    _ => {
                        return Err(QueryError("a property compares with a quoted string".into()));
                    }
                };
                if !matches!(op, Op::Eq | Op::Ne) {
                    return Err(QueryError("strings compare only with = and !=".into()));
                }
                Ok(Filter::Property(key, op, value))
            }
            Some(Token::Ident(attr)) => {
                let op = self.op()?;
                let lit = match self.next() {
                    Some(Token::Lit(l)) => l,
                    other => {
                        return Err(QueryError(format!("expected a value after {attr}, found {other:?}")));
                    }
                };
                check_types(op, &lit)?;
                Ok(Filter::Compare(attr, op, lit))
            }
            Some(Token::Lit(lit)) => {
                let op = self.op()?;
                let attr = match self.next() {
                    Some(Token::Ident(a)) => a,
                    other => {
                        return Err(QueryError(format!("expected an attribute, found {other:?}")));
                    }
                };
                check_types(op, &lit)?;
                Ok(Filter::Compare(attr, op.flipped(), lit))
            }
            other => Err(QueryError(format!("unexpected {other:?} in $filter"))),
        }
    }
}

fn check_types(op: Op, lit: &Literal) -> Result<(), QueryError> {
    match lit {
        Literal::Str(_) | Literal::Bool(_) if !matches!(op, Op::Eq | Op::Ne) => {
            Err(QueryError("strings and booleans compare only with = and !=".into()))
        }
        _ => Ok(()),
    }
}

/// Parses a `$filter` expression.
pub fn parse_filter(input: &str) -> Result<Filter, QueryError> {
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Err(QueryError("empty $filter".into()));
    }
    let mut parser = Parser { tokens, pos: 0 };
    let filter = parser.filter(0)?;
    if parser.pos != parser.tokens.len() {
        return Err(QueryError(format!("unexpected {:?} in $filter", parser.peek())));
    }
    Ok(filter)
}

impl Filter {
    /// Whether the expression refers to this attribute.
    pub fn mentions(&self, attr: &str) -> bool {
        match self {
            Filter::Or(parts) | Filter::And(parts) => parts.iter().any(|p| p.mentions(attr)),
            Filter::Compare(name, _, _) => name == attr,
            Filter::Property(..) => attr == "properties",
        }
    }

    /// Whether a document matches. A missing attribute, or one of another type, never matches.
    pub fn matches(&self, doc: &Map<String, Value>) -> bool {
        match self {
            Filter::Or(parts) => parts.iter().any(|p| p.matches(doc)),
            Filter::And(parts) => parts.iter().all(|p| p.matches(doc)),
            Filter::Property(key, op, value) => doc
                .get("properties")
                .and_then(Value::as_object)
                .and_then(|p| p.get(key))
                .and_then(Value::as_str)
                .is_some_and(|v| op.holds(v.cmp(value.as_str()))),
            Filter::Compare(attr, op, lit) => {
                let Some(v) = doc.get(attr) else { return false };
                let ord = match (lit, v) {
                    (Literal::Int(n), Value::Number(m)) => m.as_i64().map(|m| m.cmp(n)),
                    (Literal::Str(s), Value::String(t)) => Some(t.as_str().cmp(s.as_str())),
                    (Literal::Bool(b), Value::Bool(c)) => Some(c.cmp(b)),
                    (Literal::Date(d), Value::String(t)) => DateTime::parse_from_rfc3339(t).ok().map(|t| t.cmp(d)),
                    (Literal::Str(s), Value::Object(r)) => {
                        r.get("href").and_then(Value::as_str).map(|h| h.cmp(s.as_str()))
                    }
                    _ => None,
                };
                ord.is_some_and(|o| op.holds(o))
            }
        }
    }
}

/// The names of a `$select` or `$expand` (comma-separated, repeated parameters merged, duplicates dropped).
pub fn name_list<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        for name in v.split(',') {
            let name = name.trim();
            if !name.is_empty() && !out.iter().any(|n| n == name) {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// Checks the names of a `$select` or `$expand`: a path has at most [`MAX_PATH_SEGMENTS`] segments.
pub fn check_paths(names: &[String]) -> Result<(), QueryError> {
    match names.iter().find(|n| n.split('/').count() > MAX_PATH_SEGMENTS) {
        Some(n) => Err(QueryError(format!(
            "the path '{}…' has more than {MAX_PATH_SEGMENTS} segments",
            n.chars().take(40).collect::<String>()
        ))),
        None => Ok(()),
    }
}

/// One key of `$orderby`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderKey {
    /// The attribute.
    pub attr: String,
    /// Descending when true.
    pub desc: bool,
}

/// Parses `$orderby=a[:asc|:desc],…`.
pub fn parse_orderby(input: &str) -> Result<Vec<OrderKey>, QueryError> {
    let mut keys = Vec::new();
    for part in input.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (attr, dir) = match part.split_once(':') {
            Some((a, d)) => (a.trim(), d.trim()),
            None => (part, "asc"),
        };
        let desc = match dir {
            "asc" => false,
            "desc" => true,
            other => return Err(QueryError(format!("unknown $orderby direction '{other}'"))),
        };
        keys.push(OrderKey { attr: attr.to_string(), desc });
    }
    Ok(keys)
}

fn compare_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => match (a, b) {
            (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
            (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(Ordering::Equal),
            (Value::String(x), Value::String(y)) => {
                match (DateTime::parse_from_rfc3339(x), DateTime::parse_from_rfc3339(y)) {
                    (Ok(dx), Ok(dy)) => dx.cmp(&dy),
                    _ => x.cmp(y),
                }
            }
            _ => Ordering::Equal,
        },
    }
}

/// Sorts documents by `$orderby` keys (stable; missing attributes last).
pub fn sort(docs: &mut [Map<String, Value>], keys: &[OrderKey]) {
    docs.sort_by(|a, b| {
        for key in keys {
            let mut ord = compare_values(a.get(&key.attr), b.get(&key.attr));
            if key.desc {
                ord = ord.reverse();
            }
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
}

/// The 0-based range of `$first`/`$last` (1-based, inclusive) over `len` entries; empty when first > last.
pub fn page_range(first: Option<u64>, last: Option<u64>, len: usize) -> std::ops::Range<usize> {
    let first = first.unwrap_or(1).max(1) as usize;
    let last = last.map(|l| l as usize).unwrap_or(len).min(len);
    if first > last {
        return 0..0;
    }
    (first - 1)..last
}

/// Keeps only the selected attributes of a document (`resourceURI` always stays; `*` keeps everything).
///
/// Path notation (the `QueryPathNotation` capability): `disks/name` keeps `disks` and, inside it, only `name`
/// (with `href` or `id`, so a reference or an entry stays identified). Inside an inlined collection (`$expand`) the rest of the path
/// applies to each entry, as a plain `$select` on a collection does; inside an array, to each element.
pub fn select(doc: &mut Map<String, Value>, names: &[String]) {
    if names.is_empty() || names.iter().any(|n| n == "*") {
        return;
    }
    // Each top-level attribute named, with the rests of the paths that go through it (none: keep it whole).
    let mut keep: Vec<(&str, Option<Vec<String>>)> = Vec::new();
    for name in names {
        let (head, rest) = match name.split_once('/') {
            Some((h, r)) if !h.is_empty() && !r.is_empty() => (h, Some(r.to_string())),
            _ => (name.trim_matches('/'), None),
        };
        match (keep.iter_mut().find(|(h, _)| *h == head), rest) {
            (Some((_, whole @ Some(_))), None) => *whole = None,
            (Some((_, Some(rests))), Some(r)) => rests.push(r),
            (Some((_, None)), _) => {}
            (None, rest) => keep.push((head, rest.map(|r| vec![r]))),
        }
    }
    doc.retain(|k, _| k == "resourceURI" || keep.iter().any(|(h, _)| h == k));
    for (head, rests) in keep {
        if let (Some(rests), Some(value)) = (rests, doc.get_mut(head)) {
            select_within(value, &rests);
        }
    }
}

/// Applies the rest of `$select` paths inside an attribute's value.
fn select_within(value: &mut Value, rests: &[String]) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|item| select_within(item, rests)),
        Value::Object(obj) if obj.contains_key("count") => {
            // An inlined collection: keep its own attributes, apply the paths to its entries.
            for (k, v) in obj.iter_mut() {
                if let Value::Array(entries) = v
                    && k != "operations"
                {
                    entries.iter_mut().for_each(|e| select_within(e, rests));
                }
            }
        }
        Value::Object(obj) => {
            let mut names = rests.to_vec();
            names.extend(["href".into(), "id".into()]);
            select(obj, &names);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn machines() -> Vec<Map<String, Value>> {
        let docs = vec![
            json!({"name": "web1", "cpu": 1, "state": "STARTED", "bootable": true,
                   "created": "2012-05-25T13:30:15-05:00", "properties": {"env": "prod", "tier": "web"}}),
            json!({"name": "web2", "cpu": 2, "state": "STOPPED", "bootable": false,
                   "created": "2012-05-26T10:00:00Z", "properties": {"env": "dev"}}),
            json!({"name": "db'1", "cpu": 4, "state": "STARTED",
                   "created": "2013-01-01T00:00:00Z"}),
        ];
        docs.into_iter().filter_map(|d| d.as_object().cloned()).collect()
    }

    fn names(filter: &str) -> Vec<String> {
        let f = parse_filter(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        machines()
            .iter()
            .filter(|m| f.matches(m))
            .filter_map(|m| m.get("name").and_then(Value::as_str).map(str::to_string))
            .collect()
    }

    #[test]
    fn filter_table() {
        let table: &[(&str, &[&str])] = &[
            ("name='web1'", &["web1"]),
            ("name=\"web2\"", &["web2"]),
            ("name!='web1'", &["web2", "db'1"]),
            ("name='db''1'", &["db'1"]),
            ("cpu>=2", &["web2", "db'1"]),
            ("cpu>2", &["db'1"]),
            ("cpu<2", &["web1"]),
            ("cpu<=2", &["web1", "web2"]),
            ("cpu=4", &["db'1"]),
            ("cpu!=4", &["web1", "web2"]),
            ("2<cpu", &["db'1"]),
            ("cpu>=2 and state='STARTED'", &["db'1"]),
            ("cpu=1 or cpu=4", &["web1", "db'1"]),
            ("(cpu=1 or cpu=2) and state='STOPPED'", &["web2"]),
            ("cpu=1 or cpu=2 and state='STOPPED'", &["web1", "web2"]),
            ("bootable=true", &["web1"]),
            ("bootable=false", &["web2"]),
            ("bootable!=true", &["web2"]),
            ("created>2012-05-25T13:30:15-05:00", &["web2", "db'1"]),
            ("created<=2012-05-25T18:30:15Z", &["web1"]),
            ("property['env']='prod'", &["web1"]),
            ("property[\"env\"]!='prod'", &["web2"]),
            ("property['tier']='web' or property['env']='dev'", &["web1", "web2"]),
            ("missing='x'", &[]),
            ("name=1", &[]),
        ];
        for (filter, expected) in table {
            assert_eq!(names(filter), *expected, "filter {filter}");
        }
    }

    #[test]
    fn filter_errors() {
        for bad in
            ["", "name=", "name<'a'", "(cpu=1", "cpu=1 and", "name='x", "cpu ~ 1", "property[env]='x'", "bootable>true"]
        {
            assert!(parse_filter(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn filter_chains_are_flat_and_parentheses_bounded() {
        assert_eq!(
            parse_filter("cpu=1 or cpu=2 or cpu=4 and state='STARTED'").expect("parses"),
            Filter::Or(vec![
                Filter::Compare("cpu".into(), Op::Eq, Literal::Int(1)),
                Filter::Compare("cpu".into(), Op::Eq, Literal::Int(2)),
                Filter::And(vec![
                    Filter::Compare("cpu".into(), Op::Eq, Literal::Int(4)),
                    Filter::Compare("state".into(), Op::Eq, Literal::Str("STARTED".into())),
                ]),
            ])
        );
        // A long chain is one flat node: matching and dropping it do not recurse per term.
        let chain = vec!["cpu=3"; 50_000].join(" or ") + " or cpu=4";
        assert_eq!(names(&chain), ["db'1"]);
        let nested = |depth: usize| format!("{}cpu=4{}", "(".repeat(depth), ")".repeat(depth));
        assert_eq!(names(&nested(MAX_FILTER_DEPTH)), ["db'1"]);
        for depth in [MAX_FILTER_DEPTH + 1, 100_000] {
            let err = parse_filter(&nested(depth)).expect_err("too deep");
            assert!(err.0.contains("deeper than 32 levels"), "{depth}: {err}");
        }
        assert!(parse_filter(&"(".repeat(100_000)).is_err());
    }

    #[test]
    fn select_paths_are_bounded() {
        assert!(check_paths(&name_list(["disks/capacity,name"])).is_ok());
        let deep = vec!["a"; MAX_PATH_SEGMENTS].join("/");
        assert!(check_paths(std::slice::from_ref(&deep)).is_ok());
        let err = check_paths(&[format!("{deep}/a")]).expect_err("too deep");
        assert!(err.0.contains("more than 16 segments"), "{err}");
    }

    #[test]
    fn paging_is_one_based_inclusive() {
        assert_eq!(page_range(None, None, 5), 0..5);
        assert_eq!(page_range(Some(2), Some(3), 5), 1..3);
        assert_eq!(page_range(None, Some(1), 5), 0..1);
        assert_eq!(page_range(Some(4), Some(2), 5), 0..0);
        assert_eq!(page_range(Some(3), Some(99), 5), 2..5);
        assert_eq!(page_range(Some(9), None, 5), 0..0);
    }

    #[test]
    fn orderby_and_select() {
        let mut docs = machines();
        sort(&mut docs, &parse_orderby("state:desc,cpu:desc").expect("parses"));
        let order: Vec<_> = docs.iter().filter_map(|d| d.get("name").and_then(Value::as_str)).collect();
        assert_eq!(order, ["web2", "db'1", "web1"]);
        sort(&mut docs, &parse_orderby("created").expect("parses"));
        let order: Vec<_> = docs.iter().filter_map(|d| d.get("name").and_then(Value::as_str)).collect();
        assert_eq!(order, ["web1", "web2", "db'1"]);
        assert!(parse_orderby("name:up").is_err());
        let mut doc = docs[0].clone();
        doc.insert("resourceURI".into(), json!("x"));
        select(&mut doc, &name_list(["name,cpu", "cpu"]));
        assert_eq!(Value::Object(doc), json!({"resourceURI": "x", "name": "web1", "cpu": 1}));
    }

    #[test]
    fn select_with_path_notation() {
        let machine = json!({"resourceURI": "r", "name": "m", "cpu": 2,
            "disks": {"href": "m/disks", "count": 2, "disks": [
                {"href": "m/disks/1", "name": "root", "capacity": 10},
                {"href": "m/disks/2", "name": "data", "capacity": 20}]},
            "eventLog": {"href": "e", "name": "events of m", "summary": {"low": 1}},
            "networkInterfaces": {"href": "m/nics"}});
        let pick = |names: &[&str]| {
            let mut doc = machine.as_object().cloned().expect("object");
            select(&mut doc, &name_list(names.iter().copied()));
            Value::Object(doc)
        };
        // Into an inlined collection: the path applies to each entry.
        assert_eq!(
            pick(&["name,disks/capacity"]),
            json!({"resourceURI": "r", "name": "m", "disks": {"href": "m/disks", "count": 2, "disks": [
                {"href": "m/disks/1", "capacity": 10}, {"href": "m/disks/2", "capacity": 20}]}})
        );
        // Into an inlined resource, two levels deep; the reference keeps its href.
        assert_eq!(
            pick(&["eventLog/summary/low"]),
            json!({"resourceURI": "r", "eventLog": {"href": "e", "summary": {"low": 1}}})
        );
        // A whole attribute named beside a path into it wins; a path into a plain reference keeps the href.
        assert_eq!(pick(&["disks,disks/name"])["disks"], machine["disks"]);
        assert_eq!(
            pick(&["networkInterfaces/name"]),
            json!({"resourceURI": "r", "networkInterfaces": {"href": "m/nics"}})
        );
    }
}
