//! The result table and how figures are written in it.

use super::Stats;
use std::fmt::Write as _;

/// The unit a table row is shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Nanoseconds (row statistics are given in ns).
    Ns,
    /// Microseconds (row statistics are given in ns).
    Us,
    /// Milliseconds (row statistics are given in ns).
    Ms,
    /// Something other than time (messages/s, bytes...): shown as given,
    /// with no ratio to the floor unless the table has a rate floor
    /// ([`Table::set_rate_floor`]).
    Other(&'static str),
}

impl Unit {
    fn label(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::Us => "µs",
            Unit::Ms => "ms",
            Unit::Other(s) => s,
        }
    }

    /// Nanoseconds per unit, `None` if not a time.
    fn ns(self) -> Option<f64> {
        match self {
            Unit::Ns => Some(1.0),
            Unit::Us => Some(1e3),
            Unit::Ms => Some(1e6),
            Unit::Other(_) => None,
        }
    }
}

struct Row {
    name: String,
    stats: Stats,
    unit: Unit,
    ratio: bool,
    /// Texts of the extra columns ([`Table::add_column`]), in order.
    cells: Vec<String>,
}

/// A table of figures: name, p50, p90, p99, (p99.9,) min, max, unit, the
/// ratio of the row's p50 to the floor's p50 (a time row once a floor is
/// set; another row once a rate floor is set) and any extra columns.
pub struct Table {
    title: String,
    floor_ns: Option<f64>,
    rate_floor: Option<f64>,
    ratio_label: String,
    show_p999: bool,
    extra: Vec<String>,
    rows: Vec<Row>,
}

impl Table {
    /// An empty table.
    pub fn new(title: impl Into<String>) -> Table {
        Table {
            title: title.into(),
            floor_ns: None,
            rate_floor: None,
            ratio_label: "vs floor".to_owned(),
            show_p999: false,
            extra: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// Adds a p99.9 column (after p99).
    pub fn show_p999(&mut self) {
        self.show_p999 = true;
    }

    /// Sets the reference for the ratio column of rows that are not times
    /// ([`Unit::Other`]: rates, sizes), in the rows' unit. Such rows show
    /// no ratio unless this is set.
    pub fn set_rate_floor(&mut self, value: f64) {
        self.rate_floor = Some(value);
    }

    /// Adds a column after the ratio, filled by
    /// [`Table::row_with_cells`] (`-` where a row gives no text).
    pub fn add_column(&mut self, label: impl Into<String>) {
        self.extra.push(label.into());
    }

    /// Sets the reference for the ratio column, in nanoseconds.
    pub fn set_floor_ns(&mut self, ns: f64) {
        self.floor_ns = Some(ns);
    }

    /// Names the ratio column (`vs floor` unless set), for tables whose
    /// reference is a baseline rather than a floor.
    pub fn set_ratio_label(&mut self, label: impl Into<String>) {
        self.ratio_label = label.into();
    }

    /// Adds a row and makes its p50 the floor. `stats_ns` in nanoseconds.
    pub fn floor(&mut self, name: impl Into<String>, stats_ns: Stats, unit: Unit) {
        self.set_floor_ns(stats_ns.p50);
        self.row(name, stats_ns, unit);
    }

    /// Adds a row with a ratio to the floor. For time units `stats` are in
    /// nanoseconds and shown in `unit`.
    pub fn row(&mut self, name: impl Into<String>, stats: Stats, unit: Unit) {
        self.row_with_cells(name, stats, unit, Vec::new());
    }

    /// Adds a row without a ratio.
    pub fn row_without_ratio(&mut self, name: impl Into<String>, stats: Stats, unit: Unit) {
        self.rows.push(Row {
            name: name.into(),
            stats,
            unit,
            ratio: false,
            cells: Vec::new(),
        });
    }

    /// Adds a row with a ratio to the floor and the texts of the extra
    /// columns ([`Table::add_column`]), in order.
    pub fn row_with_cells(
        &mut self,
        name: impl Into<String>,
        stats: Stats,
        unit: Unit,
        cells: Vec<String>,
    ) {
        self.rows.push(Row {
            name: name.into(),
            stats,
            unit,
            ratio: true,
            cells,
        });
    }

    /// The table as text.
    pub fn render(&self) -> String {
        let name_w = self
            .rows
            .iter()
            .map(|r| r.name.chars().count())
            .chain([6])
            .max()
            .unwrap_or(6);
        let unit_w = self
            .rows
            .iter()
            .map(|r| r.unit.label().chars().count())
            .chain([5])
            .max()
            .unwrap_or(5);
        let ratio_w = self.ratio_label.chars().count().max(9);
        let extra_w: Vec<usize> = self
            .extra
            .iter()
            .enumerate()
            .map(|(i, label)| {
                self.rows
                    .iter()
                    .filter_map(|r| r.cells.get(i))
                    .map(|c| c.chars().count())
                    .chain([label.chars().count(), 9])
                    .max()
                    .unwrap_or(9)
            })
            .collect();
        let mut columns = vec!["p50", "p90", "p99"];
        if self.show_p999 {
            columns.push("p99.9");
        }
        columns.extend(["min", "max"]);
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.title);
        let mut header = format!("{:<name_w$} ", "figure");
        for c in &columns {
            let _ = write!(header, " {c:>9}");
        }
        let _ = write!(
            header,
            "  {:<unit_w$} {:>ratio_w$}",
            "unit", self.ratio_label
        );
        for (label, w) in self.extra.iter().zip(&extra_w) {
            let _ = write!(header, " {label:>w$}");
        }
        let _ = writeln!(out, "{header}");
        let _ = writeln!(out, "{}", "-".repeat(header.chars().count()));
        for r in &self.rows {
            let s = match r.unit.ns() {
                Some(per) => r.stats.scaled(1.0 / per),
                None => r.stats,
            };
            let ratio = match (r.ratio, r.unit.ns(), self.floor_ns, self.rate_floor) {
                (true, Some(_), Some(floor), _) if floor > 0.0 => fmt_ratio(r.stats.p50 / floor),
                (true, None, _, Some(floor)) if floor > 0.0 => fmt_ratio(r.stats.p50 / floor),
                _ => "-".to_owned(),
            };
            let mut values = vec![s.p50, s.p90, s.p99];
            if self.show_p999 {
                values.push(s.p999);
            }
            values.extend([s.min, s.max]);
            let mut line = format!("{:<name_w$} ", r.name);
            for v in values {
                let _ = write!(line, " {:>9}", fmt_value(v));
            }
            let _ = write!(line, "  {:<unit_w$} {:>ratio_w$}", r.unit.label(), ratio);
            for (i, w) in extra_w.iter().enumerate() {
                let cell = r.cells.get(i).map_or("-", String::as_str);
                let _ = write!(line, " {cell:>w$}");
            }
            let _ = writeln!(out, "{line}");
        }
        out
    }

    /// Prints the table to stdout.
    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// A figure with about three significant digits.
pub fn fmt_value(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A ratio as the tables show it (`2.5x`, `312x`; below 1, two
/// significant digits: `0.037x`).
pub fn fmt_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}x")
    } else if r >= 1.0 || r <= 0.0 || !r.is_finite() {
        format!("{r:.1}x")
    } else {
        let decimals = (1 - r.log10().floor() as i32).max(1) as usize;
        format!("{r:.decimals$}x")
    }
}

/// Prints a progress note to stderr (kept off stdout, which holds the
/// results).
pub fn progress(what: &str) {
    eprintln!("  measuring {what}...");
}

/// `v` with three significant digits (`0.00321`, `1.13`, `412`).
pub fn fmt_significant(v: f64) -> String {
    if !v.is_finite() || v == 0.0 || v.abs() >= 100.0 {
        return fmt_value(v);
    }
    let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.decimals$}")
}

/// A goal's verdict: `PASS`, or `MISS (by how much)`.
pub fn verdict(pass: bool, by: impl FnOnce() -> String) -> String {
    if pass {
        "PASS".to_owned()
    } else {
        format!("MISS ({})", by())
    }
}

/// The unit a time row of p50 `ns` reads best in: ns below 10 µs, µs
/// below 10 ms, ms above.
pub fn unit_for_ns(ns: f64) -> Unit {
    if ns < 1e4 {
        Unit::Ns
    } else if ns < 1e7 {
        Unit::Us
    } else {
        Unit::Ms
    }
}

/// Adds a latency row (statistics in ns, shown in the unit that fits its
/// p50) with `cells` and then its sample count as extra columns, or, if
/// it failed, notes it in `failed`.
pub fn latency_row(
    table: &mut Table,
    failed: &mut Vec<String>,
    label: &str,
    result: &Result<Stats, String>,
    mut cells: Vec<String>,
) {
    match result {
        Ok(s) => {
            cells.push(s.n.to_string());
            table.row_with_cells(label, *s, unit_for_ns(s.p50), cells);
        }
        Err(e) => failed.push(format!("{label}: {e}")),
    }
}

/// Prints the rows that could not be measured, if any.
pub fn print_failed(failed: &[String]) {
    if !failed.is_empty() {
        println!("\nnot measured:");
        for f in failed {
            println!("  {f}");
        }
    }
}

/// "1 round", "5 rounds".
pub fn fmt_rounds(n: u32) -> String {
    if n == 1 {
        "1 round".to_owned()
    } else {
        format!("{n} rounds")
    }
}

/// A size in bytes as `64 B`, `4 KiB`, `16 MiB` (exact multiples only;
/// bytes otherwise).
pub fn fmt_size(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.trailing_zeros() >= 20 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.trailing_zeros() >= 10 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}
