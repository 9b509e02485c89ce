//! Bounds on the fields of an input record that reach an output key or row: names (service,
//! metric, operation, unit) and attributes (their number, each key, each value). A record
//! that breaks one is unusable (`too_large` in the dead-letter headers), so that no single
//! record can make an output row larger than the broker takes, or a series key of a megabyte.
//!
//! The defaults follow OpenTelemetry's where it has one (an instrument name is at most 255
//! characters; an SDK keeps at most 128 attributes) and leave room elsewhere: a window row
//! carries two names, a RED row two and a service-map edge up to four, so with names of at
//! most 255 bytes every such row stays far below a 1 MB broker message.

use std::collections::BTreeMap;

use apo_schemas::SchemaError;

/// Field size limits of input records (in a configuration file: `[metrics.field_limits]`,
/// `[spans.field_limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldLimits {
    /// Longest service, metric, operation (span) name or unit, bytes.
    pub max_name_bytes: usize,
    /// Most attributes (tags) on one record.
    pub max_attributes: usize,
    /// Longest attribute key, bytes.
    pub max_attribute_key_bytes: usize,
    /// Longest attribute value, bytes.
    pub max_attribute_value_bytes: usize,
}

impl Default for FieldLimits {
    fn default() -> Self {
        FieldLimits {
            max_name_bytes: 255,
            max_attributes: 128,
            max_attribute_key_bytes: 255,
            max_attribute_value_bytes: 4096,
        }
    }
}

impl FieldLimits {
    /// Checks a name field (`service`, `name`, `unit`).
    pub fn check_name(&self, field: &'static str, value: &str) -> Result<(), SchemaError> {
        bounded(field, value.len(), self.max_name_bytes, "bytes")
    }

    /// Checks how many entries of a list (`links`) a record has, against the attributes'
    /// limit.
    pub fn check_count(&self, field: &'static str, n: usize) -> Result<(), SchemaError> {
        bounded(field, n, self.max_attributes, "entries")
    }

    /// Checks a record's attributes (`field` names them: `tags`, `attributes`): how many, and
    /// each key and value.
    pub fn check_attributes(
        &self,
        field: &'static str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<(), SchemaError> {
        bounded(field, attributes.len(), self.max_attributes, "entries")?;
        for (k, v) in attributes {
            bounded(
                "attribute key",
                k.len(),
                self.max_attribute_key_bytes,
                "bytes",
            )?;
            bounded(
                "attribute value",
                v.len(),
                self.max_attribute_value_bytes,
                "bytes",
            )?;
        }
        Ok(())
    }
}

fn bounded(
    field: &'static str,
    size: usize,
    limit: usize,
    unit: &'static str,
) -> Result<(), SchemaError> {
    if size > limit {
        return Err(SchemaError::TooLarge {
            field,
            size,
            limit,
            unit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_inclusive_and_name_what_broke_them() {
        let l = FieldLimits {
            max_name_bytes: 3,
            max_attributes: 2,
            max_attribute_key_bytes: 2,
            max_attribute_value_bytes: 4,
        };
        assert!(l.check_name("service", "abc").is_ok());
        let e = l.check_name("service", "abcd").unwrap_err();
        assert_eq!(e.reason(), "too_large");
        assert_eq!(
            e.to_string(),
            "field `service` is 4 bytes, more than the limit of 3"
        );
        // Bytes, not characters: "é" is two.
        assert!(l.check_name("name", "aé").is_ok());
        assert!(l.check_name("name", "aéb").is_err());

        let mut a = BTreeMap::new();
        a.insert("k".to_string(), "vvvv".to_string());
        assert!(l.check_attributes("tags", &a).is_ok());
        a.insert("kk".to_string(), "vvvvv".to_string());
        assert!(matches!(
            l.check_attributes("tags", &a),
            Err(SchemaError::TooLarge {
                field: "attribute value",
                size: 5,
                ..
            })
        ));
        a.insert("kk".to_string(), "v".to_string());
        a.insert("c".to_string(), "v".to_string());
        assert!(matches!(
            l.check_attributes("tags", &a),
            Err(SchemaError::TooLarge {
                field: "tags",
                size: 3,
                limit: 2,
                unit: "entries"
            })
        ));
    }
}
