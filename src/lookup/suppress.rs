//! The do-not-contact list (`[send] suppress`), read as people keep one: one column of e-mails or
//! contact ids (a header line is fine), or a CSV with an `email`, `id` or `external_id` column
//! among others (`name,email` exports), separated by commas, tabs or semicolons, with e-mails
//! also written as `Ann <ann@example.com>`. An entry that is none of these is refused with its
//! line: a list that silently matches nothing would message everyone on it.
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use anyhow::Context as _;

use crate::input::files::{capped, MAX_LIST_BYTES};

/// The e-mail in `Ann <ann@x.test>` or `ann@x.test`, in lower case; `None` for anything else.
fn email(cell: &str) -> Option<String> {
    let cell = cell.trim();
    let inner = match (cell.rfind('<'), cell.ends_with('>')) {
        (Some(open), true) => &cell[open + 1..cell.len() - 1],
        _ => cell,
    };
    let inner = inner.trim().trim_start_matches("mailto:");
    let (local, domain) = inner.split_once('@')?;
    let plain = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c == '<');
    (plain(local) && plain(domain)).then(|| inner.to_lowercase())
}

/// A contact id or external id: one word of visible characters.
fn id(cell: &str) -> Option<String> {
    let cell = cell.trim();
    (!cell.is_empty() && !cell.chars().any(|c| c.is_whitespace() || c.is_control()))
        .then(|| cell.to_string())
}

/// The separator the first line uses most among `,`, tab and `;` (outside quotes); a comma when
/// it has none.
fn delimiter(first_line: &str) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for b in first_line.bytes() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => counts[0] += 1,
            b'\t' if !quoted => counts[1] += 1,
            b';' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let best = (0..3).max_by_key(|&i| (counts[i], 3 - i)).unwrap_or(0);
    if counts[best] == 0 {
        b','
    } else {
        [b',', b'\t', b';'][best]
    }
}

/// What a column of a list with a header holds.
#[derive(Clone, Copy, PartialEq)]
enum Holds {
    Email,
    Id,
}

fn header_column(cell: &str) -> Option<Holds> {
    match cell
        .trim()
        .trim_start_matches('\u{feff}')
        .to_lowercase()
        .replace(['-', ' '], "_")
        .as_str()
    {
        "email" | "e_mail" | "email_address" => Some(Holds::Email),
        "id" | "contact_id" | "intercom_id" | "external_id" | "user_id" => Some(Holds::Id),
        _ => None,
    }
}

/// The list's e-mails (lower case) and ids, or the first line that is none of the forms.
pub(crate) fn load_suppress(path: &Path) -> anyhow::Result<HashSet<String>> {
    let what = "[send] suppress";
    let mut text = String::new();
    capped(path, MAX_LIST_BYTES)
        .with_context(|| format!("{what}: give a CSV with one column of e-mails or ids"))?
        .read_to_string(&mut text)
        .with_context(|| format!("{what}: cannot read {}", path.display()))?;
    let first = text.lines().next().unwrap_or("");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter(first))
        .from_reader(text.as_bytes());
    let mut set = HashSet::new();
    let mut columns: Option<Vec<(usize, Holds)>> = None;
    for (i, record) in reader.records().enumerate() {
        let line = record
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map_or(i as u64 + 1, csv::Position::line);
        let bad = |why: String| anyhow::anyhow!("{what}: {} line {line}: {why}", path.display());
        let record = record.map_err(|e| bad(e.to_string()))?;
        if i == 0 {
            let named: Vec<(usize, Holds)> = record
                .iter()
                .enumerate()
                .filter_map(|(c, h)| header_column(h).map(|k| (c, k)))
                .collect();
            if !named.is_empty() {
                columns = Some(named);
                continue;
            }
        }
        let cells: Vec<&str> = record.iter().filter(|c| !c.trim().is_empty()).collect();
        match &columns {
            Some(named) => {
                for &(c, holds) in named {
                    let Some(cell) = record.get(c).filter(|c| !c.trim().is_empty()) else {
                        continue;
                    };
                    let key = match holds {
                        Holds::Email => email(cell),
                        Holds::Id => id(cell),
                    };
                    let key = key.ok_or_else(|| {
                        bad(format!(
                            "{:?} is not {}",
                            cell,
                            match holds {
                                Holds::Email => "an e-mail address",
                                Holds::Id => "an id (one word)",
                            }
                        ))
                    })?;
                    set.insert(key);
                }
            }
            None => match cells.as_slice() {
                [] => {}
                [one] => {
                    let key = email(one).or_else(|| id(one)).ok_or_else(|| {
                        bad(format!("{one:?} is neither an e-mail address nor an id"))
                    })?;
                    set.insert(key);
                }
                many => {
                    let emails: Vec<String> = many.iter().filter_map(|c| email(c)).collect();
                    if emails.is_empty() {
                        return Err(bad(format!(
                            "{} columns and no e-mail address among them: give one column of e-mails or ids, or a header line naming the `email`, `id` or `external_id` column",
                            many.len()
                        )));
                    }
                    set.extend(emails);
                }
            },
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> anyhow::Result<Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dnc.csv");
        std::fs::write(&path, text).unwrap();
        let mut v: Vec<String> = load_suppress(&path)?.into_iter().collect();
        v.sort();
        Ok(v)
    }

    #[test]
    fn reads_the_layouts_people_keep() {
        let want = vec!["a@x.test".to_string(), "b@x.test".to_string()];
        assert_eq!(load("A@x.test\nb@x.test\n").unwrap(), want);
        assert_eq!(load("Email\nA@x.test\nb@x.test\n").unwrap(), want);
        assert_eq!(
            load("name,email\nAnn,A@x.test\nBo,b@x.test\n").unwrap(),
            want
        );
        assert_eq!(
            load("name\temail\nAnn\tA@x.test\nBo\tb@x.test\n").unwrap(),
            want
        );
        assert_eq!(
            load("name;email\nAnn;A@x.test\nBo;b@x.test\n").unwrap(),
            want
        );
        assert_eq!(load("\"Ann <A@x.test>\"\nBo <b@x.test>\n").unwrap(), want);
        assert_eq!(load("Ann,A@x.test\nBo,b@x.test\n").unwrap(), want);
        assert_eq!(
            load("id,external_id,email\nc1,u-7,\n,,b@x.test\n").unwrap(),
            vec!["b@x.test", "c1", "u-7"]
        );
        assert_eq!(load("c1\nc2\n").unwrap(), vec!["c1", "c2"]);
    }

    #[test]
    fn an_entry_of_no_form_is_refused_with_its_line() {
        let err = load("a@x.test\nAnn Smith\n").unwrap_err().to_string();
        assert!(
            err.ends_with("line 2: \"Ann Smith\" is neither an e-mail address nor an id"),
            "{err}"
        );
        let err = load("name,company\nAnn,Acme\n").unwrap_err().to_string();
        assert!(
            err.contains("line 1: 2 columns and no e-mail address among them"),
            "{err}"
        );
        let err = load("email\nnot an address\n").unwrap_err().to_string();
        assert!(
            err.contains("line 2: \"not an address\" is not an e-mail address"),
            "{err}"
        );
    }
}
