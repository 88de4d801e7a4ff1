//! The text of an error's innermost cause, for logs and own-call errors
//! (connect, TLS, DNS and tunnel errors name hosts and reasons, never
//! header values).

use std::error::Error as StdError;
use std::io;

/// The innermost source of an error, looking inside `io::Error`s too.
pub fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut last: &(dyn StdError + 'static) = err;
    loop {
        let next = last
            .downcast_ref::<io::Error>()
            .and_then(|e| e.get_ref().map(|inner| inner as &(dyn StdError + 'static)))
            .or_else(|| last.source());
        match next {
            Some(n) => last = n,
            None => return last.to_string(),
        }
    }
}
