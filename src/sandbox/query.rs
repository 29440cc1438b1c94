//! The query both searches take (`POST /contacts/search`, `POST /conversations/search`): a filter
//! `{field, operator, value}` or a group `{operator: AND|OR, value: [...]}`, checked against the
//! limits Intercom documents, so that a rehearsal refuses what Intercom would.
use serde_json::Value;

use super::errors::ApiError;

/// Filters a group may hold.
const MAX_FILTERS: usize = 15;
/// A query's levels of groups: a group of filters in a group.
const MAX_NESTING: usize = 2;

/// What one kind of search takes beside the common rules.
pub(super) struct SearchRules<'a> {
    /// The filters' operators.
    pub(super) operators: &'a [&'a str],
    /// Fields that are dates: `=`, `<` and `>` only.
    pub(super) date_fields: &'a [&'a str],
    /// The most values an `IN` may hold, when the sandbox is told one.
    pub(super) max_values: Option<usize>,
}

/// Checks `q`, a query at `level` (the top is 1).
pub(super) fn check(q: &Value, level: usize, rules: &SearchRules<'_>) -> Result<(), ApiError> {
    let bad = |m: String| ApiError::invalid(Some("query"), m);
    let op = q
        .get("operator")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("every query needs an operator".into()))?;
    if matches!(op, "AND" | "OR") {
        if level > MAX_NESTING {
            return Err(bad(format!(
                "queries may nest at most {MAX_NESTING} levels"
            )));
        }
        let items = q
            .get("value")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("a group's value must be an array of queries".into()))?;
        if items.len() > MAX_FILTERS {
            return Err(bad(format!(
                "a group may hold at most {MAX_FILTERS} filters, not {}",
                items.len()
            )));
        }
        return items.iter().try_for_each(|i| check(i, level + 1, rules));
    }
    if !rules.operators.contains(&op) {
        return Err(bad(format!("unknown operator `{op}`")));
    }
    let field = q
        .get("field")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a filter needs a field".into()))?;
    let value = q
        .get("value")
        .ok_or_else(|| bad("a filter needs a value".into()))?;
    if matches!(op, "IN" | "NIN") != value.is_array() {
        return Err(bad(format!(
            "`{op}`: the value must {}be an array",
            if value.is_array() { "not " } else { "" }
        )));
    }
    if rules.date_fields.contains(&field) && !matches!(op, "=" | "<" | ">") {
        return Err(bad(format!(
            "`{field}` is a date: it takes `=`, `<` or `>`, not `{op}`"
        )));
    }
    if let (Some(max), Some(values)) = (rules.max_values, value.as_array()) {
        if values.len() > max {
            return Err(bad(format!(
                "`{op}` may hold at most {max} values, not {}",
                values.len()
            )));
        }
    }
    Ok(())
}

/// A search's page: how many results (`per_page`, 1 to `max`, `default` when absent) and where
/// it starts (`starting_after`, a cursor this sandbox gave: `prefix` and an index).
pub(super) fn page(
    body: &Value,
    default: u64,
    max: u64,
    prefix: &str,
) -> Result<(usize, usize), ApiError> {
    let pagination = body.get("pagination").filter(|p| !p.is_null());
    let per_page = match pagination.and_then(|p| p.get("per_page")) {
        None | Some(Value::Null) => default,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    Some("pagination.per_page"),
                    format!("per_page must be an integer from 1 to {max}"),
                )
            })?,
    };
    let start = match pagination.and_then(|p| p.get("starting_after")) {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_str()
            .and_then(|c| c.strip_prefix(prefix))
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                ApiError::invalid(Some("pagination.starting_after"), "unknown cursor")
            })?,
    };
    Ok((per_page as usize, start))
}
