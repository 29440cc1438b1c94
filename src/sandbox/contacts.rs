//! `--contacts`: the set of contact ids the sandbox knows, and the 404 for any other recipient.
use std::collections::HashSet;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use super::errors::ApiError;

#[derive(Debug, Default)]
pub struct Contacts {
    ids: HashSet<String>,
}

impl Contacts {
    /// Reads a CSV with an `id` column (other columns, such as `email`, are allowed and ignored).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let mut reader = csv::Reader::from_path(path)
            .with_context(|| format!("cannot read the contacts file {}", path.display()))?;
        let column = reader
            .headers()?
            .iter()
            .position(|h| h.trim() == "id")
            .with_context(|| format!("{} has no `id` column", path.display()))?;
        let mut ids = HashSet::new();
        for record in reader.records() {
            let record = record.with_context(|| format!("in {}", path.display()))?;
            if let Some(id) = record.get(column).map(str::trim).filter(|s| !s.is_empty()) {
                ids.insert(id.to_string());
            }
        }
        Ok(Contacts { ids })
    }

    pub fn from_ids<I: IntoIterator<Item = String>>(ids: I) -> Self {
        Contacts {
            ids: ids.into_iter().collect(),
        }
    }

    /// Every `to` recipient (one object or, from 2.16, an array) that names an `id` must be known.
    pub fn check(&self, body: &Value) -> Result<(), ApiError> {
        let recipients: Vec<&Value> = match body.get("to") {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(one) => vec![one],
            None => vec![],
        };
        for r in recipients {
            if let Some(id) = r.get("id").and_then(Value::as_str) {
                if !self.ids.contains(id) {
                    return Err(ApiError::not_found("User Not Found").field("to.id"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn loads_ids_and_refuses_strangers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.csv");
        std::fs::write(&path, "email,id\na@x.test,c1\nb@x.test,c2\n").unwrap();
        let c = Contacts::load(&path).unwrap();
        assert!(c
            .check(&json!({"to": {"type": "user", "id": "c2"}}))
            .is_ok());
        let e = c
            .check(&json!({"to": [{"id": "c1"}, {"id": "zz"}]}))
            .unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (404, "not_found"));
        std::fs::write(&path, "email\na@x.test\n").unwrap();
        assert!(Contacts::load(&path).is_err());
    }
}
