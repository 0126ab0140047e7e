//! An update (a partial document: the sections and keys to change) laid over the file's
//! text with `toml_edit`, so every comment, blank line and key order of the rest of the
//! file survives, and a replaced value keeps the comment beside it.

use std::collections::BTreeMap;

use alicia_config::{ConfigError, ConfigErrors};
use serde_json::Value as Json;
use toml_edit::{DocumentMut, Item, TableLike};

/// One change at one key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    Set(toml::Value),
    /// JSON `null`: the key goes, so its default (or "not set") applies.
    Remove,
    /// Keys of a table, changed one by one (the rest of the table stays).
    Table(BTreeMap<String, Change>),
}

/// The update of a JSON `payload.data.config`: objects are tables, `null` removes a key.
pub(crate) fn from_json(document: &Json) -> Result<BTreeMap<String, Change>, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let Json::Object(fields) = document else {
        return Err(crate::file::one_error("config", "must be an object of sections".into()));
    };
    let changes = json_table(fields, "", &mut errors);
    if errors.is_empty() {
        Ok(changes)
    } else {
        Err(errors)
    }
}

fn json_table(
    fields: &serde_json::Map<String, Json>,
    prefix: &str,
    errors: &mut ConfigErrors,
) -> BTreeMap<String, Change> {
    let mut out = BTreeMap::new();
    for (key, value) in fields {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        let change = match value {
            Json::Null => Change::Remove,
            Json::Object(inner) => Change::Table(json_table(inner, &path, errors)),
            other => match toml::Value::try_from(other) {
                Ok(value) => Change::Set(value),
                Err(e) => {
                    errors.0.push(ConfigError { path, message: format!("not a TOML value: {e}") });
                    continue;
                }
            },
        };
        out.insert(key.clone(), change);
    }
    out
}

/// The update of a TOML `payload.data.toml` (no removals: TOML has no null).
pub(crate) fn from_toml(text: &str) -> Result<BTreeMap<String, Change>, ConfigErrors> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| crate::file::one_error("<update syntax>", e.message().trim().to_string()))?;
    Ok(toml_table(table))
}

fn toml_table(table: toml::Table) -> BTreeMap<String, Change> {
    table
        .into_iter()
        .map(|(key, value)| {
            let change = match value {
                toml::Value::Table(inner) => Change::Table(toml_table(inner)),
                other => Change::Set(other),
            };
            (key, change)
        })
        .collect()
}

/// `file_text` with `changes` laid over it.
pub(crate) fn apply(file_text: &str, changes: &BTreeMap<String, Change>) -> Result<String, ConfigErrors> {
    let mut document: DocumentMut = file_text
        .parse()
        .map_err(|e: toml_edit::TomlError| crate::file::one_error("<syntax>", e.message().trim().to_string()))?;
    let mut errors = ConfigErrors::default();
    merge(document.as_table_mut(), false, changes, "", &mut errors);
    if errors.is_empty() {
        Ok(document.to_string())
    } else {
        Err(errors)
    }
}

fn merge(
    table: &mut dyn TableLike,
    inline: bool,
    changes: &BTreeMap<String, Change>,
    prefix: &str,
    errors: &mut ConfigErrors,
) {
    for (key, change) in changes {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match change {
            Change::Remove => {
                table.remove(key);
            }
            Change::Set(value) => {
                let Ok(mut value) = value.to_string().parse::<toml_edit::Value>() else {
                    errors.0.push(ConfigError { path, message: "cannot be written as TOML".into() });
                    continue;
                };
                match table.get_mut(key) {
                    Some(Item::Value(old)) => {
                        // The comment after the old value stays with the new one.
                        *value.decor_mut() = old.decor().clone();
                        *old = value;
                    }
                    _ => {
                        table.insert(key, Item::Value(value));
                    }
                }
            }
            Change::Table(inner) => {
                if table.get(key).is_none() {
                    let fresh = if inline {
                        Item::Value(toml_edit::Value::InlineTable(toml_edit::InlineTable::new()))
                    } else {
                        Item::Table(toml_edit::Table::new())
                    };
                    table.insert(key, fresh);
                }
                match table.get_mut(key) {
                    Some(Item::Table(sub)) => merge(sub, false, inner, &path, errors),
                    Some(Item::Value(toml_edit::Value::InlineTable(sub))) => merge(sub, true, inner, &path, errors),
                    _ => errors.0.push(ConfigError { path, message: "is not a table in the file".into() }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FILE: &str = "# the engine\n[engine]\nname = \"alicia\"\n\n[limits]\n# the seeds' value\nmax_connections = 1000   # per engine\nmax_sessions = 10000\n";

    #[test]
    fn a_json_update_keeps_comments_order_and_the_rest() {
        let changes =
            from_json(&json!({"limits": {"max_connections": 50}, "security": {"allow_anonymous": false}})).unwrap();
        let text = apply(FILE, &changes).unwrap();
        assert!(
            text.starts_with("# the engine\n[engine]\nname = \"alicia\"\n\n[limits]\n# the seeds' value\n"),
            "{text}"
        );
        assert!(text.contains("max_connections = 50   # per engine\n"), "{text}");
        assert!(text.contains("max_sessions = 10000\n"), "{text}");
        assert!(text.contains("[security]\nallow_anonymous = false\n"), "{text}");
    }

    #[test]
    fn null_removes_a_key_and_toml_updates_merge_too() {
        let text = apply(FILE, &from_json(&json!({"limits": {"max_sessions": null}})).unwrap()).unwrap();
        assert!(!text.contains("max_sessions"), "{text}");
        let text = apply(FILE, &from_toml("[security.service_users]\nconfig = \"admin\"\n").unwrap()).unwrap();
        assert!(text.contains("[security.service_users]\nconfig = \"admin\"\n"), "{text}");
    }

    #[test]
    fn what_cannot_be_toml_is_named() {
        let errors = from_json(&json!({"limits": {"max_connections": [1, null]}})).unwrap_err();
        assert_eq!(errors.0[0].path, "limits.max_connections");
        assert!(from_json(&json!([1])).is_err());
        assert_eq!(from_toml("[limits").unwrap_err().0[0].path, "<update syntax>");
        let errors =
            apply("limits = 5\n", &from_json(&json!({"limits": {"max_connections": 1}})).unwrap()).unwrap_err();
        assert_eq!(errors.0[0].path, "limits");
    }
}
