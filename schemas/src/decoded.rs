//! What decoding one message gives, whatever its kind (metric points, spans): the records that
//! decoded, and by position in the message why each other element did not.

use crate::SchemaError;

/// The records of one message, and the positions of the elements that could not be used.
#[derive(Debug)]
pub struct Decoded<T> {
    /// The records that decoded, in message order.
    pub items: Vec<T>,
    /// (index in the message, error) of each element that could not be used.
    pub errors: Vec<(usize, SchemaError)>,
}

impl<T> Default for Decoded<T> {
    fn default() -> Self {
        Decoded {
            items: Vec::new(),
            errors: Vec::new(),
        }
    }
}

impl<T> Decoded<T> {
    /// Every record of a message that had no bad element.
    pub fn all(items: Vec<T>) -> Self {
        Decoded {
            items,
            errors: Vec::new(),
        }
    }

    /// Keeps the element at `index` when it decoded, else records why not.
    pub fn push(&mut self, index: usize, item: Result<T, SchemaError>) {
        match item {
            Ok(t) => self.items.push(t),
            Err(e) => self.errors.push((index, e)),
        }
    }

    /// Whether the message held nothing at all, good or bad.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.errors.is_empty()
    }
}
