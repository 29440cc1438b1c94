//! The recipients CSV's columns a results file repeats (`[results] columns`,
//! `--results-columns`), checked against the CSV before anything is sent.
use anyhow::bail;

use crate::input::config::Campaign;

/// The CSV columns `[results] columns` (or `--results-columns`, as `label` says) names, by index:
/// each by its exact header or by the name a template knows it by (`First name` or
/// `first_name`). A name given twice is refused: the results file's header would have it twice.
pub(crate) fn copied_columns(
    c: &Campaign,
    wanted: &[String],
    label: &str,
) -> anyhow::Result<Vec<usize>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(twice) = wanted
        .iter()
        .enumerate()
        .find_map(|(i, w)| wanted[..i].contains(w).then_some(w))
    {
        bail!("{label}: `{twice}` is named twice; name each column once");
    }
    // The name heads a column of the results file, which a spreadsheet opens.
    if let Some(formula) = wanted
        .iter()
        .find(|w| w.as_str() != crate::results::cells::escape(w))
    {
        bail!("{label}: `{formula}` begins with a character that makes a spreadsheet read it as a formula (= + - @ ' tab or CR); rename that column of the CSV");
    }
    let (recipients, _) = crate::input::recipients::Recipients::open(&c.recipients, c.delimiter)
        .map_err(|p| anyhow::anyhow!("{p}"))?;
    let headers = recipients.columns();
    wanted
        .iter()
        .map(|wanted| {
            headers
                .iter()
                .position(|h| h == wanted)
                .or_else(|| {
                    headers
                        .iter()
                        .position(|h| crate::input::recipients::template_names(h).contains(wanted))
                })
                .ok_or_else(|| {
                    let hint = crate::template::closest(wanted, headers)
                        .map(|h| format!("; did you mean `{h}`?"))
                        .unwrap_or_default();
                    anyhow::anyhow!(
                        "{label}: `{wanted}` is not a column of {}{hint}",
                        c.recipients.display()
                    )
                })
        })
        .collect()
}
