//! The names a CSV column has in templates: what spreadsheet headers (`First name`, `Intercom ID`,
//! `Email`, `Prénom`) become so that a template can read them, and so that the header checks can
//! find two columns a template could not tell apart.

/// The snake_case name every header gets, by one rule: spelt in ASCII (`é` as `e`, `ß` as `ss`),
/// split into words at each run of other characters (spaces, dots, dashes ...) and where a lower
/// case letter or digit meets a capital (`firstName`, `HTTPCode`), the words in lower case joined
/// by one `_`, and `_` before a leading digit: `Email` is `email`, `Intercom ID` `intercom_id`,
/// `First name` `first_name`, `user.name` `user_name`, `Prénom` `prenom`, `2024 spend`
/// `_2024_spend`. `None` for a header with no letter or digit; every cell stays reachable by its
/// exact header, as `columns["Intercom ID"]`.
pub(crate) fn template_name(header: &str) -> Option<String> {
    let ascii = deunicode::deunicode(header);
    let mut name = String::with_capacity(ascii.len() + 4);
    for word in ascii
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        for part in camel_words(word) {
            if !name.is_empty() {
                name.push('_');
            }
            name.push_str(&part.to_ascii_lowercase());
        }
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    (!name.is_empty()).then_some(name)
}

/// Every name templates know a header by: its snake_case name, and the header as written when
/// that is already a name Tera can read (ASCII letters, digits and `_`, not starting with a
/// digit): `Email` answers as `email` and as `Email`.
pub(crate) fn template_names(header: &str) -> Vec<String> {
    let mut names: Vec<String> = template_name(header).into_iter().collect();
    if is_name(header) && !names.iter().any(|n| n == header) {
        names.push(header.to_string());
    }
    names
}

/// An ASCII word split where a lower case letter or digit meets a capital (`firstName`), and
/// before the last capital of a run that a lower case letter follows (`HTTPCode`: `HTTP`, `Code`).
fn camel_words(word: &str) -> Vec<&str> {
    let b = word.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    for i in 1..b.len() {
        let up = b[i].is_ascii_uppercase();
        let after_lower = b[i - 1].is_ascii_lowercase() || b[i - 1].is_ascii_digit();
        let run_ends =
            b[i - 1].is_ascii_uppercase() && b.get(i + 1).is_some_and(u8::is_ascii_lowercase);
        if up && (after_lower || run_ends) {
            parts.push(&word[start..i]);
            start = i;
        }
    }
    parts.push(&word[start..]);
    parts
}

/// Whether Tera reads `text` as a name.
fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
