//! Row selections as users write them: `5,9,12-20`, or `all`.
use std::fmt;
use std::str::FromStr;

/// A set of 1-based row numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowSet {
    All,
    /// Inclusive ranges, as written.
    Ranges(Vec<(u64, u64)>),
}

impl RowSet {
    /// The rows named one by one, in order, consecutive ones joined as a range: printed, it is
    /// the flag's value that names exactly these rows (`4-6,9`).
    pub fn of_rows(rows: &[u64]) -> RowSet {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for &row in rows {
            match ranges.last_mut() {
                Some(last) if last.1.checked_add(1) == Some(row) => last.1 = row,
                _ => ranges.push((row, row)),
            }
        }
        RowSet::Ranges(ranges)
    }

    pub fn contains(&self, row: u64) -> bool {
        match self {
            RowSet::All => true,
            RowSet::Ranges(r) => r.iter().any(|&(a, b)| (a..=b).contains(&row)),
        }
    }
}

/// `row 4`, `rows 4, 5, 6` (up to 20, then how many in all): rows named in a sentence.
pub fn said(rows: &[u64]) -> String {
    let listed: Vec<String> = rows.iter().take(20).map(u64::to_string).collect();
    match rows.len() {
        1 => format!("row {}", listed[0]),
        n if n > 20 => format!("rows {}, … ({n} in all)", listed.join(", ")),
        _ => format!("rows {}", listed.join(", ")),
    }
}

/// Rows as a flag takes them (`4-6,9`): every row is named, since a printed command is run as
/// printed.
pub fn arg(rows: &[u64]) -> String {
    RowSet::of_rows(rows).to_string()
}

impl FromStr for RowSet {
    type Err = String;

    fn from_str(s: &str) -> Result<RowSet, String> {
        if s.trim() == "all" {
            return Ok(RowSet::All);
        }
        let bad = |part: &str, why: &str| {
            format!("invalid rows `{s}`: `{part}` {why} (write rows as `5,9,12-20`, or `all`)")
        };
        let number = |part: &str, n: &str| match n.trim().parse::<u64>() {
            Ok(0) => Err(bad(part, "is not a row: rows count from 1")),
            Ok(n) => Ok(n),
            Err(_) => Err(bad(part, "is not a row number")),
        };
        let mut ranges = Vec::new();
        for part in s.split(',') {
            let range = match part.split_once('-') {
                Some((a, b)) => (number(part, a)?, number(part, b)?),
                None => {
                    let n = number(part, part)?;
                    (n, n)
                }
            };
            if range.0 > range.1 {
                return Err(bad(part, "goes down"));
            }
            ranges.push(range);
        }
        Ok(RowSet::Ranges(ranges))
    }
}

impl fmt::Display for RowSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowSet::All => f.write_str("all"),
            RowSet::Ranges(r) => {
                let parts: Vec<String> = r
                    .iter()
                    .map(|&(a, b)| {
                        if a == b {
                            a.to_string()
                        } else {
                            format!("{a}-{b}")
                        }
                    })
                    .collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_one_by_one_print_as_the_flag_reads_them() {
        let set = RowSet::of_rows(&[4, 5, 6, 9, 11, 12]);
        assert_eq!(set.to_string(), "4-6,9,11-12");
        assert_eq!(set.to_string().parse::<RowSet>().unwrap(), set);
        assert_eq!(RowSet::of_rows(&[7]).to_string(), "7");
    }

    #[test]
    fn reads_lists_and_ranges_and_says_what_is_wrong() {
        let r: RowSet = "5,9,12-20".parse().unwrap();
        assert!(r.contains(5) && r.contains(12) && r.contains(20));
        assert!(!r.contains(6) && !r.contains(21));
        assert_eq!(r.to_string(), "5,9,12-20");
        assert_eq!("all".parse::<RowSet>().unwrap(), RowSet::All);
        for (bad, why) in [
            ("0", "rows count from 1"),
            ("5-3", "goes down"),
            ("x", "not a row"),
        ] {
            let e = bad.parse::<RowSet>().unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
}
