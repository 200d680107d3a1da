//! How commands print: aligned tables (kubectl's look: upper-case headers, columns three spaces apart),
//! colour only on a terminal (never with `NO_COLOR` or `--no-color`), and YAML or JSON documents for
//! scripts.

use std::io::IsTerminal as _;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;

use super::error::PluginError;

/// `-o`: the output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns, long messages cut short.
    #[default]
    Table,
    /// Aligned columns with every detail.
    Wide,
    /// A YAML document.
    Yaml,
    /// A JSON document.
    Json,
}

/// How a cell is coloured on a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// As is.
    Plain,
    /// Green: Ready, works.
    Good,
    /// Red: not Ready, failed, will not work.
    Bad,
    /// Yellow: unknown, in progress, different.
    Warn,
    /// Bold: headings.
    Heading,
}

impl Style {
    fn code(self) -> Option<&'static str> {
        match self {
            Style::Plain => None,
            Style::Good => Some("32"),
            Style::Bad => Some("31"),
            Style::Warn => Some("33"),
            Style::Heading => Some("1"),
        }
    }

    /// The style of a condition status: True is good, False bad, anything else a warning.
    pub fn of_status(status: &str) -> Style {
        match status {
            "True" => Style::Good,
            "False" => Style::Bad,
            "-" | "" => Style::Plain,
            _ => Style::Warn,
        }
    }
}

/// One cell of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The text.
    pub text: String,
    /// Its colour on a terminal.
    pub style: Style,
}

impl Cell {
    /// A plain cell.
    pub fn plain(text: impl Into<String>) -> Self {
        Cell { text: text.into(), style: Style::Plain }
    }
    /// A styled cell.
    pub fn styled(text: impl Into<String>, style: Style) -> Self {
        Cell { text: text.into(), style }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell::plain(text)
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell::plain(text)
    }
}

/// A table: headers and rows of cells.
#[derive(Clone, Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table with these headers (printed upper-case).
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(headers: I) -> Self {
        Table { headers: headers.into_iter().map(|h| h.as_ref().to_uppercase()).collect(), rows: Vec::new() }
    }

    /// Adds a row (missing cells are empty).
    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, coloured when `colour`; trailing spaces trimmed.
    pub fn render(&self, colour: bool) -> String {
        let columns = self.headers.len().max(self.rows.iter().map(Vec::len).max().unwrap_or(0));
        let mut widths = vec![0usize; columns];
        for (i, h) in self.headers.iter().enumerate() {
            widths[i] = widths[i].max(h.chars().count());
        }
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.text.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<Cell> = self.headers.iter().map(|h| Cell::plain(h.clone())).collect();
        for row in std::iter::once(&header).chain(self.rows.iter()) {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).cloned().unwrap_or_else(|| Cell::plain(""));
                let pad = width.saturating_sub(cell.text.chars().count());
                match (colour, cell.style.code()) {
                    (true, Some(code)) if !cell.text.is_empty() => {
                        line.push_str(&format!("\x1b[{code}m{}\x1b[0m", cell.text));
                    }
                    _ => line.push_str(&cell.text),
                }
                if i + 1 < columns {
                    line.push_str(&" ".repeat(pad + 3));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Prints tables and documents in the chosen format.
#[derive(Clone, Copy, Debug)]
pub struct Printer {
    /// The format.
    pub format: OutputFormat,
    /// Whether to colour.
    pub colour: bool,
}

impl Printer {
    /// A printer for `format`; colour only when stdout is a terminal, `NO_COLOR` is unset and `--no-color`
    /// was not given.
    pub fn new(format: OutputFormat, no_color: bool) -> Self {
        let colour =
            !no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal();
        Printer { format, colour }
    }

    /// Whether the output is a document (YAML or JSON) rather than a table.
    pub fn is_document(&self) -> bool {
        matches!(self.format, OutputFormat::Yaml | OutputFormat::Json)
    }

    /// Whether tables show every detail.
    pub fn wide(&self) -> bool {
        self.format == OutputFormat::Wide
    }

    /// A value as the chosen document format (YAML for table formats too).
    pub fn document<T: Serialize>(&self, value: &T) -> Result<String, PluginError> {
        match self.format {
            OutputFormat::Json => serde_json::to_string_pretty(value)
                .map(|s| s + "\n")
                .map_err(|e| PluginError::Other(format!("cannot write JSON: {e}"))),
            _ => serde_yaml::to_string(value).map_err(|e| PluginError::Other(format!("cannot write YAML: {e}"))),
        }
    }

    /// A heading line (bold on a terminal).
    pub fn heading(&self, text: &str) -> String {
        if self.colour { format!("\x1b[1m{text}\x1b[0m") } else { text.to_string() }
    }

    /// A message cut to fit a table (every detail with `-o wide`).
    pub fn message(&self, text: &str) -> String {
        if self.wide() { text.to_string() } else { shorten(text, MESSAGE_CHARS) }
    }
}

/// How many characters of a message a table shows (without `-o wide`).
pub const MESSAGE_CHARS: usize = 90;

/// `text` cut to `max` characters, with `...` when cut; newlines become spaces.
pub fn shorten(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut out: String = flat.chars().take(max.saturating_sub(3)).collect();
    out.push_str("...");
    out
}

/// How long ago `time` was, as kubectl prints ages: `45s`, `3m12s`, `5h`, `2d`.
pub fn age(time: &Time) -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    let seconds = now.duration_since(time.0).as_secs().max(0);
    human_duration(seconds.unsigned_abs())
}

/// A number of seconds as kubectl prints durations.
pub fn human_duration(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// `-` for an absent value.
pub fn or_dash(value: Option<&str>) -> String {
    value.filter(|v| !v.is_empty()).unwrap_or("-").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_like_kubectl_and_colour_only_when_asked() {
        let mut t = Table::new(["name", "ready"]);
        t.row(vec![Cell::plain("web-1"), Cell::styled("True", Style::Good)]);
        t.row(vec![Cell::plain("database-1"), Cell::styled("False", Style::Bad)]);
        let plain = t.render(false);
        assert_eq!(plain, "NAME         READY\nweb-1        True\ndatabase-1   False\n");
        assert!(!plain.contains('\x1b'));
        let coloured = t.render(true);
        assert!(coloured.contains("\x1b[32mTrue\x1b[0m") && coloured.contains("\x1b[31mFalse\x1b[0m"));
        assert!(Table::new(["x"]).is_empty());
    }

    #[test]
    fn durations_and_messages() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(190), "3m10s");
        assert_eq!(human_duration(3600), "60m");
        assert_eq!(human_duration(5 * 3600), "5h");
        assert_eq!(human_duration(3 * 86400), "3d");
        assert_eq!(shorten("a  b\nc", 10), "a b c");
        assert_eq!(shorten("abcdefghijkl", 8), "abcde...");
        assert_eq!(or_dash(None), "-");
        assert_eq!(or_dash(Some("")), "-");
        assert_eq!(or_dash(Some("x")), "x");
    }

    #[test]
    fn documents_in_json_and_yaml() {
        let p = Printer { format: OutputFormat::Json, colour: false };
        assert_eq!(p.document(&serde_json::json!({"a": 1})).expect("json"), "{\n  \"a\": 1\n}\n");
        let p = Printer { format: OutputFormat::Yaml, colour: false };
        assert_eq!(p.document(&serde_json::json!({"a": 1})).expect("yaml"), "a: 1\n");
        assert!(p.is_document());
    }
}
