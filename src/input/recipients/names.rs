//! The name a CSV column has in templates: what spreadsheet headers (`First name`, `Intercom ID`,
//! `Prénom`) become so that a template can read them, and so that the header checks can find two
//! columns a template could not tell apart.

/// The name templates use for a CSV header. A header that is already a name Tera can read
/// (ASCII letters, digits and `_`, not starting with a digit) is used as written. Any other is
/// spelt in ASCII (`é` as `e`, `ß` as `ss`), in lower case, with each run of other characters
/// (spaces, dots, dashes ...) as one `_`, none at either end, and `_` before a leading digit:
/// `Intercom ID` is `intercom_id`, `First name` `first_name`, `user.name` `user_name`,
/// `Prénom` `prenom`, `2024 spend` `_2024_spend`. `None` for a header with no letter or digit;
/// every cell stays reachable by its exact header, as `columns["Intercom ID"]`.
pub(crate) fn template_name(header: &str) -> Option<String> {
    if is_name(header) {
        return Some(header.to_string());
    }
    let ascii = deunicode::deunicode(header).to_ascii_lowercase();
    let mut name = String::with_capacity(ascii.len() + 1);
    for word in ascii
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !name.is_empty() {
            name.push('_');
        }
        name.push_str(word);
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    (!name.is_empty()).then_some(name)
}

/// Whether Tera reads `text` as a name.
fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
